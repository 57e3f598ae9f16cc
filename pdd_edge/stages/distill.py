"""`distill`: the PDD stage. A student learns per-channel masks while it is distilled.

The student (optionally from pretrained weights) gets a `ChannelMask` at every mask point; the
masks are ordinary parameters in the same SGD optimiser as the weights, with the same weight
decay, and are driven by the distillation loss alone (pure PDD). The checkpoint of the epoch with
the best validation top-1, masks included, is kept. `masks=False` runs the same KD without
masks: the unpruned student the paper compares against (the `baseline` stage).

Under a budget the masks stand for the widths prune deploys (`round_to`, the device's channel
multiple): every validation measures that network, and after the budget's ramp the masks are fixed
on it, fitted to the budget (`DeployedWidths`), so the checkpoint kept is the network `prune` writes.
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
from pdd_edge.nn.pruning import plan_from_masks
from pdd_edge.stages import StageResult, prune, training_result
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
    # Masks let through widths in multiples of N, as prune deploys them (None: the latency table's
    # channel multiple with a table, else 1).
    round_to: int | None = None
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
        if self.round_to is not None and self.round_to < 1:
            raise PddError(f"--round-to must be a positive integer, got {self.round_to}")


def distill(cfg: DistillConfig, out_dir: str | Path, *, resume: bool | str = False,
            setup: TrainSetup | None = None) -> FitResult:
    """Distill `cfg.student` from the teacher into `out_dir` (the training loop's files).

    Long only because it wires the run's pieces in order (checkpoints, data, masks, budget,
    deployed widths, the training loop), a few lines each, and its closures share them."""
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
    multiple = cfg.round_to if cfg.round_to is not None else (table.channel_multiple if table is not None else 1)
    input_hw = data.input_hw
    dense = masked.dense_cost(input_hw)

    def stats(m) -> dict[str, Any]:
        if not cfg.masks:
            return {}
        now = MaskedNetwork(m)  # the network the loop trains (the student, on its device)
        return (now.stats(input_hw, dense["macs"]) | (predicted_latency(now, table) if table is not None else {})
                | (deployed.stats() if deployed else {}))

    def make_checkpoint(m, best) -> dict[str, Any]:
        return checkpoint.checkpoint_dict(
            m, model_name=s_info.model if s_info is not None else spec.text, preprocess=s_pre, classes=data.classes, dataset=data.name,
            metrics=summary(best),
            record={"stage": "distill", "config_hash": config_hash(cfg), "teacher": t_info.model,
                    "teacher_weights": str(cfg.teacher_weights), "dense_macs": dense["macs"],
                    "dense_params": dense["params"], "alpha": cfg.alpha, "temperature": cfg.temperature,
                    "target_macs_reduction": cfg.target_macs_reduction, "data": to_jsonable(cfg.data),
                    "latency_budget": request,
                    **({"mask_multiple": multiple, "widths_fixed": deployed.record()} if deployed else {})},
        )

    constraint, request = _constraint(cfg, table, masked, dense["macs"], input_hw, multiple)
    # Pure PDD keeps the authors' raw masks (prune rounds them up); a budget trains deployed widths.
    deployed = None
    if constraint is not None:
        fit_latency = (table, request["requested_ms"]) if request else None
        max_macs = None if request else int((1 - cfg.target_macs_reduction) * dense["macs"])

        def fit(m: MaskedNetwork):
            return plan_from_masks(m, multiple, max_macs, input_hw, fit_latency, reopen=True)

        deployed = DeployedWidths(masked.set_multiple(multiple), constraint,
                                  cfg.budget_ramp_epochs or cfg.optim.epochs // 2, fit)
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
        selection_key=deployed.selection_key if deployed else None,
        # "budget": the resume state's key, kept
        extra_state=({"budget": constraint} if constraint else {}) | ({"deployed": deployed} if deployed else {}),
        resume=resume,
        notes=[f"left unmasked (cannot be pruned exactly): {why}" for why in masked.arch.refused] if cfg.masks else [],
        setup=setup or TrainSetup(),
        diagnose=lambda: teacher_at_chance(teacher, t_pre, data, cfg.teacher_weights),
    ).run()


class DeployedWidths:
    """Under a budget, the masks stand for the widths prune deploys (zoo/masks.py, "deployed
    widths"): every validation measures that network, and at the start of the first epoch after
    the budget's ramp (half the epochs without a ramp) the masks are fixed on it, fitted to the
    budget the way `prune` fits it (`nn.pruning.plan_from_masks`: widths rounded to the multiple,
    then the weakest channels closed until the MACs or the predicted latency fit, at most a tenth
    of the dense latency beyond the masks; and, where masks overshot a latency request, the
    strongest closed channels re-opened until the prediction is nearest it, since a request is met
    within +/-10 % either side and the epochs left train the channels given back). The remaining
    epochs distill the network prune writes, and prune has nothing left to change. A distillation
    too short to reach that epoch leaves the masks free, and prune rounds and fits them after
    training, as before.

    Why (issue 23): with raw gates to the end, ResNet20 on CIFAR-10 images lost 45-50 points when
    prune rounded its widths (65 -> 15 % top-1), and the fine-tuning only climbed back: 63.15 /
    65.20 % at 1.9x (KD students 64.05 / 66.80). Why not deployed widths from the first step: a
    deployed width moves only when about half a multiple of channels has closed, and until then
    the closing channels still compute, so the distillation holds them open: ResNet20 asked for
    1.9x stalled at -30 % predicted latency for -47 % asked and deployed 1.54x / 1.60x. Deployed
    widths after the ramp with the masks still free let them reopen (-50 % -> -18 %). So: raw gates
    while the budget moves the masks a channel at a time, then the deployed network, fixed.
    """

    def __init__(self, masked: MaskedNetwork, constraint: Any, from_epoch: int, fit: Any) -> None:
        self.masked = masked
        self.constraint = constraint
        self.from_epoch = from_epoch  # 0-based; the masks are fixed at its start
        self.fit = fit  # masks -> nn.pruning.PrunePlan at the budget
        self.fixed_at: int | None = None
        self.notes: list[str] = []

    def on_epoch_start(self, epoch: int, lr: float, base_lr: float) -> None:
        if self.fixed_at is not None or epoch != self.from_epoch:
            return
        plan = self.fit(self.masked)
        kept = {}
        for point, width in self.masked.points.items():
            kept[point] = torch.zeros(width, dtype=torch.bool)
            kept[point][plan.local[point]] = True
        self.masked.fix(kept)
        self.constraint.settle()
        self.fixed_at = epoch
        self.notes = list(plan.notes)

    def stats(self) -> dict[str, Any]:
        return {"widths_fixed": self.fixed_at is not None}

    def selection_key(self, record: dict[str, Any]) -> tuple:
        """A fixed epoch first (the network prune writes, validated as such): the best of them by
        validation top-1; before that, the constraint's choice."""
        if record.get("widths_fixed"):
            return (2, record["val_top1"])
        return self.constraint.selection_key(record)

    def record(self) -> dict[str, Any]:
        """For the checkpoint: when the widths were fixed and what fitting them to the budget did."""
        return {"epoch": None if self.fixed_at is None else self.fixed_at + 1, "notes": self.notes}

    def state_dict(self) -> dict[str, Any]:
        kept = {p: m.fixed.cpu() for p, m in self.masked.masks.items() if m.fixed is not None}
        return {"fixed_at": self.fixed_at, "kept": kept, "notes": self.notes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fixed_at = state.get("fixed_at")
        self.notes = list(state.get("notes", []))
        if self.fixed_at is not None:
            self.masked.fix(state["kept"])
            self.constraint.settle()


def _student_weights(cfg: DistillConfig) -> tuple[Any, Any]:
    """The student's starting weights and their checkpoint's description, or (None, None) for a
    student built fresh; a checkpoint that already has masks is refused."""
    if not cfg.student_weights:
        return None, None
    student, s_info = checkpoint.load(cfg.student_weights, model_name=cfg.student, name_option="--student")
    if s_info.masked:
        raise PddError(f"{cfg.student_weights} already has masks; prune it first (`pdd-edge prune`) or start from its dense weights")
    return student, s_info


def _constraint(cfg: DistillConfig, table, masked: MaskedNetwork, dense_macs: int, input_hw: tuple[int, int],
                multiple: int) -> tuple[MacsConstraint | LatencyConstraint | None, dict[str, Any] | None]:
    """The cost constraint the run asks for (none for pure PDD) and, for a latency constraint, its request."""
    if cfg.target_macs_reduction is not None:
        return MacsConstraint(cfg.target_macs_reduction, dense_macs, input_hw, cfg.budget_rate,
                              ramp_epochs=cfg.budget_ramp_epochs, multiple=multiple), None
    if cfg.latency_target is not None:
        check_fits(table, cfg.latency_table, input_hw=input_hw)
        request = latency_request(cfg, table, masked)
        return LatencyConstraint(request["target_reduction"], table, cfg.budget_rate,
                                 ramp_epochs=cfg.budget_ramp_epochs, multiple=multiple), request
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

def config(run: RunDir, cfg: CompressConfig, *, masks: bool = True, epochs: int | None = None,
           measure: bool = False) -> DistillConfig:
    """Distillation of the run's student from the run's teacher: PDD with masks (this stage), or
    the same KD without them for `epochs` (the `baseline` stage).

    The masks train at the widths prune deploys (`prune.deploy_multiple`; `measure`: a target
    such as `local` that declares no multiple is measured here, when this machine is its device).

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
               "budget_ramp_epochs": round(cfg.budget_ramp * optim.epochs) if target or latency else 0,
               "round_to": prune.deploy_multiple(cfg, measure)}
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
    return training_result(run, "distill", distill(config(run, cfg, measure=True), run.training_dir("distill"),
                                                   resume="auto", setup=setup))
