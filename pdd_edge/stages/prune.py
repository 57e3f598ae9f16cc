"""`prune`: remove every closed channel of a distilled checkpoint, exactly.

Reads a checkpoint with masks, builds the dense smaller model (`pdd_edge.nn.pruning`), checks on
real validation images that its logits equal the masked model's (with the adjusted masks) to
float32 rounding (pdd_edge/tolerance.py), checks that fvcore's MACs/params of the pruned model equal the masked-network counts,
and writes a self-describing checkpoint. Nothing is written if a check fails.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TYPE_CHECKING

import torch

from pdd_edge import checkpoint
from pdd_edge.artifact import RunDir
from pdd_edge.config import CompressConfig, config_hash
from pdd_edge.data.options import DataConfig, NormOverride, dataset_for
from pdd_edge.errors import FAILURE, PddError
from pdd_edge.latency.target import LatencyTarget, load_checked
from pdd_edge.fileio import write_json
from pdd_edge.nn.pruning import PrunePlan, logit_gap, masked_reference, plan_from_masks, prune
from pdd_edge.stages import StageResult
from pdd_edge.tolerance import LogitTolerance
from pdd_edge.training.tasks import Normalize
from pdd_edge.zoo.cost import fvcore_counts
from pdd_edge.zoo.masked import MaskedNetwork

if TYPE_CHECKING:
    from pdd_edge.training.setup import TrainSetup  # noqa: F401 (the stage signature)

EXACTNESS_TOLERANCE = LogitTolerance()  # pruned vs masked: float32 reordering only
MACS_CONVENTION = "MACs = multiply-accumulates of conv and linear layers (fvcore/thop convention)"


@dataclass(frozen=True)
class PruneConfig:
    checkpoint: str
    # None: the multiple the masks trained at (a distilled checkpoint records it), else the latency
    # table's channel multiple, else 1
    round_to: int | None = 1
    data: DataConfig = DataConfig(name=None)  # images for the exactness check; None: the checkpoint's dataset
    check_images: int = 256
    # Close the weakest open channels until the pruned model removes at least this share of the
    # MACs (None: keep exactly what the masks keep).
    min_macs_reduction: float | None = None
    # A latency target on the table's device: close the weakest channels until the latency predictor's
    # prediction is nearest `target_latency_ms` (or the dense prediction / `target_speedup`).
    latency_table: str | None = None
    target_latency_ms: float | None = None
    target_speedup: float | None = None

    @property
    def latency_target(self) -> LatencyTarget | None:
        return LatencyTarget.of(self.target_latency_ms, self.target_speedup, self.latency_table)

    def __post_init__(self) -> None:
        self.latency_target  # validates the latency options
        if self.round_to is not None and self.round_to < 1:
            raise PddError(f"--round-to must be a positive integer, got {self.round_to}")
        if self.min_macs_reduction is not None and not 0.0 < self.min_macs_reduction < 1.0:
            raise PddError(f"--min-macs-reduction must be between 0 and 1 (e.g. 0.5), got {self.min_macs_reduction}")


def prune_checkpoint(cfg: PruneConfig, out: str | Path) -> dict[str, Any]:
    """Prune `cfg.checkpoint` to `out` and return the report; the checks run first, so nothing is
    written when one fails."""
    model, info = checkpoint.load(cfg.checkpoint)
    if not info.masked:
        raise PddError(
            f"{cfg.checkpoint} has no masks: prune a checkpoint written by `pdd-edge distill` (without --no-masks)"
        )
    assert info.preprocess is not None  # a checkpoint with masks is always one of ours, which records it
    masked = MaskedNetwork(model)  # the one prunable view of the distilled network
    input_hw = info.preprocess.input_size
    before = masked.dense_cost(input_hw)
    max_macs = None if cfg.min_macs_reduction is None else int((1 - cfg.min_macs_reduction) * before["macs"])
    table = load_checked(cfg.latency_table, model=info.model, input_hw=input_hw) if cfg.latency_table else None
    dense_ms = float(table.predict_counts(masked.arch)) if table is not None else None
    latency = None if cfg.latency_target is None else (table, cfg.latency_target.requested_ms(dense_ms))
    round_to = cfg.round_to
    if round_to is None:
        round_to = masked.multiple or (table.channel_multiple if table is not None else 1)
    if _trained_for(info.record, round_to, masked, cfg.min_macs_reduction, latency):
        # the distillation fitted these widths to this very budget and trained them: keep them
        max_macs, fit_latency = None, None
    else:
        fit_latency = latency
    plan = plan_from_masks(masked, round_to, max_macs, input_hw, fit_latency)
    pruned = prune(masked, info.model, plan)
    reference = masked_reference(masked, plan)
    exactness = _check_exact(reference, pruned, info, cfg)
    after = _check_counts(reference, pruned, input_hw)
    report = {
        "source": str(cfg.checkpoint),
        "output": str(out),
        "model": info.model,
        "convention": MACS_CONVENTION,
        "macs_before": before["macs"],
        "macs_after": after["macs"],
        "params_before": before["params"],
        "params_after": after["params"],
        "macs_reduction_pct": 100.0 * (1 - after["macs"] / before["macs"]),
        "params_reduction_pct": 100.0 * (1 - after["params"] / before["params"]),
        **exactness,
        "round_to": round_to,
        "reopened_channels": plan.reopened_total,
        "min_macs_reduction": cfg.min_macs_reduction,
        "closed_channels": plan.closed_total,
        "notes": _fixed_notes(info.record.get("widths_fixed")) + plan.notes,
        "layers": _layers(masked, plan),
        "latency": None if table is None else _latency_report(cfg, table, latency, dense_ms, reference, plan),
    }
    ckpt = checkpoint.checkpoint_dict(
        pruned, model_name=info.model, preprocess=info.preprocess, classes=info.classes, dataset=info.dataset,
        metrics={"masked_val_top1": info.metrics.get("val_top1")},
        record={**info.record, "stage": "prune", "config_hash": config_hash(cfg), "prune": report,
                "data": info.record.get("data")},
    )
    checkpoint.save(out, ckpt)
    return report


def _trained_for(record: dict[str, Any], round_to: int, masked: MaskedNetwork, min_macs_reduction: float | None,
                 latency: tuple | None) -> bool:
    """Whether the distillation fixed its widths at this multiple for this budget (the same MACs
    target, or the same requested latency): then they were fitted to it already, and fitting them
    again could close a group the trained network needs."""
    fixed = record.get("widths_fixed")
    if not isinstance(fixed, dict) or not fixed.get("epoch") or masked.multiple != round_to:
        return False
    if latency is not None:
        asked = (record.get("latency_budget") or {}).get("requested_ms")
        return isinstance(asked, (int, float)) and abs(asked - latency[1]) <= 1e-9 * max(1.0, abs(asked))
    return min_macs_reduction is not None and record.get("target_macs_reduction") == min_macs_reduction


def _fixed_notes(fixed: Any) -> list[str]:
    """What the distillation did to the widths it fixed (stages/distill.DeployedWidths), for the report."""
    if not isinstance(fixed, dict) or not fixed.get("epoch"):
        return []
    done = [n for n in fixed.get("notes") or [] if isinstance(n, str)]
    return [f"the distillation fixed the masks on the deployed widths at the start of epoch {fixed['epoch']} "
            "and trained that network from there" + (f" ({'; '.join(done)})" if done else "")]


def _check_exact(reference: MaskedNetwork, pruned: torch.nn.Module, info, cfg: PruneConfig) -> dict[str, Any]:
    """The pruned model's logits against the masked model's (adjusted masks) on real validation
    images; the report's exactness entries, or a failure."""
    data, _ = dataset_for(info, cfg.data, NormOverride())
    x = _validation_batch(data, cfg.check_images)
    diff, scale = logit_gap(reference.net, pruned, Normalize(info.preprocess)(x))
    if not diff <= EXACTNESS_TOLERANCE.limit(scale):
        raise PddError(f"the pruned model deviates from the masked model by {diff:.3g} in the logits (limit "
                       f"{EXACTNESS_TOLERANCE.describe(scale)}); nothing written; this is a pdd-edge bug, please "
                       "report it", exit_code=FAILURE)
    return {"max_abs_diff": diff, "tolerance": EXACTNESS_TOLERANCE.limit(scale),
            "tolerance_rule": EXACTNESS_TOLERANCE.describe(scale), "check_images": int(x.shape[0])}


