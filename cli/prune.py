"""`pdd-edge prune`: remove every closed channel of a distilled checkpoint, exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from pdd_edge.cli import options
from pdd_edge.cli.console import err, out, print_json
from rich.table import Table

from pdd_edge.errors import require_torch
from pdd_edge.fileio import check_output


def prune_command(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint with masks, written by `pdd-edge distill`.")],
    *,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Pruned checkpoint to write.")],
    round_to: Annotated[Optional[int], typer.Option(help="Keep every layer's width a multiple of N (re-opens the strongest closed channels); default: --target's channel_multiple (measured here for a target such as local that declares none), else the multiple the masks trained at (distill --round-to), else the latency table's, else 1.")] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Device target whose channel_multiple the widths are rounded to (unless --round-to).")] = None,
    latency_table: Annotated[Optional[Path], typer.Option(help="The device's latency table (`pdd-edge latency-table`): reports the predicted latency.")] = None,
    target_latency_ms: Annotated[Optional[float], typer.Option(help="With --latency-table: close the weakest channels until the predicted p50 latency is nearest this.")] = None,
    target_speedup: Annotated[Optional[float], typer.Option(help="With --latency-table: close the weakest channels until the predicted speed-up is nearest this.")] = None,
    min_macs_reduction: Annotated[Optional[float], typer.Option(help="Guarantee at least this MACs reduction, e.g. 0.5: closes the open channels with the smallest mask values until the pruned model fits (default: keep what the masks keep).")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Images for the exactness check (default: the checkpoint's dataset).")] = None,
    data_dir: options.DataDir = None,
    model: options.FileModel = None,
    json_out: options.Json = False,
) -> None:
    """Remove every closed channel: a dense smaller model that computes what the masked one does."""
    require_torch("pdd-edge prune")
    _ = model  # naming the file is the point: the option's callback allows pdd-edge to run it
    from pdd_edge.stages import prune

    data = options.data_config(dataset, data_dir, False, None)
    check_output(out_path, checkpoint)
    if round_to is None and target is not None:
        # a target that declares no multiple (local) is measured here when this machine is its device
        round_to = prune.channel_multiple(target, measure=latency_table is None)
    report = prune.prune_checkpoint(prune.PruneConfig(
        checkpoint=str(checkpoint), round_to=round_to, data=data, min_macs_reduction=min_macs_reduction,
        latency_table=str(latency_table) if latency_table else None, target_latency_ms=target_latency_ms,
        target_speedup=target_speedup), out_path)
    if json_out:
        print_json(report)
        return
    table = Table(title=f"pruned {report['model']}  ({report['convention']})")
    for col in ("", "before", "after", "reduction"):
        table.add_column(col, justify="right")
    table.add_row("MACs", f"{report['macs_before']:,}", f"{report['macs_after']:,}", f"{report['macs_reduction_pct']:.2f} %")
    table.add_row("params", f"{report['params_before']:,}", f"{report['params_after']:,}", f"{report['params_reduction_pct']:.2f} %")
    out.print(table)
    out.print(f"max |logit difference| masked vs pruned on {report['check_images']} validation images: {report['max_abs_diff']:.2e} (limit {report['tolerance_rule']})")
    if report["closed_channels"]:
        out.print(f"{_closing_request(report)}: closed {report['closed_channels']} channels")
    if report["round_to"] > 1:
        out.print(f"widths rounded to multiples of {report['round_to']}: re-opened {report['reopened_channels']} channels")
    lat = report["latency"]
    if lat:
        ceiling = f" (target {lat['target_ms']:.4g} ms)" if lat["target_ms"] else ""
        out.print(f"predicted p50 latency on {lat['target']} at batch {lat['batch_size']}: {lat['predicted_ms']:.4g} ms"
                  f"{ceiling}, unpruned {lat['dense_predicted_ms']:.4g} ms (latency model error up to {lat['model_error_pct']:.1f} %)")
    for note in report["notes"]:
        err.print(f"note: {note}")
    out.print(f"pruned checkpoint: {out_path}")


def _closing_request(report: dict) -> str:
    """What made prune close channels the masks kept open: the MACs floor, the latency target, or both."""
    asked = []
    if report["min_macs_reduction"] is not None:
        asked.append(f"--min-macs-reduction {report['min_macs_reduction']:g}")
    lat = report["latency"]
    if lat and lat["target_ms"]:
        asked.append(f"latency target {lat['target_ms']:.4g} ms")
    return " and ".join(asked)
