"""`pdd-edge prune` and `pdd-edge finetune`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from pdd_edge.cli import options as o
from pdd_edge.cli._common import command, err, out
from pdd_edge.cli.app import app
from pdd_edge.cli.training import data_config, norm_override, optim_overrides, print_fit_summary
from pdd_edge.errors import require_torch


@command(app, "prune")
def prune_command(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint with masks, written by `pdd-edge distill`.")],
    *,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Pruned checkpoint to write.")],
    round_to: Annotated[int, typer.Option(help="Keep every layer's width a multiple of N (re-opens the strongest closed channels).")] = 1,
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Images for the exactness check (default: the checkpoint's dataset).")] = None,
    data_dir: o.DataDir = None,
    json_out: o.Json = False,
) -> None:
    """Remove every closed channel: a dense smaller model that computes what the masked one does."""
    require_torch("pdd-edge prune")
    from pdd_edge.stages import prune

    data = data_config(dataset, data_dir, False, None)
    report = prune.run(prune.PruneConfig(checkpoint=str(checkpoint), round_to=round_to, data=data), out_path)
    if json_out:
        out.print_json(json.dumps(report))
        return
    table = Table(title=f"pruned {report['model']}  ({report['convention']})")
    for col in ("", "before", "after", "reduction"):
        table.add_column(col, justify="right")
    table.add_row("MACs", f"{report['macs_before']:,}", f"{report['macs_after']:,}", f"{report['macs_reduction_pct']:.2f} %")
    table.add_row("params", f"{report['params_before']:,}", f"{report['params_after']:,}", f"{report['params_reduction_pct']:.2f} %")
    out.print(table)
    out.print(f"max |logit difference| masked vs pruned on {report['check_images']} validation images: {report['max_abs_diff']:.2e}")
    if report["round_to"] > 1:
        out.print(f"--round-to {report['round_to']}: re-opened {report['reopened_channels']} channels")
    for note in report["notes"]:
        err.print(f"note: {note}")
    out.print(f"pruned checkpoint: {out_path}")


@command(app, "finetune")
def finetune_command(
    checkpoint: Annotated[Path, typer.Argument(help="A pruned checkpoint (from `pdd-edge prune`).")],
    *,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder: best.pt, last.pt, history.json.")],
    dataset: o.Dataset = "digits",
    data_dir: o.DataDir = None,
    download: o.Download = False,
    input_size: o.InputSize = None,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs (paper: 150).")] = 150,
    lr: o.Lr = None,
    batch_size: o.BatchSize = None,
    weight_decay: o.WeightDecay = None,
    milestones: o.Milestones = None,
    seed: o.Seed = 0,
    teacher: Annotated[Optional[str], typer.Option("--teacher", "-t", help="Zoo model of the teacher (third-party weights only).")] = None,
    teacher_weights: Annotated[Optional[Path], typer.Option(help="Fine-tune with KD from this teacher (default: plain cross-entropy, as the paper).")] = None,
    alpha: Annotated[float, typer.Option(help="Weight of cross-entropy when a teacher is given.")] = 0.6,
    temperature: Annotated[float, typer.Option("--temperature", "-T", help="KD temperature when a teacher is given.")] = 3.0,
    teacher_mean: Annotated[Optional[str], typer.Option(help="Teacher normalisation mean (third-party teachers).")] = None,
    teacher_std: Annotated[Optional[str], typer.Option(help="Teacher normalisation std (third-party teachers).")] = None,
    resume: o.Resume = False,
    json_out: o.Json = False,
) -> None:
    """Fine-tune a pruned student (plain CE, or KD with --teacher-weights)."""
    require_torch("pdd-edge finetune")
    from pdd_edge.stages import finetune

    cfg = finetune.FinetuneConfig(
        checkpoint=str(checkpoint),
        data=data_config(dataset, data_dir, download, input_size),
        optim=finetune.default_optim(epochs, **optim_overrides(lr, batch_size, weight_decay, milestones, seed)),
        teacher_weights=str(teacher_weights) if teacher_weights else None,
        teacher=teacher,
        alpha=alpha,
        temperature=temperature,
        teacher_norm=norm_override(teacher_mean, teacher_std, "teacher-"),
    )
    result = finetune.run(cfg, out_dir, resume=resume)
    print_fit_summary(result, out_dir / "best.pt", json_out)