def _check_counts(reference: MaskedNetwork, pruned: torch.nn.Module, input_hw: tuple[int, int]) -> dict[str, int]:
    """fvcore's MACs/params of the pruned model, which must equal the masked-network formula's."""
    masked_counts = reference.cost(input_hw).as_ints()
    after = fvcore_counts(pruned, input_hw)
    if after != masked_counts:
        raise PddError(f"fvcore counts {after} differ from the masked-network counts {masked_counts}; "
                       "nothing written; this is a pdd-edge bug, please report it", exit_code=FAILURE)
    return after


def _layers(masked: MaskedNetwork, plan: PrunePlan) -> dict[str, dict[str, Any]]:
    """Per mask point: channels kept of the total, re-opened and closed by the plan, and its label."""
    return {p: {"kept": len(plan.local[p]), "total": n, "reopened": plan.reopened.get(p, 0),
                "closed": plan.closed.get(p, 0), "label": masked.arch.point_label(p)}
            for p, n in masked.points.items()}


def _latency_report(cfg: PruneConfig, table, latency: tuple | None, dense_ms: float | None,
                    reference: MaskedNetwork, plan: PrunePlan) -> dict[str, Any]:
    """The latency table's key, the target and the predictions for the pruned and the dense network."""
    return {
        "table": str(cfg.latency_table), "target": table.key["target"], "batch_size": table.key["batch_size"],
        "threads": table.key["threads"], "target_ms": latency[1] if latency else None,
        "predicted_ms": float(table.predict_counts(reference.arch, reference.open_counts())),
        "dense_predicted_ms": dense_ms,
        "dense_measured_ms": table.dense_ms, "model_error_pct": table.record["error"]["check_max_abs_pct"],
        "limited": plan.latency_limit}


