"""`pdd-edge compress`: the whole chain in one run directory.

    [latency] -> teacher -> baseline -> distill -> prune -> finetune -> export -> simplify -> quantize
            -> evaluate -> profile -> report

The stages are the explicit tuple `STAGES` below. Each names the options it depends on and the
stages whose files it reads; its hash folds in both, so a changed option re-runs that stage and
everything downstream of it, nothing else. A stage whose record in `manifest.json` has the same
hash (and whose files exist) is skipped: `--resume` after a crash redoes only what is missing, and
the training stages continue from their last finished epoch. Stages exchange files, never objects.

Each stage is the module `stages/<name>.py` with the entry point `run(run, cfg, setup) -> StageResult`
(`setup`: the device, precision and process group to train with); this file holds only the table,
the hashing, resume, the up-front validation and who runs what under torchrun.

Under torchrun every rank runs the training stages (`Stage.trains`) together, in DDP; the other
stages run on rank 0 alone while the other ranks wait at a barrier, and only rank 0 writes the
manifest. After the last training stage the other ranks wait for rank 0 to finish the chain and
then exit.

`baseline` is the unpruned student distilled with the same KD loss for as many epochs as
distill + finetune together: the fair reference for "did pruning cost accuracy?".
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pdd_edge import locking, zoo
from pdd_edge.artifact import RunDir, StageRecord
from pdd_edge.config import CompressConfig, config_hash, to_jsonable
from pdd_edge.errors import USAGE, PddError, environment_error
from pdd_edge.fileio import check_output_dir
from pdd_edge.profiling.targets import load_target
from pdd_edge.stages import (
    StageResult,
    baseline,
    distill,
    evaluate,
    export,
    finetune,
    latency,
    profile,
    prune,
    quantize,
    report,
    simplify,
    teacher,
)
from pdd_edge.training.distributed import barrier
from pdd_edge.training.setup import TrainSetup
from pdd_edge.zoo import specs


Names = tuple[str, ...] | Callable[[CompressConfig], tuple[str, ...]]


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[RunDir, CompressConfig], StageResult]
    options: Names  # CompressConfig fields the stage depends on (or a function of the config giving them)
    inputs: Names = ()  # stages whose files it reads
    enabled: Callable[[CompressConfig], bool] = lambda cfg: True
    trains: bool = False  # every torchrun rank runs it (DDP); otherwise rank 0 alone
    # Raised when the stage's files change for the same options (a resumed older run then redoes it).
    version: int = 0

    def depends_on(self, cfg: CompressConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(options, input stages) of this stage under `cfg`."""
        return tuple(_names(self.options, cfg)), tuple(_names(self.inputs, cfg))


def _names(names: Names, cfg: CompressConfig) -> tuple[str, ...]:
    return names(cfg) if callable(names) else names


KD = ("teacher_norm", "alpha", "temperature")


