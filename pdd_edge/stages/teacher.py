"""`teacher`: the teacher of a run, and plain cross-entropy training (`pdd-edge train`).

A run's teacher is either given (`--teacher-weights`, copied into the run) or trained once per
(architecture, dataset, seed, recipe) with `train_teacher` and cached, so the next run reuses it.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pdd_edge import checkpoint
from pdd_edge import locking, zoo
from pdd_edge.artifact import RunDir
from pdd_edge.config import CompressConfig, config_hash, to_jsonable
from pdd_edge.data.options import DataConfig, NormOverride, resolve_preprocess
from pdd_edge.fileio import atomic_path
from pdd_edge.stages import StageResult
from pdd_edge.training.distributed import barrier, dist_info
from pdd_edge.training.divergence import chance_failure, model_at_chance
from pdd_edge.training.loop import Fit, FitResult, OptimConfig, Recipe, TrainFiles
from pdd_edge.training.setup import TrainSetup
from pdd_edge.training.tasks import SupervisedTask
from pdd_edge.zoo import specs

# He et al.'s CIFAR schedule (lr 0.1, x0.1 at 50 % and 75 % of the epochs).
RECIPE = Recipe(epochs=200, lr=0.1, batch_size=128, weight_decay=5e-4, milestone_fractions=(0.5, 0.75))
default_optim = RECIPE.optim


@dataclass(frozen=True)
class TrainConfig:
    model: str  # a model spec (zoo name, torchvision:, timm:, file.py:function)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=default_optim)
    norm: NormOverride = field(default_factory=NormOverride)
    model_args: dict[str, Any] = field(default_factory=dict)  # --model-arg, for the builder

    def __post_init__(self) -> None:
        specs.parse(self.model, self.model_args)


def train_teacher(cfg: TrainConfig, out: str | Path, *, resume: bool | str = False, files: TrainFiles | None = None,
                  setup: TrainSetup | None = None, fix: str = "more --epochs, or a lower --lr") -> FitResult:
    """Train `cfg.model`; a model that ends at chance is a failure (exit 1) whose checkpoint and
    resume state are removed, so that nothing hands it on (`fix` names the options to change)."""
    spec = specs.parse(cfg.model, cfg.model_args)
    data = cfg.data.load()
    pre = resolve_preprocess(data, None, cfg.norm)
    torch.manual_seed(cfg.optim.seed)
    model = zoo.build(spec.text, num_classes=data.num_classes, args=spec.args, input_size=data.input_hw)

    def make_checkpoint(m, best) -> dict[str, Any]:
        return checkpoint.checkpoint_dict(
            m, model_name=spec.text, preprocess=pre, classes=data.classes, dataset=data.name,
            metrics={"val_top1": best["val_top1"], "val_top5": best["val_top5"], "epoch": best["epoch"]},
            record={"stage": "train", "config_hash": config_hash(cfg), "data": to_jsonable(cfg.data)},
        )

    files = files or TrainFiles.beside(out)
    result = Fit(
        title=f"train {spec.text}",
        model=model,
        task=SupervisedTask(pre),
        data=data,
        cfg=cfg.optim,
        files=files,
        make_checkpoint=make_checkpoint,
        preprocess=pre,
        config_hash=config_hash(cfg),
        resume=resume,
        setup=setup or TrainSetup(),
    ).run()
    if model_at_chance(result.best, data.num_classes, len(data.val)):
        if dist_info().is_main:
            files.best.unlink(missing_ok=True)
            files.last.unlink(missing_ok=True)  # resuming a finished run at chance cannot help
        raise chance_failure(f"train {spec.text}", result.best, data.num_classes,
                             f"{files.best} was not kept ({files.history} has its epochs)",
                             f"{fix} (this run: {cfg.optim.epochs} epoch{'s' * (cfg.optim.epochs != 1)} at lr {cfg.optim.lr:g})")
    return result


# --- the pipeline stage ------------------------------------------------------------------------

def cache_dir() -> Path:
    from pdd_edge.fileio import cache_root

    return cache_root()


def config(cfg: CompressConfig) -> TrainConfig:
    """How the teacher is trained when no weights are given (validates the teacher options, and
    loads given weights once, so a bad file fails before the run directory exists)."""
    if cfg.teacher_weights is not None:
        checkpoint.load(cfg.teacher_weights, model_name=cfg.teacher, name_option="--teacher")
    return TrainConfig(model=cfg.teacher, data=cfg.data, optim=default_optim(
        cfg.teacher_epochs, batch_size=cfg.batch_size, lr=cfg.teacher_lr, warmup_epochs=cfg.teacher_warmup_epochs,
        seed=cfg.seed))


def cached_teacher(cfg: CompressConfig, tcfg: TrainConfig) -> Path:
    """Where the teacher trained by `tcfg` is cached (published only once complete)."""
    key = f"{specs.slug(cfg.teacher)}-{cfg.data.name}-seed{cfg.seed}-{config_hash(tcfg)}"
    return cache_dir() / "teachers" / f"{key}.pt"


def _copy(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def run(run: RunDir, cfg: CompressConfig, setup: TrainSetup) -> StageResult:
    out = run.teacher()
    tcfg = config(cfg)  # also re-checks given weights: the file may have changed since validation
    main = setup.dist.is_main  # under torchrun every rank trains; only rank 0 writes files
    if cfg.teacher_weights:
        if main:
            _copy(Path(cfg.teacher_weights), out)
        return StageResult([out], {"source": str(cfg.teacher_weights), "cached": False})
    cached = cached_teacher(cfg, tcfg)
    # Two runs needing this teacher: the second waits for the first to publish it, then reuses it
    # (training it twice into one work folder would mix the two). Rank 0 holds the lock for all.
    with locking.hold(cached.with_suffix(".lock"), f"the cached teacher {cached}", wait=True) if main \
            else contextlib.nullcontext():
        barrier(setup.dist)  # every rank looks at the cache once rank 0 holds it: all decide the same
        reused = cached.exists()  # only complete teachers are published under this name
        if not reused:
            work = cached.with_suffix(".training")  # resumable if this run is interrupted
            train_teacher(tcfg, work / "best.pt", resume="auto", files=TrainFiles.in_dir(work), setup=setup,
                          fix="more --teacher-epochs, or a lower --teacher-lr")
            if main:
                _copy(work / "best.pt", cached)
                shutil.rmtree(work, ignore_errors=True)
    if not main:
        return StageResult([out])
    _copy(cached, out)
    metrics = checkpoint.read(out)["metrics"]
    return StageResult([out], {"source": str(cached), "cached": reused, "val_top1": metrics.get("val_top1")})
