"""`train`: plain cross-entropy training of a zoo model (how a teacher is made when none is given)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pdd_edge import zoo
from pdd_edge.config import config_hash, to_jsonable
from pdd_edge.data.options import DataConfig, NormOverride, resolve_preprocess
from pdd_edge.training.loop import Fit, FitResult, OptimConfig, Recipe, TrainFiles
from pdd_edge.training.tasks import SupervisedTask
from pdd_edge.zoo import checkpoint as ckpt_io

# He et al.'s CIFAR schedule (lr 0.1, x0.1 at 50 % and 75 % of the epochs).
RECIPE = Recipe(epochs=200, lr=0.1, batch_size=128, weight_decay=5e-4, milestone_fractions=(0.5, 0.75))
default_optim = RECIPE.optim


@dataclass(frozen=True)
class TrainConfig:
    model: str
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=default_optim)
    norm: NormOverride = field(default_factory=NormOverride)


def run(cfg: TrainConfig, out: str | Path, *, resume: bool | str = False, files: TrainFiles | None = None) -> FitResult:
    spec = zoo.spec(cfg.model)
    data = cfg.data.load()
    pre = resolve_preprocess(data, None, cfg.norm)
    torch.manual_seed(cfg.optim.seed)
    model = zoo.build(spec.name, num_classes=data.num_classes)

    def make_checkpoint(m, best) -> dict[str, Any]:
        return ckpt_io.checkpoint_dict(
            m, model_name=spec.name, preprocess=pre, classes=data.classes, dataset=data.name,
            metrics={"val_top1": best["val_top1"], "val_top5": best["val_top5"], "epoch": best["epoch"]},
            record={"stage": "train", "config_hash": config_hash(cfg), "data": to_jsonable(cfg.data)},
        )

    return Fit(
        title=f"train {spec.name}",
        model=model,
        task=SupervisedTask(pre),
        data=data,
        cfg=cfg.optim,
        files=files or TrainFiles.beside(out),
        make_checkpoint=make_checkpoint,
        preprocess=pre,
        config_hash=config_hash(cfg),
        resume=resume,
    ).run()
