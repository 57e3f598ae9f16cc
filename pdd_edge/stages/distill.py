"""`distill`: the PDD stage. A student learns per-channel masks while it is distilled.

The student (optionally from pretrained weights) gets a `ChannelMask` at every mask point; the
masks are ordinary parameters in the same SGD optimiser as the weights, with the same weight
decay, and are driven by the distillation loss alone (pure PDD). The checkpoint of the epoch with
the best validation top-1, masks included, is kept. `masks=False` runs the same KD without
masks: the unpruned student the paper compares against (the `baseline` stage).
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from pdd_edge import checkpoint
from pdd_edge import zoo
from pdd_edge.artifact import RunDir
from pdd_edge.config import CompressConfig, config_hash, to_jsonable
from pdd_edge.data.options import DataConfig, NormOverride, check_classes, resolve_preprocess
from pdd_edge.errors import PddError
from pdd_edge.latency.target import LatencyTarget, check_fits, load_checked
from pdd_edge.nn.constraint import DEFAULT_RATE, LatencyConstraint, MacsConstraint, predicted_latency
from pdd_edge.nn.kd import DEFAULT_ALPHA, DEFAULT_TEMPERATURE
from pdd_edge.stages import StageResult, training_result
from pdd_edge.training.accuracy import evaluate
from pdd_edge.training.distributed import DistInfo
from pdd_edge.training.divergence import below_chance, can_judge
from pdd_edge.training.loop import Fit, FitResult, OptimConfig, Recipe, TrainFiles, summary
from pdd_edge.training.setup import TrainSetup
from pdd_edge.training.tasks import DistillTask
from pdd_edge.zoo import specs
from pdd_edge.zoo.masked import MaskedNetwork
from pdd_edge.zoo.masks import check_init

# PDD reference recipe for CIFAR-10 (PDD_METHOD.md): 50 epochs, lr 0.01 (x0.1 at 20 and 40).
RECIPE = Recipe(epochs=50, lr=0.01, batch_size=256, weight_decay=5e-3, milestone_fractions=(0.4, 0.8))
default_optim = RECIPE.optim


@dataclass(frozen=True)
class DistillConfig:
    student: str  # a model spec (zoo name, torchvision:, timm:, file.py:function)
    teacher_weights: str
    teacher: str | None = None  # model spec, needed only for third-party teacher files
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=default_optim)
    student_weights: str | None = None
    masks: bool = True
    mask_init: str | None = None  # None: "normal", or "open" when starting from student weights
    alpha: float = DEFAULT_ALPHA
    temperature: float = DEFAULT_TEMPERATURE
    norm: NormOverride = field(default_factory=NormOverride)
    teacher_norm: NormOverride = field(default_factory=NormOverride)
    target_macs_reduction: float | None = None  # None: pure PDD (no cost term)
    latency_table: str | None = None  # a `pdd-edge latency-table` file: the latency constraint's device predictor
    target_latency_ms: float | None = None  # latency constraint: this p50 on the table's device
    target_speedup: float | None = None  # latency constraint: dense latency / this
    budget_rate: float = DEFAULT_RATE
    budget_ramp_epochs: int = 0  # ramp the MACs target from 0 to its value over these first epochs
    student_args: dict[str, Any] = field(default_factory=dict)  # --model-arg, for the student's builder

    @property
    def latency_target(self) -> LatencyTarget | None:
        return LatencyTarget.of(self.target_latency_ms, self.target_speedup, self.latency_table)

    def __post_init__(self) -> None:
        specs.parse(self.student, self.student_args)
        if self.teacher is not None:
            specs.parse(self.teacher)
        if self.target_macs_reduction is not None:
            if not 0.0 < self.target_macs_reduction < 1.0:
                raise PddError(f"--target-macs-reduction must be between 0 and 1 (e.g. 0.5), got {self.target_macs_reduction}")
            if not self.masks:
                raise PddError("--target-macs-reduction needs masks; drop --no-masks")
        latency = self.latency_target
        if latency and self.target_macs_reduction is not None:
            raise PddError("give one budget: --target-macs-reduction, --target-latency-ms or --target-speedup")
        if latency and not self.masks:
            raise PddError("a latency budget needs masks; drop --no-masks")
        if not (self.budget_rate > 0 and math.isfinite(self.budget_rate)):
            raise PddError(f"--budget-rate must be a positive number, got {self.budget_rate}")
        if not 0 <= self.budget_ramp_epochs <= self.optim.epochs:
            raise PddError(f"the budget ramp must be between 0 and {self.optim.epochs} epochs (the distillation's), "
                           f"got {self.budget_ramp_epochs}")
        if self.budget_ramp_epochs and self.target_macs_reduction is None and not latency:
            raise PddError("a budget ramp needs a target: add --target-macs-reduction, --target-latency-ms or --target-speedup")
        if not 0.0 <= self.alpha <= 1.0:
            raise PddError(f"alpha must be in [0, 1], got {self.alpha}")
        if not self.temperature > 0:
            raise PddError(f"temperature must be positive, got {self.temperature}")
        if self.mask_init is not None:
            check_init(self.mask_init)


def distill(cfg: DistillConfig, out_dir: str | Path, *, resume: bool | str = False,
            setup: TrainSetup | None = None) -> FitResult:
    spec = specs.parse(cfg.student, cfg.student_args)
    TrainFiles.check_dir(out_dir, cfg.teacher_weights, cfg.student_weights)
    table = load_checked(cfg.latency_table, model=spec.text) if cfg.latency_table else None
    # Checkpoints before the data: a bad file fails in a second, not after loading a dataset.
    teacher, t_info = checkpoint.load(cfg.teacher_weights, model_name=cfg.teacher, name_option="--teacher")
    student, s_info = _student_weights(cfg)
    size = cfg.data.input_size or (s_info.preprocess.input_size if s_info is not None and s_info.preprocess else None)
    data = replace(cfg.data, input_size=size).load()  # the student's size; the teacher's images are resized
    check_classes(t_info, data, "teacher")
    # The teacher sees the batch at its own input size (resized on the fly), the student at the data's.
    t_pre = resolve_preprocess(data, t_info, cfg.teacher_norm, any_size=True)
    torch.manual_seed(cfg.optim.seed)
    if s_info is not None:
        check_classes(s_info, data, "student", names=False)  # weights to start from
    else:
        student = zoo.build(spec.text, num_classes=data.num_classes, args=spec.args, input_size=data.input_hw)
    s_pre = resolve_preprocess(data, s_info, cfg.norm)
    init = cfg.mask_init or ("open" if cfg.student_weights else "normal")
    masked = MaskedNetwork.attach(student, init) if cfg.masks else MaskedNetwork(student)
    input_hw = data.input_hw
    dense = masked.dense_cost(input_hw)

    def stats(m) -> dict[str, Any]:
        if not cfg.masks:
            return {}
        now = MaskedNetwork(m)  # the network the loop trains (the student, on its device)
        return now.stats(input_hw, dense["macs"]) | (predicted_latency(now, table) if table is not None else {})

    def make_checkpoint(m, best) -> dict[str, Any]:
        return checkpoint.checkpoint_dict(
            m, model_name=s_info.model if s_info is not None else spec.text, preprocess=s_pre, classes=data.classes, dataset=data.name,
            metrics=summary(best),
            record={"stage": "distill", "config_hash": config_hash(cfg), "teacher": t_info.model,
                    "teacher_weights": str(cfg.teacher_weights), "dense_macs": dense["macs"],
                    "dense_params": dense["params"], "alpha": cfg.alpha, "temperature": cfg.temperature,
                    "target_macs_reduction": cfg.target_macs_reduction, "data": to_jsonable(cfg.data),
                    "latency_budget": request},
        )

    constraint, request = _constraint(cfg, table, masked, dense["macs"], input_hw)
    return Fit(
        title=_title(spec.text, cfg, constraint, table),
        model=student,
        task=DistillTask(teacher, t_pre, s_pre, cfg.alpha, cfg.temperature, extra_loss=constraint),
        data=data,
        cfg=cfg.optim,
        files=TrainFiles.in_dir(out_dir),
        make_checkpoint=make_checkpoint,
        preprocess=s_pre,
        config_hash=config_hash(cfg),
        epoch_stats=stats,
        selection_key=constraint.selection_key if constraint else None,
        extra_state={"budget": constraint} if constraint else {},  # "budget": the resume state's key, kept
        resume=resume,
        notes=[f"left unmasked (cannot be pruned exactly): {why}" for why in masked.arch.refused] if cfg.masks else [],
        setup=setup or TrainSetup(),
        diagnose=lambda: teacher_at_chance(teacher, t_pre, data, cfg.teacher_weights),
    ).run()


def _student_weights(cfg: DistillConfig) -> tuple[Any, Any]:
    """The student's starting weights and their checkpoint's description, or (None, None) for a
    student built fresh; a checkpoint that already has masks is refused."""
    if not cfg.student_weights:
        return None, None
    student, s_info = checkpoint.load(cfg.student_weights, model_name=cfg.student, name_option="--student")
    if s_info.masked:
        raise PddError(f"{cfg.student_weights} already has masks; prune it first (`pdd-edge prune`) or start from its dense weights")
    return student, s_info


def _constraint(cfg: DistillConfig, table, masked: MaskedNetwork, dense_macs: int,
                input_hw: tuple[int, int]) -> tuple[MacsConstraint | LatencyConstraint | None, dict[str, Any] | None]:
    """The cost constraint the run asks for (none for pure PDD) and, for a latency constraint, its request."""
    if cfg.target_macs_reduction is not None:
        return MacsConstraint(cfg.target_macs_reduction, dense_macs, input_hw, cfg.budget_rate,
                              ramp_epochs=cfg.budget_ramp_epochs), None
    if cfg.latency_target is not None:
        check_fits(table, cfg.latency_table, input_hw=input_hw)
        request = latency_request(cfg, table, masked)
        return LatencyConstraint(request["target_reduction"], table, cfg.budget_rate,
                                 ramp_epochs=cfg.budget_ramp_epochs), request
    return None, None


def _title(student: str, cfg: DistillConfig, constraint, table) -> str:
    title = f"distill {student}" + ("" if cfg.masks else " (no masks)")
    if isinstance(constraint, LatencyConstraint):
        title += f" (latency -{100 * constraint.target_reduction:.0f}% on {table.key['target']})"
    elif constraint is not None:
        title += f" (MACs -{100 * cfg.target_macs_reduction:.0f}%)"
    return title


def teacher_at_chance(teacher, t_pre, data, path) -> str | None:
    """When a student is stuck at chance, a teacher at chance on the same data is the likelier
    cause than the learning rate. Measured only then, on this process alone (no collectives: the
    other ranks may not be failing at this moment)."""
    if not can_judge(data.num_classes, len(data.val)):
        return None
    top1 = evaluate(teacher, data.val, t_pre, info=DistInfo())["top1"]
    if not below_chance(top1, data.num_classes):
        return None
    return (f"a better teacher: {path} is itself at chance on this data (validation top-1 {top1:.2f} %); "
            "train it longer (more epochs, a lower --lr) before distilling from it")


def latency_request(cfg: DistillConfig, table, masked: MaskedNetwork) -> dict[str, Any]:
    """The requested latency, and as a reduction of the dense network's predicted latency; a
    request below what the thinnest network can reach is refused before training."""
    got = cfg.latency_target.reach(table, masked.arch)
    return {"table": str(cfg.latency_table), "key": table.key, "requested_ms": got["requested_ms"],
            "target_speedup": cfg.target_speedup, "dense_predicted_ms": got["dense_predicted_ms"],
            "dense_measured_ms": table.dense_ms, "floor_predicted_ms": got["floor_predicted_ms"],
            "target_reduction": got["target_reduction"]}


# --- the pipeline stage ------------------------------------------------------------------------

def config(run: RunDir, cfg: CompressConfig, *, masks: bool = True, epochs: int | None = None) -> DistillConfig:
    """Distillation of the run's student from the run's teacher: PDD with masks (this stage), or
    the same KD without them for `epochs` (the `baseline` stage).

    With `cfg.warm_start` PDD starts from the baseline's weights with every mask open, at
    `cfg.warm_lr_scale` of the lr, and a MACs target is ramped in over the first `cfg.budget_ramp`
    of the epochs (see nn.constraint).
    """
    # PDD continuing the trained baseline (warm start) starts at a share of the lr the baseline started at.
    lr = cfg.warm_lr(cfg.lr) if masks else cfg.lr
    optim = default_optim(cfg.distill_epochs if epochs is None else epochs, batch_size=cfg.batch_size, lr=lr,
                          weight_decay=cfg.weight_decay, seed=cfg.seed, schedule=cfg.lr_schedule)
    pdd = {}
    if masks:
        if not 0.0 <= cfg.budget_ramp <= 1.0:
            raise PddError(f"--budget-ramp is a share of the distill epochs, between 0 and 1; got {cfg.budget_ramp}")
        latency = cfg.latency_target is not None
        target = None if latency else cfg.target_macs_reduction or None  # 0: no MACs target, pure PDD
        pdd = {"target_macs_reduction": target,
               "budget_ramp_epochs": round(cfg.budget_ramp * optim.epochs) if target or latency else 0}
        if latency:
            pdd |= {"latency_table": str(run.latency_table()), "target_latency_ms": cfg.target_latency_ms,
                    "target_speedup": cfg.target_speedup}
        if cfg.warm_start:
            pdd |= {"student_weights": str(run.best("baseline")), "mask_init": "open"}
    return DistillConfig(
        student=cfg.student, student_args=dict(cfg.student_args), teacher_weights=str(run.teacher()),
        teacher=cfg.teacher, data=cfg.data, masks=masks,
        alpha=cfg.alpha, temperature=cfg.temperature, teacher_norm=cfg.teacher_norm, optim=optim, **pdd)


def run(run: RunDir, cfg: CompressConfig, setup: TrainSetup) -> StageResult:
    return training_result(run, "distill", distill(config(run, cfg), run.training_dir("distill"), resume="auto", setup=setup))
