"""`pdd-edge train`: plain cross-entropy training (how a teacher is made when none is given)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pdd_edge.cli import options
from pdd_edge.cli.console import print_fit_summary
from pdd_edge.cli.setup import training_setup

from pdd_edge.errors import require_torch
from pdd_edge.fileio import check_output


def train_command(
    *,
    model: Annotated[str, typer.Option("--model", "-m", callback=options.trusted_spec, help=f"The model to train: {options.SPEC_FORMS}.")],
    model_args: options.ModelArg = None,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (best validation epoch).")],
    dataset: options.Dataset = "digits",
    data_dir: options.DataDir = None,
    download: options.Download = False,
    input_size: options.InputSize = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 200,
    lr: options.Lr = None,
    batch_size: options.BatchSize = None,
    weight_decay: options.WeightDecay = None,
    milestones: options.Milestones = None,
    lr_schedule: options.LrSchedule = "step",
    warmup_epochs: options.Warmup = None,
    seed: options.Seed = 0,
    mean: options.Mean = None,
    std: options.Std = None,
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
    """Train a zoo model with plain cross-entropy (how a teacher is made when none is given)."""
    require_torch("pdd-edge train")
    from pdd_edge.stages import teacher

    cfg = teacher.TrainConfig(
        model=model,
        model_args=options.model_args(model_args),
        data=options.data_config(dataset, data_dir, download, input_size),
        optim=teacher.default_optim(epochs, **options.optim_overrides(lr, batch_size, weight_decay, milestones, seed, warmup_epochs, lr_schedule)),
        norm=options.norm_override(mean, std),
    )
    check_output(out_path)
    with training_setup(device, amp, workers, sync_bn, channels_last, fused_sgd, compile_mode) as setup:
        result = teacher.train_teacher(cfg, out_path, resume=resume, setup=setup)
        print_fit_summary(result, out_path, json_out)
