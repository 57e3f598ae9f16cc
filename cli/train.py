"""`pdd-edge train`: plain cross-entropy training (how a teacher is made when none is given)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pdd_edge.cli import shared as o
from pdd_edge.cli.shared import data_config, norm_override, optim_overrides, print_fit_summary

from pdd_edge.errors import require_torch
from pdd_edge.fileio import check_output


def train_command(
    *,
    model: Annotated[str, typer.Option("--model", "-m", callback=o.trusted_spec, help=f"The model to train: {o.SPEC_FORMS}.")],
    model_args: o.ModelArg = None,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (best validation epoch).")],
    dataset: o.Dataset = "digits",
    data_dir: o.DataDir = None,
    download: o.Download = False,
    input_size: o.InputSize = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 200,
    lr: o.Lr = None,
    batch_size: o.BatchSize = None,
    weight_decay: o.WeightDecay = None,
    milestones: o.Milestones = None,
    warmup_epochs: o.Warmup = None,
    seed: o.Seed = 0,
    mean: o.Mean = None,
    std: o.Std = None,
    device: o.Device = "auto",
    amp: o.Amp = "auto",
    workers: o.Workers = None,
    sync_bn: o.SyncBn = False,
    channels_last: o.ChannelsLast = False,
    fused_sgd: o.FusedSgd = False,
    compile_mode: o.Compile = "off",
    resume: o.Resume = False,
    json_out: o.Json = False,
) -> None:
    """Train a zoo model with plain cross-entropy (how a teacher is made when none is given)."""
    require_torch("pdd-edge train")
    from pdd_edge.stages import teacher

    cfg = teacher.TrainConfig(
        model=model,
        model_args=o.model_args(model_args),
        data=data_config(dataset, data_dir, download, input_size),
        optim=teacher.default_optim(epochs, **optim_overrides(lr, batch_size, weight_decay, milestones, seed, warmup_epochs)),
        norm=norm_override(mean, std),
    )
    check_output(out_path)
    with o.training_runtime(device, amp, workers, sync_bn, channels_last, fused_sgd, compile_mode) as rt:
        result = teacher.train(cfg, out_path, resume=resume, runtime=rt)
        print_fit_summary(result, out_path, json_out)
