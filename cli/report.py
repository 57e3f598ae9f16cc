"""`pdd-edge report`: per-target report of a run directory (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from pdd_edge.cli.app import app
from pdd_edge.cli.shared import command, err, out

from pdd_edge.errors import PddError


@command(app, "report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `pdd-edge compress`.")],
    *,
    target: Annotated[Optional[list[str]], typer.Option("--target", "-t", help="Target name or .toml (repeatable); profiled now if the run has no profile for it.")] = None,
    remote: Annotated[Optional[str], typer.Option(help="Profile missing targets on this board over SSH: USER@HOST[:PORT].")] = None,
    ssh_key: Annotated[Optional[Path], typer.Option(help="SSH private key for --remote.")] = None,
    min_runs: Annotated[int, typer.Option(help="Timed runs per variant when profiling, at least.")] = 100,
    min_time: Annotated[float, typer.Option(help="Seconds of timed runs when profiling, at least.")] = 2.0,
) -> None:
    """Write report-<target>.json/.md (+ PNG plots): baseline vs pruned vs INT8 on each target."""
    from pdd_edge.artifact import RunDir
    from pdd_edge.fileio import write_json
    from pdd_edge.profiling.remote import RemoteHost
    from pdd_edge.profiling.targets import load_target
    from pdd_edge.report.build import profile_files, write_reports
    from pdd_edge.report.measure import profile_variants

    run = RunDir.load(run_dir)
    names = None
    if target:
        names = [load_target(t).name for t in target]
        profiled = {p.stem[len("profile-"):] for p in profile_files(run)}
        host = RemoteHost.parse(remote, identity=ssh_key) if remote else None
        for t, name in zip(target, names):
            if name in profiled and host is None:
                continue
            files = _variant_files(run)
            err.print(f"profiling {', '.join(files)} for target {name} on {host.label if host else 'this machine'} ...", markup=False)
            record = profile_variants(files, t, min_runs=min_runs, min_time_s=min_time, remote=host)
            write_json(run.stage_dir("profile") / f"profile-{name}.json", record)
    for path in write_reports(run, names):
        out.print(str(path), markup=False)


def _variant_files(run) -> dict[str, Path]:
    """The deployable files of the run, as its evaluate stage recorded them."""
    from pdd_edge.fileio import read_json

    if run.record("evaluate") is None:
        raise PddError("the run has no evaluated variants yet; finish it with `pdd-edge compress ... --resume`")
    variants = read_json(run.path("evaluate/accuracy.json"), "accuracy record")["variants"]
    return {name: run.path(v["file"]) for name, v in variants.items()}
