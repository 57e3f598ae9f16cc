"""`finetune`: train the pruned student to recover accuracy.

Plain cross-entropy by default (the paper's choice); with a teacher, the same KD loss as
`distill`. Same optimiser and schedule shape as the paper (lr 0.01, momentum 0.9, weight decay
5e-3, 150 epochs, lr x 0.1 at 1/3 and 2/3), best validation checkpoint kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from pdd_edge import checkpoint
from pdd_edge.artifact import RunDir
from pdd_edge.config import CompressConfig, config_hash, to_jsonable
from pdd_edge.data.options import DataConfig, NormOverride, check_classes, resolve_preprocess
from pdd_edge.errors import PddError
from pdd_edge.nn.kd import DEFAULT_ALPHA, DEFAULT_TEMPERATURE
from pdd_edge.stages import StageResult, training_result
from pdd_edge.training.loop import Fit, FitResult, OptimConfig, Recipe, TrainFiles
from pdd_edge.training.setup import TrainSetup
from pdd_edge.training.tasks import DistillTask, SupervisedTask
from pdd_edge.zoo.masked import MaskedNetwork

# PDD reference fine-tuning: 150 epochs, lr 0.01 (x0.1 at 50 and 100).
RECIPE = Recipe(epochs=150, lr=0.01, batch_size=256, weight_decay=5e-3, milestone_fractions=(1 / 3, 2 / 3))
default_optim = RECIPE.optim


@dataclass(frozen=True)
class FinetuneConfig:
    checkpoint: str
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=default_optim)
    teacher_weights: str | None = None  # None: plain cross-entropy
    teacher: str | None = None
    alpha: float = DEFAULT_ALPHA
    temperature: float = DEFAULT_TEMPERATURE
    teacher_norm: NormOverride = field(default_factory=NormOverride)


def finetune(cfg: FinetuneConfig, out_dir: str | Path, *, resume: bool | str = False,
             setup: TrainSetup | None = None) -> FitResult:
    TrainFiles.check_dir(out_dir, cfg.checkpoint, cfg.teacher_weights)
    student, s_info = checkpoint.load(cfg.checkpoint)
    if s_info.masked:
        raise PddError(f"{cfg.checkpoint} still has masks; run `pdd-edge prune` on it first")
    teacher = t_info = None
    if cfg.teacher_weights:
        teacher, t_info = checkpoint.load(cfg.teacher_weights, model_name=cfg.teacher, name_option="--teacher")
    # the student's own input size unless --input-size says otherwise
    data = replace(cfg.data, input_size=cfg.data.input_size or (s_info.preprocess.input_size if s_info.preprocess else None)).load()
    check_classes(s_info, data, "pruned student")
    s_pre = resolve_preprocess(data, s_info, NormOverride())
    if teacher is not None and t_info is not None:
        check_classes(t_info, data, "teacher")
        task = DistillTask(teacher, resolve_preprocess(data, t_info, cfg.teacher_norm, any_size=True), s_pre,
                           cfg.alpha, cfg.temperature)
    else:
        task = SupervisedTask(s_pre)
    torch.manual_seed(cfg.optim.seed)
    student.train()
    cost = MaskedNetwork(student).dense_cost(data.input_hw)  # unmasked: the pruned network's own cost

    def make_checkpoint(m, best) -> dict[str, Any]:
        return checkpoint.checkpoint_dict(
            m, model_name=s_info.model, preprocess=s_pre, classes=data.classes, dataset=data.name,
            metrics={"val_top1": best["val_top1"], "val_top5": best["val_top5"], "epoch": best["epoch"],
                     "macs": cost["macs"], "params": cost["params"]},
            record={**s_info.record, "stage": "finetune", "config_hash": config_hash(cfg), "data": to_jsonable(cfg.data),
                    "finetune_teacher": t_info.model if t_info else None},
        )

    return Fit(
        title=f"finetune {s_info.model}" + (" (KD)" if teacher is not None else ""),
        model=student,
        task=task,
        data=data,
        cfg=cfg.optim,
        files=TrainFiles.in_dir(out_dir),
        make_checkpoint=make_checkpoint,
        preprocess=s_pre,
        config_hash=config_hash(cfg),
        resume=resume,
        setup=setup or TrainSetup(),
    ).run()


# --- the pipeline stage ------------------------------------------------------------------------

def config(run: RunDir, cfg: CompressConfig) -> FinetuneConfig:
    """Fine-tuning of the run's pruned student: plain CE, or KD from the run's teacher (`cfg.finetune_kd`);
    a warm-started student at `cfg.warm_lr_scale` of the fine-tuning lr."""
    kd = {"teacher_weights": str(run.teacher()), "teacher": cfg.teacher, "alpha": cfg.alpha,
          "temperature": cfg.temperature, "teacher_norm": cfg.teacher_norm} if cfg.finetune_kd else {}
    return FinetuneConfig(checkpoint=str(run.pruned()), data=cfg.data, optim=default_optim(
        cfg.finetune_epochs, batch_size=cfg.batch_size, lr=cfg.warm_lr(cfg.finetune_lr), weight_decay=cfg.weight_decay, seed=cfg.seed,
        schedule=cfg.lr_schedule),
        **kd)


def run(run: RunDir, cfg: CompressConfig, setup: TrainSetup) -> StageResult:
    return training_result(run, "finetune", finetune(config(run, cfg), run.training_dir("finetune"), resume="auto", setup=setup))
