"""Loading a plain state dict into a network the zoo built.

Used by checkpoint loading (`pdd_edge.checkpoint`) and by pruning (`nn.pruning`, which loads the
sliced weights into the rebuilt network). Not in `checkpoint.py`: `nn` sits below `checkpoint`
on the floors (tests/test_layout.py) and may not import it, so the helper lives with the models
both of them rebuild.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import torch
from torch import nn


def with_metadata(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """`state` with `model`'s own state-dict metadata (module versions): some modules refuse a
    state dict without it (torchvision's MNASNet checks its version), and checkpoints, saved as
    plain dicts, do not carry it."""
    out = OrderedDict(state)
    meta = OrderedDict(getattr(model.state_dict(), "_metadata", {}))
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            meta.pop(name, None)  # no version: BN then fills in a missing num_batches_tracked (old checkpoints)
    out._metadata = meta  # type: ignore[attr-defined]
    return out
