"""`pdd-edge compress`: the whole chain, from a teacher to a gated, profiled deployable model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from pdd_edge.cli import options
from pdd_edge.cli.console import err, out, warn_foreign
from pdd_edge.cli.setup import training_setup
from rich.markup import escape
from rich.table import Table

from pdd_edge.config import recipe_help
from pdd_edge.errors import require_torch


def compress_command(
    *,
    student: Annotated[str, typer.Option("--student", "-s", callback=options.trusted_spec, help=f"The student: {options.SPEC_FORMS}.")] = "resnet20",
    teacher: Annotated[str, typer.Option("--teacher", callback=options.trusted_spec, help="The teacher, as a model spec like --student.")] = "resnet56",
    model_args: options.ModelArg = None,
    teacher_weights: Annotated[Optional[Path], typer.Option(help="Teacher checkpoint; without it the teacher is trained once and cached.")] = None,
    teacher_mean: Annotated[Optional[str], typer.Option(help="Normalisation mean of third-party teacher weights.")] = None,
    teacher_std: Annotated[Optional[str], typer.Option(help="Normalisation std of third-party teacher weights.")] = None,
    teacher_input_size: options.TeacherInputSize = None,
    dataset: options.Dataset = "digits",
    data_dir: options.DataDir = None,
    download: options.Download = False,
    input_size: options.InputSize = None,
    target: Annotated[Optional[list[str]], typer.Option("--target", "-t", help="Device target to profile and report (repeatable; default: local).")] = None,
    quantize: Annotated[bool, typer.Option("--quantize/--no-quantize", help="Also produce a static INT8 model.")] = True,
    target_macs_reduction: Annotated[Optional[float], typer.Option(help="MACs budget instead of the recipe's speed target, e.g. 0.5 lands at -50 % (+/- 3 points or more removed), widths at the first target's channel multiple; 0: none, pure PDD. The quick and standard recipes fall back to 0.6 where their speed target cannot be priced (the first target is another machine and no --latency-table is given, or its table misses its check networks by over 5 %).")] = None,
    target_latency_ms: Annotated[Optional[float], typer.Option(help="Latency budget: this p50 latency (ms) on the first --target, measured there (see docs/latency.md).")] = None,
    target_speedup: Annotated[Optional[float], typer.Option(help=f"Latency budget: the unpruned student's latency on the first --target divided by this, measured there ({recipe_help('target_speedup')}).")] = None,
    latency_table: Annotated[Optional[Path], typer.Option(help="The first target's latency table, made on the device with `pdd-edge latency-table --remote` (default: measured here).")] = None,
    warm_start: Annotated[Optional[bool], typer.Option("--warm-start/--scratch", help=f"Distill from the trained baseline with all masks open, or from scratch with N(0, 1e-3) masks as the paper ({recipe_help('warm_start', 'warm start')}).")] = None,
    budget_ramp: Annotated[Optional[float], typer.Option(help=f"Share of the distill epochs over which the MACs or latency target is ramped in, 0 to 1 ({recipe_help('budget_ramp')}).")] = None,
    finetune_kd: Annotated[Optional[bool], typer.Option("--finetune-kd/--finetune-ce", help=f"Fine-tune with KD from the teacher, or with plain cross-entropy as the paper ({recipe_help('finetune_kd', 'KD')}).")] = None,
    lr_schedule: Annotated[Optional[str], typer.Option(metavar="step|cosine", help=f"Learning-rate schedule of the unpruned baseline, distillation and fine-tuning: step (x0.1 at the paper's milestones) or cosine ({recipe_help('lr_schedule')}).")] = None,
    round_to: Annotated[Optional[int], typer.Option(help="Keep layer widths multiples of N when pruning (default: the first target's channel_multiple; with a latency target and none, the latency table's).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (default: runs/<student>-<teacher>-<dataset>).")] = None,
    device: options.Device = "auto",
    amp: options.Amp = "auto",
    workers: options.Workers = None,
    sync_bn: options.SyncBn = False,
    channels_last: options.ChannelsLast = False,
    fused_sgd: options.FusedSgd = False,
    compile_mode: options.Compile = "off",
    resume: options.Resume = False,
    recipe: Annotated[Optional[str], typer.Option(help="quick (default for digits), standard (default otherwise: the paper's schedule, warm-started PDD with a 2x speed target) or paper (the authors' recipe exactly).")] = None,
    teacher_epochs: Annotated[Optional[int], typer.Option(help=f"Teacher training epochs ({recipe_help('teacher_epochs')}).")] = None,
    teacher_lr: Annotated[Optional[float], typer.Option(help=f"Teacher training learning rate ({recipe_help('teacher_lr')}).")] = None,
    distill_epochs: Annotated[Optional[int], typer.Option(help=f"PDD distillation epochs ({recipe_help('distill_epochs')}).")] = None,
    finetune_epochs: Annotated[Optional[int], typer.Option(help=f"Fine-tuning epochs of the pruned student ({recipe_help('finetune_epochs')}).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help=f"Training batch size ({recipe_help('batch_size')}).")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help=f"Learning rate of the unpruned baseline and of distillation, times --warm-lr-scale when warm-started ({recipe_help('lr')}).")] = None,
    finetune_lr: Annotated[Optional[float], typer.Option(help=f"Learning rate of fine-tuning ({recipe_help('finetune_lr')}).")] = None,
    warm_lr_scale: Annotated[Optional[float], typer.Option(help=f"With --warm-start, distillation and fine-tuning continue the trained baseline and start at --lr and --finetune-lr times this, 0 to 1 ({recipe_help('warm_lr_scale')}).")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="SGD weight decay; masks get the same, as in PDD (default: 0.005 in every recipe).")] = None,
    alpha: Annotated[float, typer.Option(help="KD: weight of cross-entropy.")] = 0.6,
    temperature: Annotated[float, typer.Option("--temperature", "-T", help="KD temperature.")] = 3.0,
    seed: options.Seed = 0,
    calibration_size: Annotated[int, typer.Option(help="Training images to calibrate INT8 with.")] = 256,
    profile_min_runs: Annotated[int, typer.Option(help="Timed runs per variant when profiling, at least.")] = 100,
    profile_min_time: Annotated[float, typer.Option(help="Seconds of timed runs per target, at least.")] = 2.0,
) -> None:
    """distill-prune -> prune -> finetune -> export -> simplify -> quantize -> profile -> report, in one run directory.\f
    Long only in its signature: one parameter per command-line option, which is where Typer
    reads them; the work is the few lines below. (`cli/app.py` gives the command list the first
    line alone: Typer's list would show this paragraph too.)
    """
    require_torch("pdd-edge compress")
    from pdd_edge import config
    from pdd_edge.profiling.targets import load_target
    from pdd_edge.zoo.specs import slug

    data = options.data_config(dataset, data_dir, download, input_size)
    # Built-in targets by name; a user's file by path (its content is read when profiling).
    targets = tuple(t if str(t).endswith(".toml") else load_target(t).name for t in (target or ["local"]))
    base = config.from_recipe(recipe, student=student, teacher=teacher, data=data)
    base = config.resolve(base, student_args=options.model_args(model_args) or None)
    base = config.with_objective(base, macs=target_macs_reduction, latency_ms=target_latency_ms, speedup=target_speedup)
    cfg = config.resolve(
        base, teacher_weights=str(teacher_weights) if teacher_weights else None,
        teacher_norm=options.norm_override(teacher_mean, teacher_std, "teacher-", teacher_input_size), targets=targets, quantize=quantize,
        warm_start=warm_start, budget_ramp=budget_ramp,
        latency_table=str(latency_table) if latency_table else None,
        finetune_kd=finetune_kd, lr_schedule=lr_schedule, round_to=round_to, seed=seed, teacher_epochs=teacher_epochs,
        teacher_lr=teacher_lr, distill_epochs=distill_epochs, finetune_epochs=finetune_epochs, batch_size=batch_size, lr=lr,
        finetune_lr=finetune_lr, warm_lr_scale=warm_lr_scale, weight_decay=weight_decay, alpha=alpha, temperature=temperature,
        calibration_size=calibration_size, profile_min_runs=profile_min_runs, profile_min_time_s=profile_min_time,
    )
    run_dir = out_dir or Path("runs") / f"{slug(student)}-{slug(teacher)}-{data.name}"
    with training_setup(device, amp, workers, sync_bn, channels_last, fused_sgd, compile_mode) as setup:
        _run(cfg, run_dir, resume, setup)


def _run(cfg, run_dir: Path, resume: bool, setup) -> None:
    from pdd_edge import pipeline

    pipeline.validate(cfg, run_dir, setup)  # everything the user gave, before the latency table is measured

    def on_event(ev) -> None:
        if ev.status == "start":
            err.print(f"[bold]>> {ev.name}[/]")
        elif ev.status == "done":
            err.print(f"[green]done[/] {ev.name} in {ev.seconds:.1f}s")
        else:
            err.print(f"[dim]skip {ev.name} (finished earlier with the same options)[/]")

    run = pipeline.run_pipeline(cfg, run_dir, resume=resume, on_event=on_event, setup=setup,
                                decide=lambda c: _objective(c, setup, run_dir, resume))
    if setup.dist.is_main:
        print_summary(run, cfg)


def _started(run_dir: Path) -> dict | None:
    """The config of the run in `run_dir` (its manifest's), or None where there is none yet."""
    from pdd_edge.artifact import RunDir
    from pdd_edge.errors import PddError

    try:
        return RunDir.load(run_dir).manifest["config"]
    except PddError:
        return None  # no run yet (or not one: RunDir.create says so)


def _objective(cfg, setup, run_dir: Path, resume: bool):
    """The recipe's speed target, or its MACs fallback (stages/latency.objective): decided by rank 0,
    which measures the latency table, and shared with the other torchrun ranks."""
    from pdd_edge.errors import PddError
    from pdd_edge.stages import latency
    from pdd_edge.training.distributed import broadcast_int

    KEEP, FALLBACK, FAILED = 0, 1, 2
    if setup.dist.is_main:
        try:
            decided, note = latency.objective(cfg, started=_started(run_dir) if resume else None)
        except BaseException:
            broadcast_int(FAILED, setup.dist)  # the other ranks stop too instead of waiting for rank 0
            raise
        if note:
            err.print(f"[bold yellow]note:[/] {escape(note)}")
        broadcast_int(KEEP if decided is cfg else FALLBACK, setup.dist)
        return decided
    choice = broadcast_int(KEEP, setup.dist)
    if choice == FAILED:
        raise PddError("rank 0 could not set up the latency target (its error says why)", every_rank=True)
    return latency.fallback(cfg) if choice == FALLBACK else cfg


def print_summary(run, cfg) -> None:
    from pdd_edge.fileio import read_json
    from pdd_edge.profiling.targets import load_target
    from pdd_edge.report.build import fmt

    total = sum(r["seconds"] for r in run.manifest["stages"].values())
    deployed: dict[str, None] = {}  # the file each target ships, in target order, each once
    for target in cfg.targets:
        name = load_target(target).name
        rep = read_json(run.report_json(name), "report")
        table = Table(title=escape(f"{cfg.student} from {cfg.teacher} on {cfg.data.name}, target {name} "
                                   "(MACs = multiply-accumulates, conv+linear)"))
        for col in ("variant", "top-1 %", "MACs", "params", "size MiB", "p50 ms", "p90 ms", "speedup"):
            table.add_column(col, justify="left" if col == "variant" else "right")
        for vname, v in rep["variants"].items():
            label = vname + (" (deployed)" if vname == rep["deployable"] else "")
            table.add_row(label, fmt(v["top1"], ".2f"), fmt(v["macs"], ","), fmt(v["params"], ","),
                          fmt(v["size_mb"], ".3f"), fmt(v["latency_p50_ms"], ".3f"), fmt(v["latency_p90_ms"], ".3f"),
                          fmt(v["speedup_p50"], ".2f", "x"))
        out.print(table)
        warn_foreign(rep.get("device_check"))
        if rep.get("not_faster"):
            err.print(f"[bold red]NOT FASTER on {escape(name)}: {escape(rep['not_faster'])}[/]")
        deployed[str(run.path(rep["variants"][rep["deployable"]]["file"]))] = None
        out.print(f"report: {run.report_md(name)}", markup=False)
    out.print(f"deployable models: {', '.join(deployed)}", markup=False)
    out.print(f"run directory: {run.root} (manifest.json; stage time in this run and earlier ones: {total:.0f}s)",
              markup=False)