ALL = ("student", "student_args", "teacher", "data", "seed")
STAGES: tuple[Stage, ...] = (
    # First: a latency request the student cannot reach is refused before any training.
    Stage("latency", latency.run, ("student", "student_args", "data", "targets", "latency_table", "target_latency_ms",
                                   "target_speedup"), enabled=latency.enabled),
    Stage("teacher", teacher.run,
          ("teacher", "teacher_weights", "data", "seed", "teacher_epochs", "teacher_lr", "teacher_warmup_epochs",
           "batch_size"), trains=True),
    Stage("baseline", baseline.run,
          ALL + ("teacher_norm", "distill_epochs", "finetune_epochs", "batch_size", "lr", "weight_decay", "alpha",
                 "temperature", "lr_schedule"), ("teacher",), trains=True),
    Stage("distill", distill.run,
          ALL + KD + ("distill_epochs", "batch_size", "lr", "weight_decay", "target_macs_reduction", "warm_start",
                      "budget_ramp", "target_latency_ms", "target_speedup", "lr_schedule", "warm_lr_scale",
                      "round_to", "targets"),
          lambda c: ("teacher", "baseline", "latency") if c.warm_start else ("teacher", "latency"), trains=True,
          # 1, 2: a latency constraint prices the widths prune deploys (nn/constraint.deployed_counts), nearest;
          # 3: the masks train those widths (zoo/masks.py, "trained as deployed"; the first target's multiple)
          version=3),
    Stage("prune", prune.run, ("round_to", "target_macs_reduction", "target_latency_ms", "target_speedup", "targets"),
          ("distill", "latency")),
    Stage("finetune", finetune.run,
          lambda c: ("data", "seed", "finetune_epochs", "batch_size", "finetune_lr", "weight_decay", "finetune_kd",
                     "lr_schedule", "warm_start", "warm_lr_scale")
          + (("teacher",) + KD if c.finetune_kd else ()),
          lambda c: ("prune", "teacher") if c.finetune_kd else ("prune",), trains=True),
    Stage("export", export.run, ("data",), ("baseline", "finetune")),
    Stage("simplify", simplify.run, ("data",), ("export",)),
    # version 1: the unpruned student is quantized too (a deployment candidate)
    Stage("quantize", quantize.run, ("data", "calibration_size"), ("simplify",), enabled=lambda c: c.quantize,
          version=1),
    Stage("evaluate", evaluate.run, ("data", "quantize"), ("simplify", "quantize")),
    Stage("profile", profile.run, ("targets", "quantize", "profile_min_runs", "profile_min_time_s"),
          ("simplify", "quantize")),
    Stage("report", report.run, ("targets", "quantize"), ("prune", "finetune", "evaluate", "profile")),
)


def stage_hashes(cfg: CompressConfig) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for stage in STAGES:
        if not stage.enabled(cfg):
            continue
        options, inputs = stage.depends_on(cfg)
        own = {k: to_jsonable(getattr(cfg, k)) for k in options}
        upstream = {name: hashes[name] for name in inputs if name in hashes}
        payload = {"stage": stage.name, "options": own, "inputs": upstream}
        if stage.version:  # absent at 0, so the hashes of unchanged stages stay what they were
            payload["version"] = stage.version
        hashes[stage.name] = config_hash(payload)
    return hashes


@dataclass
class StageEvent:
    name: str
    status: str  # "start", "done", or "skipped" (done before with the same hash)
    seconds: float


def run_pipeline(cfg: CompressConfig, out: str | Path, *, resume: bool = False,
                 on_event: Callable[[StageEvent], None] | None = None, setup: TrainSetup | None = None,
                 decide: Callable[[CompressConfig], CompressConfig] | None = None) -> RunDir:
    """Run the chain for `cfg` in `out`. `decide(cfg)`, called on every rank once the run folder is
    held (so that a folder another process holds is refused before any work), may replace the
    config before the run is created (`compress`: the default objective, which measures)."""
    setup = setup or TrainSetup()
    info = setup.dist
    fresh = not Path(out).exists()
    barrier(info)  # every rank has validated `out` before rank 0 creates the run in it
    run: RunDir | None = None
    # Rank 0 writes for all, so it alone holds the run folder, for the whole chain.
    with locking.hold(locking.folder_lock(out), f"run folder {out}", fix=", or choose another --out") \
            if info.is_main else contextlib.nullcontext():
        try:
            if decide is not None:
                cfg = decide(cfg)
            if info.is_main:
                run = RunDir.create(out, to_jsonable(cfg), resume=resume)
            barrier(info)
            if not info.is_main:
                run = RunDir.load(out)  # the manifest rank 0 wrote: the same stages are done for everyone
            _run_stages(run, cfg, on_event, setup)
        except (PddError, OSError, RuntimeError) as exc:
            # A usage error before any training stage finished (a file that went bad after validation) leaves
            # nothing behind, so that the corrected command is not refused as "already holds a run".
            # So does a failure of the machine (disk full, even writing the first manifest) in a run
            # this command created: its stages are not half a result to resume but space to give
            # back. A --resume'd run keeps its stages.
            # (The latency stage's table stays in the cache: removing the run loses no work.)
            trained = run and any(s.trains for s in STAGES if s.name in run.manifest["stages"])
            usage = isinstance(exc, PddError) and exc.exit_code == USAGE and not trained
            if info.is_main and fresh and (usage or environment_error(exc) is not None):
                shutil.rmtree(out, ignore_errors=True)  # it did not exist before this command
            raise
    return run