def _validation_batch(data, n: int) -> torch.Tensor:
    images = []
    for x, _ in data.val.batches(min(n, 500), shuffle=False, augment=None, seed=0, epoch=0):
        images.append(x)
        if sum(len(t) for t in images) >= n:
            break
    if not images:
        raise PddError(f"the {data.name} validation split is empty; cannot check the pruned model")
    return torch.cat(images)[:n]


# --- the pipeline stage ------------------------------------------------------------------------

def channel_multiple(target: str, measure: bool) -> int | None:
    """The first target's channel multiple: declared, else (with `measure`) measured on this
    machine when it is the target's device (latency/multiple.py), else None."""
    from pdd_edge.latency import multiple
    from pdd_edge.profiling.targets import load_target

    t = load_target(target)
    if t.channel_multiple is not None or not measure:
        return t.channel_multiple
    return multiple.here(t, progress=lambda line: print(line, file=sys.stderr))  # stdout may carry --json


def deploy_multiple(cfg: CompressConfig, measure: bool = False) -> int | None:
    """The multiple the run's widths are pruned to (the distillation's masks train at it): `--round-to`,
    else the first target's `channel_multiple` (measured here when the target declares none and
    this machine is its device: `measure`, which the up-front validation leaves off), else with a
    latency target the latency table's (None), else 1."""
    if cfg.round_to is not None:
        return cfg.round_to  # a given 0 is refused by DistillConfig / PruneConfig, as by `prune`
    if cfg.latency_target is not None:
        return channel_multiple(cfg.targets[0], measure=False)  # None: the latency table's
    return channel_multiple(cfg.targets[0], measure) or 1


def config(run: RunDir, cfg: CompressConfig, measure: bool = False) -> PruneConfig:
    """The distilled student, pruned to at least its MACs or latency target (when the run has one),
    with widths rounded to the multiple its masks trained at under a budget (recorded in the
    checkpoint), or for pure PDD (raw masks) to `deploy_multiple`, unless `--round-to` says otherwise."""
    latency = cfg.latency_target is not None
    budget = latency or bool(cfg.target_macs_reduction)
    round_to = cfg.round_to if budget else deploy_multiple(cfg, measure)
    return PruneConfig(checkpoint=str(run.best("distill")), round_to=round_to,
                       min_macs_reduction=cfg.target_macs_reduction or None,
                       latency_table=str(run.latency_table()) if latency else None,
                       target_latency_ms=cfg.target_latency_ms, target_speedup=cfg.target_speedup)


def run(run: RunDir, cfg: CompressConfig, setup: TrainSetup) -> StageResult:
    out = run.pruned()
    report = prune_checkpoint(config(run, cfg, measure=True), out)
    write_json(run.prune_report(), report)
    return StageResult([out, run.prune_report()], {k: v for k, v in report.items() if k not in ("source", "output")})
