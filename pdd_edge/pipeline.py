"""`pdd-edge compress`: the whole chain in one run directory.

    teacher -> baseline -> distill -> prune -> finetune -> export -> simplify -> quantize
            -> evaluate -> profile -> report

The stages are the explicit tuple `STAGES` below. Each names the options it depends on and the
stages whose files it reads; its hash folds in both, so a changed option re-runs that stage and
everything downstream of it, nothing else. A stage whose record in `manifest.json` has the same
hash (and whose files exist) is skipped: `--resume` after a crash redoes only what is missing, and
the training stages continue from their last finished epoch. Stages exchange files, never objects.

`baseline` is the unpruned student distilled with the same KD loss for as many epochs as
distill + finetune together: the fair reference for "did pruning cost accuracy?".
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from pdd_edge.artifact import RunDir, StageRecord
from pdd_edge.config import config_hash, to_jsonable
from pdd_edge.data.options import DataConfig, NormOverride
from pdd_edge.errors import PddError
from pdd_edge.fileio import atomic_path, write_json

# Recipes: the paper's CIFAR schedule, and a short one that fits the built-in `digits` (1,438
# training images) in minutes on 2 CPU cores. Chosen per dataset unless options override them.
RECIPES: dict[str, dict[str, Any]] = {
    # A deep teacher from scratch at batch 64 diverges at lr 0.1 on digits: 0.05 with a one-epoch
    # warm-up trains ResNet56 to ~98.6 % in 10 epochs.
    "quick": {"teacher_epochs": 10, "teacher_lr": 0.05, "teacher_warmup_epochs": 1, "distill_epochs": 15,
              "finetune_epochs": 10, "batch_size": 64, "lr": 0.05, "finetune_lr": 0.05},
    "paper": {"teacher_epochs": 200, "teacher_lr": 0.1, "teacher_warmup_epochs": 0, "distill_epochs": 50,
              "finetune_epochs": 150, "batch_size": 256, "lr": 0.01, "finetune_lr": 0.01},
}


def default_recipe(dataset: str) -> str:
    return "quick" if dataset == "digits" else "paper"


@dataclass(frozen=True)
class CompressConfig:
    student: str
    teacher: str
    teacher_weights: str | None = None
    teacher_norm: NormOverride = field(default_factory=NormOverride)
    data: DataConfig = field(default_factory=DataConfig)
    targets: tuple[str, ...] = ("local",)
    quantize: bool = True
    target_macs_reduction: float | None = None
    round_to: int = 1
    seed: int = 0
    recipe: str = "quick"
    teacher_epochs: int = 10
    teacher_lr: float = 0.05
    teacher_warmup_epochs: int = 1
    distill_epochs: int = 15
    finetune_epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    finetune_lr: float = 0.05
    weight_decay: float = 5e-3
    alpha: float = 0.6
    temperature: float = 3.0
    calibration_size: int = 256
    profile_min_runs: int = 100
    profile_min_time_s: float = 2.0


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[RunDir, CompressConfig], tuple[list[Path], dict[str, Any]]]
    options: tuple[str, ...]  # CompressConfig fields the stage depends on
    inputs: tuple[str, ...] = ()  # stages whose files it reads
    enabled: Callable[[CompressConfig], bool] = lambda cfg: True


def cache_dir() -> Path:
    root = os.environ.get("PDD_EDGE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pdd-edge")
    return Path(root)


def _copy(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


# --- stages ------------------------------------------------------------------------------------

def teacher_stage(run: RunDir, cfg: CompressConfig) -> tuple[list[Path], dict[str, Any]]:
    """The teacher: given weights, or trained once per (architecture, dataset, seed, recipe) and cached."""
    from pdd_edge.stages import train
    from pdd_edge.zoo import checkpoint as ckpt_io

    out = run.stage_dir("teacher") / "teacher.pt"
    if cfg.teacher_weights:
        ckpt_io.load(cfg.teacher_weights, model_name=cfg.teacher)  # fail now on a bad file, not mid-run
        _copy(Path(cfg.teacher_weights), out)
        return [out], {"source": str(cfg.teacher_weights), "cached": False}
    tcfg = train.TrainConfig(model=cfg.teacher, data=cfg.data, optim=train.default_optim(
        cfg.teacher_epochs, batch_size=cfg.batch_size, lr=cfg.teacher_lr, warmup_epochs=cfg.teacher_warmup_epochs,
        seed=cfg.seed))
    key = f"{cfg.teacher}-{cfg.data.name}-seed{cfg.seed}-{config_hash(tcfg)}"
    cached = cache_dir() / "teachers" / f"{key}.pt"
    reused = cached.exists()  # only complete teachers are published under this name
    if not reused:
        from pdd_edge.training.loop import TrainFiles

        work = cache_dir() / "teachers" / f"{key}.training"  # resumable if this run is interrupted
        train.run(tcfg, work / "best.pt", resume="auto", files=TrainFiles.in_dir(work))
        _copy(work / "best.pt", cached)
        shutil.rmtree(work, ignore_errors=True)
    _copy(cached, out)
    metrics = ckpt_io.read(out)["metrics"]
    return [out], {"source": str(cached), "cached": reused, "val_top1": metrics.get("val_top1")}


def _distill_config(cfg: CompressConfig, run: RunDir, *, masks: bool, epochs: int):
    from pdd_edge.stages import distill

    return distill.DistillConfig(
        student=cfg.student, teacher_weights=str(run.path("teacher/teacher.pt")), teacher=cfg.teacher,
        data=cfg.data, masks=masks, alpha=cfg.alpha, temperature=cfg.temperature, teacher_norm=cfg.teacher_norm,
        target_macs_reduction=cfg.target_macs_reduction if masks else None,
        optim=distill.default_optim(epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    seed=cfg.seed),
    )


def _fit_metrics(result) -> dict[str, Any]:
    keep = ("epoch", "val_top1", "val_top5", "kept_pct", "masked_macs", "masked_params", "macs_reduction_pct")
    return {k: result.best[k] for k in keep if k in result.best} | {"epochs_run": len(result.history)}


def baseline_stage(run: RunDir, cfg: CompressConfig):
    from pdd_edge.stages import distill

    folder = run.stage_dir("baseline")
    result = distill.run(_distill_config(cfg, run, masks=False, epochs=cfg.distill_epochs + cfg.finetune_epochs),
                         folder, resume="auto")
    return [folder / "best.pt", folder / "history.json"], _fit_metrics(result)


def distill_stage(run: RunDir, cfg: CompressConfig):
    from pdd_edge.stages import distill

    folder = run.stage_dir("distill")
    result = distill.run(_distill_config(cfg, run, masks=True, epochs=cfg.distill_epochs), folder, resume="auto")
    return [folder / "best.pt", folder / "history.json"], _fit_metrics(result)


def prune_stage(run: RunDir, cfg: CompressConfig):
    from pdd_edge.stages import prune

    out = run.stage_dir("prune") / "pruned.pt"
    report = prune.run(prune.PruneConfig(checkpoint=str(run.path("distill/best.pt")), round_to=cfg.round_to), out)
    write_json(out.with_suffix(".json"), report)
    return [out, out.with_suffix(".json")], {k: v for k, v in report.items() if k not in ("source", "output")}


def finetune_stage(run: RunDir, cfg: CompressConfig):
    from pdd_edge.stages import finetune

    folder = run.stage_dir("finetune")
    result = finetune.run(finetune.FinetuneConfig(
        checkpoint=str(run.path("prune/pruned.pt")), data=cfg.data,
        optim=finetune.default_optim(cfg.finetune_epochs, batch_size=cfg.batch_size, lr=cfg.finetune_lr,
                                     weight_decay=cfg.weight_decay, seed=cfg.seed)), folder, resume="auto")
    return [folder / "best.pt", folder / "history.json"], _fit_metrics(result)


def export_stage(run: RunDir, cfg: CompressConfig):
    from pdd_edge.stages import export

    folder = run.stage_dir("export")
    metrics = {}
    for variant, ckpt in (("baseline", "baseline/best.pt"), ("pruned", "finetune/best.pt")):
        res = export.run(export.ExportConfig(data=cfg.data), run.path(ckpt), folder / f"{variant}.onnx")
        metrics[variant] = {"parity_max_abs_diff": res.parity_max_abs_diff, "nodes": res.nodes, "size_bytes": res.size_bytes}
    return [folder / "baseline.onnx", folder / "pruned.onnx"], metrics


def simplify_stage(run: RunDir, cfg: CompressConfig):
    from pdd_edge.stages import simplify

    folder = run.stage_dir("simplify")
    metrics, files = {}, []
    for variant in ("baseline", "pruned"):
        out = folder / f"{variant}.onnx"
        res = simplify.run(simplify.SimplifyConfig(data=cfg.data), run.path(f"export/{variant}.onnx"), out)
        metrics[variant] = {k: v for k, v in vars(res).items() if k != "path"}
        files.append(out)
    return files, metrics


def quantize_stage(run: RunDir, cfg: CompressConfig):
    from pdd_edge.stages import quantize

    out = run.stage_dir("quantize") / "pruned.int8.onnx"
    res = quantize.run(quantize.QuantizeConfig(data=cfg.data, calibration_size=cfg.calibration_size),
                       run.path("simplify/pruned.onnx"), out)
    return [out], {k: v for k, v in vars(res).items() if k != "path"}


def variants(cfg: CompressConfig) -> dict[str, str]:
    """The deployable ONNX files compared in the evaluation, profile and report."""
    files = {"baseline": "simplify/baseline.onnx", "pruned": "simplify/pruned.onnx"}
    if cfg.quantize:
        files["int8"] = "quantize/pruned.int8.onnx"
    return files


def evaluate_stage(run: RunDir, cfg: CompressConfig):
    """Top-1 of every deployable file, measured on the file itself with onnxruntime."""
    from pdd_edge.stages.evaluate import evaluate_onnx

    results = {name: evaluate_onnx(run.path(rel), cfg.data) | {"file": rel} for name, rel in variants(cfg).items()}
    out = run.stage_dir("evaluate") / "accuracy.json"
    write_json(out, {"schema": "pdd-edge.accuracy/1", "dataset": cfg.data.name, "variants": results})
    return [out], {name: {"top1": r["top1"], "top5": r["top5"], "count": r["count"]} for name, r in results.items()}


def profile_stage(run: RunDir, cfg: CompressConfig):
    from pdd_edge.report.measure import profile_variants

    folder = run.stage_dir("profile")
    files, metrics = [], {}
    for target in cfg.targets:
        record = profile_variants({k: run.path(v) for k, v in variants(cfg).items()}, target,
                                  min_runs=cfg.profile_min_runs, min_time_s=cfg.profile_min_time_s)
        name = record["target"]["name"]
        out = folder / f"profile-{name}.json"
        write_json(out, record)
        files.append(out)
        metrics[name] = {v: m["summary"] for v, m in record["variants"].items()}
    return files, metrics


def report_stage(run: RunDir, cfg: CompressConfig):
    from pdd_edge.profiling.targets import load_target
    from pdd_edge.report.build import write_reports

    files = write_reports(run, [load_target(t).name for t in cfg.targets])
    return files, {"reports": [run.rel(f) for f in files if str(f).endswith(".md")]}


ALL = ("student", "teacher", "data", "seed")
STAGES: tuple[Stage, ...] = (
    Stage("teacher", teacher_stage, ("teacher", "teacher_weights", "data", "seed", "teacher_epochs", "teacher_lr",
                                     "teacher_warmup_epochs", "batch_size")),
    Stage("baseline", baseline_stage, ALL + ("teacher_norm", "distill_epochs", "finetune_epochs", "batch_size", "lr",
                                             "weight_decay", "alpha", "temperature"), ("teacher",)),
    Stage("distill", distill_stage, ALL + ("teacher_norm", "distill_epochs", "batch_size", "lr", "weight_decay",
                                           "alpha", "temperature", "target_macs_reduction"), ("teacher",)),
    Stage("prune", prune_stage, ("round_to",), ("distill",)),
    Stage("finetune", finetune_stage, ("data", "seed", "finetune_epochs", "batch_size", "finetune_lr", "weight_decay"),
          ("prune",)),
    Stage("export", export_stage, ("data",), ("baseline", "finetune")),
    Stage("simplify", simplify_stage, ("data",), ("export",)),
    Stage("quantize", quantize_stage, ("data", "calibration_size"), ("simplify",), enabled=lambda c: c.quantize),
    Stage("evaluate", evaluate_stage, ("data", "quantize"), ("simplify", "quantize")),
    Stage("profile", profile_stage, ("targets", "quantize", "profile_min_runs", "profile_min_time_s"),
          ("simplify", "quantize")),
    Stage("report", report_stage, ("targets", "quantize"), ("prune", "finetune", "evaluate", "profile")),
)


def stage_hashes(cfg: CompressConfig) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for stage in STAGES:
        if not stage.enabled(cfg):
            continue
        own = {k: to_jsonable(getattr(cfg, k)) for k in stage.options}
        upstream = {name: hashes[name] for name in stage.inputs if name in hashes}
        hashes[stage.name] = config_hash({"stage": stage.name, "options": own, "inputs": upstream})
    return hashes


@dataclass
class StageEvent:
    name: str
    status: str  # "start", "done", or "skipped" (done before with the same hash)
    seconds: float


def run_pipeline(cfg: CompressConfig, out: str | Path, *, resume: bool = False,
                 on_event: Callable[[StageEvent], None] | None = None) -> RunDir:
    run = RunDir.create(out, to_jsonable(cfg), resume=resume)
    for stage in STAGES:
        if not stage.enabled(cfg):
            run.forget(stage.name)
            continue
        h = stage_hashes(cfg)[stage.name]
        if run.is_done(stage.name, h):
            if on_event:
                on_event(StageEvent(stage.name, "skipped", 0.0))
            continue
        previous = run.record(stage.name)
        if previous is not None and previous.get("config_hash") != h:
            # Options changed since this stage finished: its files (training state included) are stale.
            shutil.rmtree(run.root / stage.name, ignore_errors=True)
        run.forget(stage.name)
        if on_event:
            on_event(StageEvent(stage.name, "start", 0.0))
        t0 = time.perf_counter()
        files, metrics = stage.run(run, cfg)
        seconds = time.perf_counter() - t0
        run.commit(StageRecord(name=stage.name, config_hash=h, seconds=seconds,
                               files=[run.rel(f) for f in files], metrics=to_jsonable(metrics)))
        if on_event:
            on_event(StageEvent(stage.name, "done", seconds))
    return run


def validate(cfg: CompressConfig) -> None:
    """Fail before hours of training on anything that would fail later."""
    from pdd_edge import zoo

    zoo.spec(cfg.student)
    zoo.spec(cfg.teacher)
    for name in ("teacher_epochs", "distill_epochs", "finetune_epochs", "batch_size", "calibration_size", "round_to"):
        if getattr(cfg, name) < 1:
            raise PddError(f"{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    if cfg.target_macs_reduction is not None and not 0 < cfg.target_macs_reduction < 1:
        raise PddError(f"--target-macs-reduction must be between 0 and 1 (e.g. 0.5), got {cfg.target_macs_reduction}")
    if cfg.teacher_weights is not None and not Path(cfg.teacher_weights).is_file():
        raise PddError(f"teacher weights not found: {cfg.teacher_weights}")


def resolve(cfg: CompressConfig, **overrides: Any) -> CompressConfig:
    """`cfg` with None-valued overrides dropped (CLI options not given keep the recipe's value)."""
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
