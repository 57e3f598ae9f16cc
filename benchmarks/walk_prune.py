"""Walk scenario: `stages/prune.py:prune_checkpoint` on a masked ResNet20 checkpoint for digits
(random masks closing about 40 % of the channels; untrained weights: the walk, not the accuracy,
is what is measured)."""

from __future__ import annotations

import tempfile
from pathlib import Path


def scenario():
    import torch

    from pdd_edge import checkpoint
    from pdd_edge import zoo
    from pdd_edge.data.options import DataConfig
    from pdd_edge.stages.prune import PruneConfig, prune_checkpoint
    from pdd_edge.zoo.masked import MaskedNetwork

    data = DataConfig("digits").load()
    torch.manual_seed(0)
    model = zoo.build("resnet20", num_classes=data.num_classes, input_size=data.input_hw)
    for mask in MaskedNetwork.attach(model).masks.values():
        mask.logits.data = torch.rand(mask.logits.shape) - 0.4
    tmp = Path(tempfile.mkdtemp(prefix="walk-prune-"))
    from pdd_edge.data.options import NormOverride, resolve_preprocess

    checkpoint.save(tmp / "masked.pt", checkpoint.checkpoint_dict(
        model, model_name="resnet20", preprocess=resolve_preprocess(data, None, NormOverride()), classes=data.classes,
        dataset=data.name, record={"stage": "distill"}))
    cfg = PruneConfig(checkpoint=str(tmp / "masked.pt"))
    return "stages/prune.py:prune_checkpoint (resnet20, digits)", lambda: prune_checkpoint(cfg, tmp / "pruned.pt")
