"""`pdd-edge latency-table`: a network's latency predictor, measured on the target device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from pdd_edge.cli import options
from pdd_edge.cli.console import err, out, print_json
from rich.table import Table

from pdd_edge.errors import PddError, require_torch


def latency_table_command(
    model: Annotated[str, typer.Argument(help=f"The network: {options.SPEC_FORMS}.")],
    *,
    target: Annotated[str, typer.Option("--target", "-t", help="Built-in target name (see `pdd-edge targets list`) or a .toml file.")] = "local",
    num_classes: Annotated[int, typer.Option(help="Classes of the network's classifier.")] = 10,
    input_size: options.InputSize = None,
    model_arg: options.ModelArg = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help="Batch size (default: the target's primary).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime intra-op threads (default: the target's, else all CPUs).")] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="Table file to write (default: the cache, see docs/latency.md).")] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Measure again even if a table with the same key exists.")] = False,
    min_runs: Annotated[int, typer.Option(help="Timed runs per layer file and network, at least.")] = 50,
    min_time: Annotated[float, typer.Option(help="Seconds of timed runs per layer file and per network, at least.")] = 0.2,
    remote: Annotated[Optional[str], typer.Option(help="Measure on the board over SSH: USER@HOST or USER@HOST:PORT.")] = None,
    ssh_port: Annotated[Optional[int], typer.Option(help="SSH port of --remote (default 22).")] = None,
    ssh_key: Annotated[Optional[Path], typer.Option(help="SSH private key for --remote.")] = None,
    ssh_option: Annotated[Optional[list[str]], typer.Option(help="Extra ssh -o KEY=VALUE option (repeatable).")] = None,
    remote_python: Annotated[str, typer.Option(help="Python on the board that has numpy and onnxruntime.")] = "python3",
    json_out: options.Json = False,
) -> None:
    """Measure every layer over a grid of channel counts on the device, fit the network's latency
    model, and check it against whole thinned networks measured there."""
    require_torch("pdd-edge latency-table")
    from pdd_edge.latency.request import TableRequest
    from pdd_edge.latency.table import make_table
    from pdd_edge.profiling.remote import RemoteHost
    from pdd_edge.profiling.targets import check_threads, load_target
    from pdd_edge.zoo import specs

    spec = specs.parse(options.trusted_spec(model), options.model_args(model_arg))
    if num_classes < 1:
        raise PddError(f"--num-classes must be positive, got {num_classes}")
    if batch_size is not None and batch_size < 1:
        raise PddError(f"--batch-size must be positive, got {batch_size}")
    device = load_target(target)
    check_threads(threads, device)
    req = TableRequest(model=spec.text, target=device, input_hw=input_size or (32, 32), num_classes=num_classes,
                       model_args=dict(spec.args), batch_size=batch_size, threads=threads, min_runs=min_runs,
                       min_time_s=min_time)
    host = RemoteHost.parse(remote, port=ssh_port, identity=ssh_key, options=ssh_option or (),
                            python=remote_python) if remote else None
    result = make_table(req, out_path, host, refresh=refresh, progress=lambda s: err.print(s, markup=False))
    table, path, reused = result
    if json_out:
        print_json({"path": str(path), "reused": reused, **table.to_dict()})
        return
    print_table(table, path, reused)


def print_table(table, path: Path, reused: bool) -> None:
    rec = table.record
    out.print(f"latency model of {table.describe()}")
    out.print(f"{len(table.layers)} layers in {len(table.grids)} geometries; channel multiple {table.channel_multiple}"
              + (" (measured: the target has none)" if rec.get("sweep") else " (the target's)")
              + f"; latency = {table.scale:.3f} x layer sum {table.offset_ms:+.4f} ms (p50)")
    t = Table(title="whole networks measured on the device: predicted vs measured p50 latency")
    for col in ("network", "channels", "measured ms", "predicted ms", "error"):
        t.add_column(col, justify="right", no_wrap=True)
    for n in rec["networks"]:
        t.add_row(n["kind"], f"~{n['share']:.0%}", f"{n['measured_ms']:.4f}", f"{n['predicted_ms']:.4f}", f"{n['error_pct']:+.1f} %")
    out.print(t)
    e = rec["error"]
    out.print(f"model error on the check networks (not used in the fit): mean {e['check_mean_abs_pct']:.1f} %, "
              f"max {e['check_max_abs_pct']:.1f} %")
    env = rec["environment"]
    out.print(f"measured on {env['cpu_model']} ({env['machine']}), onnxruntime {env['onnxruntime']}, "
              f"{env['intra_op_threads']} threads" + (f", via {rec['remote']['host']}" if rec.get("remote") else ""))
    out.print(f"{'reused the cached' if reused else 'wrote'} table: {path}")
