"""`pdd-edge finetune`: train a pruned student to recover accuracy (CE, or KD with a teacher)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from pdd_edge.cli import options
from pdd_edge.cli.console import print_fit_summary
from pdd_edge.cli.setup import training_setup

from pdd_edge.errors import require_torch


def finetune_command(
    checkpoint: Annotated[Path, typer.Argument(help="A pruned checkpoint (from `pdd-edge prune`).")],
    *,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder: best.pt, last.pt, history.json.")],
    dataset: options.Dataset = "digits",
    data_dir: options.DataDir = None,
    download: options.Download = False,
    input_size: options.InputSize = None,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs (paper: 150).")] = 150,
    lr: options.Lr = None,
    batch_size: options.BatchSize = None,
    weight_decay: options.WeightDecay = None,
    milestones: options.Milestones = None,
    lr_schedule: options.LrSchedule = "step",
    seed: options.Seed = 0,
    teacher: Annotated[Optional[str], typer.Option("--teacher", callback=options.trusted_spec, help="Model spec of the teacher (third-party weights, or a checkpoint of your own model file).")] = None,
    model: options.FileModel = None,
    teacher_weights: Annotated[Optional[Path], typer.Option(help="Fine-tune with KD from this teacher (default: plain cross-entropy, as the paper).")] = None,
    alpha: Annotated[float, typer.Option(help="Weight of cross-entropy when a teacher is given.")] = 0.6,
    temperature: Annotated[float, typer.Option("--temperature", "-T", help="KD temperature when a teacher is given.")] = 3.0,
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
    """Fine-tune a pruned student (plain CE, or KD with --teacher-weights)."""
    require_torch("pdd-edge finetune")
    _ = model  # naming the file is the point: the option's callback allows pdd-edge to run it
    from pdd_edge.stages import finetune

    cfg = finetune.FinetuneConfig(
        checkpoint=str(checkpoint),
        data=options.data_config(dataset, data_dir, download, input_size),
        optim=finetune.default_optim(epochs, **options.optim_overrides(lr, batch_size, weight_decay, milestones, seed, schedule=lr_schedule)),
        teacher_weights=str(teacher_weights) if teacher_weights else None,
        teacher=teacher,
        alpha=alpha,
        temperature=temperature,
        teacher_norm=options.norm_override(teacher_mean, teacher_std, "teacher-", teacher_input_size),
    )
    with training_setup(device, amp, workers, sync_bn, channels_last, fused_sgd, compile_mode) as setup:
        result = finetune.finetune(cfg, out_dir, resume=resume, setup=setup)
        print_fit_summary(result, out_dir / "best.pt", json_out)