def _run_stages(run: RunDir, cfg: CompressConfig, on_event: Callable[[StageEvent], None] | None, setup: TrainSetup) -> None:
    info = setup.dist
    last_training = max(i for i, s in enumerate(STAGES) if s.trains and s.enabled(cfg))
    for i, stage in enumerate(STAGES):
        together = i <= last_training  # all ranks walk the table up to the last training stage
        if not (together or info.is_main):
            break  # the rest of the chain is rank 0's alone: wait for it below
        if not stage.enabled(cfg):
            if info.is_main:
                run.forget(stage.name)
            continue
        h = stage_hashes(cfg)[stage.name]
        if run.is_done(stage.name, h):
            if on_event:
                on_event(StageEvent(stage.name, "skipped", 0.0))
            continue
        previous = run.record(stage.name)
        if info.is_main:
            if previous is not None and previous.get("config_hash") != h:
                # Options changed since this stage finished: its files (training state included) are stale.
                shutil.rmtree(run.stage_folder(stage.name), ignore_errors=True)
            run.forget(stage.name)
            run.begin(stage.name, h)  # an unfinished attempt with other options or version: removed
        if on_event:
            on_event(StageEvent(stage.name, "start", 0.0))
        if together:
            barrier(info)  # stale files are gone before any rank reads or writes this stage's folder
        t0 = time.perf_counter()
        result = stage.run(run, cfg, setup) if stage.trains or info.is_main else None
        if together:
            barrier(info)  # rank 0's files of this stage exist before any rank reads them
        seconds = time.perf_counter() - t0
        if info.is_main and result is not None:
            run.commit(StageRecord(name=stage.name, config_hash=h, seconds=seconds,
                                   files=[run.rel(f) for f in result.files], metrics=to_jsonable(result.metrics)))
        if on_event:
            on_event(StageEvent(stage.name, "done", seconds))
    barrier(info)  # the other ranks exit once rank 0 has finished the chain


def validate(cfg: CompressConfig, out: str | Path, setup: TrainSetup | None = None) -> None:
    """Fail before hours of training on anything that would fail later.

    Every option is checked by the stage config that uses it (its one validation); building each
    stage's config here, before any work, runs those checks up front. Nothing is written.
    """
    (setup or TrainSetup()).rank_batch(cfg.batch_size)  # the global batch splits among torchrun's ranks
    cfg.data.check()  # a typo in --dataset or --data-dir must not wait for the baseline stage
    for target in cfg.targets:
        load_target(target)  # a bad target file is reported as itself, not as the first stage that reads it
    specs.parse(cfg.teacher)
    if not zoo.is_zoo(cfg.student):
        # Trace the student now: a network whose channel groups cannot be found fails in seconds,
        # not after the teacher and the baseline have trained.
        zoo.build(cfg.student, num_classes=10, args=cfg.student_args, input_size=cfg.data.input_size, check_output=False)
    check_output_dir(out, cfg.teacher_weights, writes=("manifest.json",))
    run = RunDir(out)  # paths only: nothing is created
    checks: dict[str, Callable[[], object]] = {
        "teacher": lambda: teacher.config(cfg),
        "baseline": lambda: distill.config(run, cfg, masks=False, epochs=cfg.distill_epochs + cfg.finetune_epochs),
        "latency": lambda: latency.validate(cfg),
        "distill": lambda: distill.config(run, cfg),
        "prune": lambda: prune.config(run, cfg),
        "finetune": lambda: finetune.config(run, cfg),
        "quantize": lambda: quantize.config(cfg) if cfg.quantize else None,
        "profile": lambda: [profile.request(t, min_runs=cfg.profile_min_runs, min_time_s=cfg.profile_min_time_s)
                            for t in cfg.targets],
    }
    for stage, check in checks.items():
        try:
            check()
        except PddError as exc:
            raise PddError(f"{stage} stage: {exc}", exit_code=exc.exit_code) from None
