"""`pdd-edge distill`: PDD, a student distilled from a teacher while it learns which channels to keep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from pdd_edge.cli import options
from pdd_edge.cli.console import err, print_fit_summary
from pdd_edge.cli.setup import training_setup

from pdd_edge.errors import require_torch


def distill_command(
    *,
    student: Annotated[str, typer.Option("--student", "-s", callback=options.trusted_spec, help=f"The student: {options.SPEC_FORMS}.")],
    teacher_weights: Annotated[Path, typer.Option(help="Teacher checkpoint (pdd-edge's, or a third-party state dict with --teacher).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder: best.pt, last.pt, history.json.")],
    teacher: Annotated[Optional[str], typer.Option("--teacher", callback=options.trusted_spec, help="Model spec of the teacher (needed for third-party weights, and for a checkpoint of your own model file).")] = None,
    model_args: options.ModelArg = None,
    dataset: options.Dataset = "digits",
    data_dir: options.DataDir = None,
    download: options.Download = False,
    input_size: options.InputSize = None,
    epochs: Annotated[int, typer.Option(help="Distillation epochs (paper: 50).")] = 50,
    lr: options.Lr = None,
    batch_size: options.BatchSize = None,
    weight_decay: options.WeightDecay = None,
    milestones: options.Milestones = None,
    lr_schedule: options.LrSchedule = "step",
    seed: options.Seed = 0,
    alpha: Annotated[float, typer.Option(help="Weight of the cross-entropy term; 1 - alpha weighs KD.")] = 0.6,
    temperature: Annotated[float, typer.Option("--temperature", "-T", help="KD softmax temperature.")] = 3.0,
    masks: Annotated[bool, typer.Option("--masks/--no-masks", help="Learn PDD masks, or run the same KD without them (the unpruned baseline).")] = True,
    mask_init: Annotated[Optional[str], typer.Option(help="normal: N(0, 0.001^2) as in the paper; open: all gates open (default with --student-weights).")] = None,
    student_weights: Annotated[Optional[Path], typer.Option(help="Start from a pretrained student checkpoint.")] = None,
    target_macs_reduction: Annotated[Optional[float], typer.Option(help="Add a MACs budget: e.g. 0.5 lands the pruned model at -50 % MACs (+/- 3 points). Without it: pure PDD.")] = None,
    latency_table: Annotated[Optional[Path], typer.Option(help="The device's latency table (`pdd-edge latency-table`), for a latency budget.")] = None,
    target_latency_ms: Annotated[Optional[float], typer.Option(help="Add a latency budget instead: this p50 latency (ms) on the latency table's device.")] = None,
    target_speedup: Annotated[Optional[float], typer.Option(help="Add a latency budget instead: the unpruned latency divided by this, e.g. 2.")] = None,
    budget_rate: Annotated[float, typer.Option(help="Integral gain of the budget's PI controller, per step.")] = 0.05,
    budget_ramp_epochs: Annotated[int, typer.Option(help="Ramp the MACs target from 0 to its value over these first epochs (0: the full target from the start).")] = 0,
    round_to: Annotated[Optional[int], typer.Option(help="Train the widths prune deploys at multiples of N (the device's channel_multiple; `pdd-edge prune` then rounds to the same N exactly); default: the latency table's multiple, else 1.")] = None,
    mean: options.Mean = None,
    std: options.Std = None,
    teacher_mean: Annotated[Optional[str], typer.Option(help="Teacher normalisation mean (third-party teachers).")] = None,
    teacher_std: Annotated[Optional[str], typer.Option(help="Teacher normalisation std (third-party teachers).")] = None,
    teacher_input_size: options.TeacherInputSize = None,
    device: options.Device = "auto",
    amp: options.Amp = "auto",
    workers: options.Workers = None,
    sync_bn: options.SyncBn = False,
    channels_last: options.ChannelsLast = False,
    fused_sgd: options.FusedSgd = False,
    compile_mode: options.Compile = "off",
    resume: options.Resume = False,
    json_out: options.Json = False,
) -> None:
    """PDD: distill a student from a teacher while learning which channels to keep.\f
    Long only in its signature: one parameter per command-line option, which is where Typer
    reads them; the work is the few lines below. (`cli/app.py` gives the command list the first
    line alone: Typer's list would show this paragraph too.)
    """
    require_torch("pdd-edge distill")
    from pdd_edge.stages import distill

    cfg = distill.DistillConfig(
        student=student,
        student_args=options.model_args(model_args),
        teacher=teacher,
        teacher_weights=str(teacher_weights),
        data=options.data_config(dataset, data_dir, download, input_size),
        optim=distill.default_optim(epochs, **options.optim_overrides(lr, batch_size, weight_decay, milestones, seed, schedule=lr_schedule)),
        student_weights=str(student_weights) if student_weights else None,
        masks=masks,
        mask_init=mask_init,
        alpha=alpha,
        temperature=temperature,
        norm=options.norm_override(mean, std),
        teacher_norm=options.norm_override(teacher_mean, teacher_std, "teacher-", teacher_input_size),
        target_macs_reduction=target_macs_reduction,
        latency_table=str(latency_table) if latency_table else None,
        target_latency_ms=target_latency_ms,
        target_speedup=target_speedup,
        budget_rate=budget_rate,
        budget_ramp_epochs=budget_ramp_epochs,
        round_to=round_to,
    )
    with training_setup(device, amp, workers, sync_bn, channels_last, fused_sgd, compile_mode) as setup:
        result = distill.distill(cfg, out_dir, resume=resume, setup=setup)
        print_fit_summary(result, out_dir / "best.pt", json_out)
        if not json_out:
            ceiling = f" --latency-table {latency_table} {cfg.latency_target.option()}" if cfg.latency_target else ""
            err.print("next: pdd-edge prune " + str(out_dir / "best.pt") + " --out pruned.pt" + ceiling)
