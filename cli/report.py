"""`pdd-edge report`: per-target report of a run directory (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from pdd_edge.cli.console import err, out, warn_foreign


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `pdd-edge compress`.")],
    *,
    target: Annotated[Optional[list[str]], typer.Option("--target", "-t", help="Target name or .toml (repeatable); profiled now if the run has no profile for it.")] = None,
    remote: Annotated[Optional[str], typer.Option(help="Profile missing targets on this board over SSH: USER@HOST\\[:PORT].")] = None,
    ssh_key: Annotated[Optional[Path], typer.Option(help="SSH private key for --remote.")] = None,
    min_runs: Annotated[int, typer.Option(help="Timed runs per variant when profiling, at least.")] = 100,
    min_time: Annotated[float, typer.Option(help="Seconds of timed runs when profiling, at least.")] = 2.0,
) -> None:
    """Write report-<target>.json/.md (+ PNG plots): baseline vs pruned vs INT8 on each target."""
    from pdd_edge.artifact import RunDir
    from pdd_edge.fileio import write_json
    from pdd_edge.profiling.remote import RemoteHost
    from pdd_edge.report.build import write_reports
    from pdd_edge.stages.profile import profile_variants, request

    run = RunDir.load(run_dir)
    names = None
    if target:
        reqs = [request(t, min_runs=min_runs, min_time_s=min_time) for t in target]
        names = [r.target.name for r in reqs]
        host = RemoteHost.parse(remote, identity=ssh_key) if remote else None
    check_writable(run, names or sorted(run.profiles()))  # before minutes of profiling, not after
    if target:
        added, profiled = [], run.profiles()
        for req in reqs:
            name = req.target.name
            if name in profiled and host is None:
                continue
            files = run.evaluated_files()
            err.print(f"profiling {', '.join(files)} for target {name} on {host.label if host else 'this machine'} ...", markup=False)
            record = profile_variants(files, req, remote=host)
            warn_foreign(record["device_check"])
            added.append(write_json(run.profile(name), record))
        if added:
            run.record_command("report --target " + " --target ".join(names), added)
    from pdd_edge.report import plots

    if not plots.available():
        err.print("warning: no PNG plots: matplotlib is not installed (pip install 'pdd-edge[plots]'); "
                  "plots of earlier reports were removed", markup=False)
    written = write_reports(run, names)
    run.record_command("report", written)
    for path in written:
        out.print(str(path), markup=False)


def check_writable(run, names: list[str]) -> None:
    """Every file `report` may write into the run (manifest, profiles, reports) can be written."""
    from pdd_edge.artifact import MANIFEST
    from pdd_edge.fileio import check_output

    for path in [run.root / MANIFEST, *(f(n) for n in names for f in (run.profile, run.report_json))]:
        check_output(path, option="RUN_DIR file")
