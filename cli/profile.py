"""`pdd-edge profile`: MACs, params, size, latency, throughput and peak memory of an ONNX model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from pdd_edge.cli import options
from pdd_edge.cli.console import err, out, print_json, warn_foreign
from rich.markup import escape
from rich.table import Table

from pdd_edge.errors import PddError


def profile_command(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="The ONNX model to profile (any ONNX classifier).")],
    *,
    target: Annotated[str, typer.Option("--target", "-t", help="Built-in target name (see `pdd-edge targets list`) or a .toml file.")] = "local",
    batch_size: Annotated[Optional[str], typer.Option("--batch-size", "-b", help="Batch sizes, e.g. 1,8 (default: the target's).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime intra-op threads (default: the target's, else all CPUs).")] = None,
    input_shape: Annotated[Optional[list[str]], typer.Option(help="One sample's shape without batch, e.g. 3,32,32, for dynamic dimensions; NAME=7 for one input of a multi-input model (repeatable).")] = None,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up runs per batch size.")] = 10,
    min_runs: Annotated[int, typer.Option(help="Timed runs per batch size, at least.")] = 100,
    min_time: Annotated[float, typer.Option(help="Seconds of timed runs per batch size, at least.")] = 2.0,
    memory: Annotated[bool, typer.Option("--memory/--no-memory", help="Measure peak memory (a child process per batch size).")] = True,
    json_out: options.Json = False,
    json_path: Annotated[Optional[Path], typer.Option("--json-out", help="Write the profile record (JSON) to this file.")] = None,
    remote: Annotated[Optional[str], typer.Option(help="Measure on a board over SSH: USER@HOST or USER@HOST:PORT.")] = None,
    ssh_port: Annotated[Optional[int], typer.Option(help="SSH port of --remote (default 22).")] = None,
    ssh_key: Annotated[Optional[Path], typer.Option(help="SSH private key for --remote.")] = None,
    ssh_option: Annotated[Optional[list[str]], typer.Option(help="Extra ssh -o KEY=VALUE option (repeatable).")] = None,
    remote_python: Annotated[str, typer.Option(help="Python on the board that has numpy and onnxruntime.")] = "python3",
) -> None:
    """Count MACs and params from the graph; measure latency, throughput and peak memory with onnxruntime."""
    from pdd_edge.fileio import check_output, write_json
    from pdd_edge.profiling.profile import ProfileRequest, profile_model
    from pdd_edge.profiling.remote import RemoteHost
    from pdd_edge.profiling.targets import load_target

    if ctx.args:
        hint = "; --json takes no file (it prints the record on stdout): write a file with --json-out FILE" if json_out else ""
        raise PddError(f"unexpected argument {ctx.args[0]!r}{hint}")
    if json_path is not None:
        check_output(json_path, model, option="--json-out")
    req = ProfileRequest(target=load_target(target), batch_sizes=options.parse_ints(batch_size, "--batch-size"),
                         threads=threads, **parse_input_shapes(input_shape or []), warmup=warmup,
                         min_runs=min_runs, min_time_s=min_time, memory=memory)
    host = RemoteHost.parse(remote, port=ssh_port, identity=ssh_key, options=ssh_option or (),
                            python=remote_python) if remote else None
    err.print(f"profiling {model} on {host.label if host else 'this machine'} (target {req.target.name}) ...", markup=False)
    record = profile_model(model, req, host)
    if json_out:
        print_json(record)
    else:
        print_summary(record)
    warn_foreign(record["device_check"])
    if json_path is not None:
        write_json(json_path, record)
        err.print(f"wrote {json_path}", markup=False)


def print_summary(record: dict) -> None:
    m, cost, env, summary = record["model"], record["cost"], record["environment"], record["summary"]
    out.print(f"[bold]{escape(m['path'])}[/]  {summary['model_size_mb']:.2f} MiB  target [bold]{escape(record['target']['name'])}[/]")
    out.print(f"MACs {cost['macs']:,} (multiply-accumulates of conv/gemm/matmul at batch {cost['batch_size']})"
              f"  params {cost['params']:,}")
    table = Table(title="latency per batch (ms); CV marked ! when noisy")
    for col in ("batch", "runs", "p50", "p90", "p99", "mean", "CV", "samples/s", "peak MiB"):
        table.add_column(col, justify="right", no_wrap=True)
    for b in record["batches"]:
        lat, mem = b["latency"], b["memory"]
        cv = f"[yellow]{lat['cv']:.0%}![/]" if lat["noisy"] else f"{lat['cv']:.0%}"
        table.add_row(str(b["batch_size"]), str(lat["runs"]), *(_ms(lat[k]) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")),
                      cv, f"{lat['throughput_per_s']:,.0f}", f"{mem['peak_rss_growth_mb']:.1f}" if mem else "-")
    out.print(table)
    where = f" on {record['settings']['remote']['host']}" if record["settings"]["remote"] else ""
    out.print(f"onnxruntime {env['onnxruntime']} {env['execution_provider']}, intra-op threads {env['intra_op_threads']}, "
              f"{env['cpu_model']}, {env['machine']}, {env['os']}{where}")
    if summary["noisy"]:
        from pdd_edge.profiling.runner import NOISY_CV

        err.print(f"[yellow]warning:[/] latency varied by more than {NOISY_CV:.0%} (CV): the machine is busy or throttling; "
                  "re-run with a larger --min-time or on an idle machine")
    for item in cost["uncounted"]:
        err.print(f"[yellow]warning:[/] not counted in MACs: {item}")
    remote = record["settings"]["remote"]
    if remote and not remote["cleaned_up"]:
        err.print(f"[yellow]warning:[/] could not remove {remote['folder']} on {remote['host']}")


def _ms(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"  # 3 significant digits, no exponent


def parse_input_shapes(values: list[str]) -> dict:
    """`--input-shape 3,32,32` (every input) and `--input-shape NAME=7` (one input), each at most once."""
    shared, per_input = None, {}
    for value in values:
        name, sep, sizes = value.rpartition("=")
        if not sep:
            if shared is not None:
                raise PddError("--input-shape without a NAME= may be given once; name the inputs (NAME=7) to give several")
            shared = options.parse_ints(value, "--input-shape")
        elif not name or name in per_input:
            raise PddError(f"--input-shape {value!r}: give each input once, as NAME=sizes")
        else:
            per_input[name] = options.parse_ints(sizes, f"--input-shape {name}=")
    return {"input_shape": shared, "input_shapes": tuple(per_input.items())}
