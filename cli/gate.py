"""`pdd-edge gate`: check a deployable model against a device budget; exit 0/1/2 (torch-free)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from pdd_edge.cli.app import app
from pdd_edge.cli.shared import command, err, out, warn_foreign
from rich.markup import escape
from rich.table import Table

from pdd_edge.errors import FAILURE


@command(app, "gate")
def gate_command(
    report: Annotated[Path, typer.Argument(help="A report-<target>.json, or a run directory.")],
    *,
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Target whose \\[budget] to check (and whose report to pick in a run directory).")] = None,
    budget: Annotated[Optional[Path], typer.Option(help="A TOML file whose \\[budget] table to check instead of the target's.")] = None,
    junit: Annotated[Optional[Path], typer.Option(help="Write one JUnit test case per check to this XML file.")] = None,
    accept_foreign_measurements: Annotated[bool, typer.Option(
        "--accept-foreign-measurements",
        help="Check latency and memory measured on another kind of machine than the target declares "
             "(by default such checks fail closed). The verdict and JUnit say it was accepted.")] = False,
) -> None:
    """Check the deployable model against a budget: exit 0 all pass, 1 any fails, 2 usage error."""
    from pdd_edge.fileio import check_output, write_bytes
    from pdd_edge.profiling import provenance
    from pdd_edge.report.gate import check_budget, device_target, junit_xml, load_report, markdown_table, resolve_budget

    if junit is not None:  # checked first: a failure to write it later would read as "budget failed" in CI
        check_output(junit, report, budget, option="--junit")
    rep = load_report(report, target)
    source, limits = resolve_budget(rep, target, budget)
    device = provenance.check(device_target(rep, target), rep.get("environment"))
    checks = check_budget(rep["gate"], limits, device["summary"], accept_foreign_measurements)
    warn_foreign(device)
    name = rep["target"]["name"]
    title = f"pdd-edge gate: {rep['gate'].get('variant')} model on {name}, budget from {source}"
    table = Table(title=escape(title))
    for col in ("check", "actual", "limit", "verdict"):
        table.add_column(col, justify="left" if col in ("check", "verdict") else "right")
    for c in checks:
        actual = "missing" if c.actual is None else f"{c.actual:.4g} {c.unit}"
        verdict = "[green]pass[/]" if c.passed else f"[bold red]FAIL[/] {escape(c.reason)}"
        if c.note:
            verdict += f" [yellow]({escape(c.note)})[/]"
        table.add_row(c.key, actual, f"{c.op} {c.limit:g} {c.unit}", verdict)
    out.print(table)
    if junit is not None:
        write_bytes(junit, junit_xml(checks, name))
    append_step_summary(markdown_table(checks, title) + "\n")
    failed = [c.key for c in checks if not c.passed]
    if failed:
        err.print(f"gate failed: {', '.join(failed)}", markup=False)
        raise typer.Exit(FAILURE)
    out.print(f"gate passed: {len(checks)} checks")


def append_step_summary(text: str) -> None:
    """Append to GitHub's job summary. The summary only shows the verdict; a summary that cannot be
    written (a directory, a read-only file) is one warning and must not change the verdict."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary:
        return
    try:
        with open(summary, "a", encoding="utf-8") as fh:  # appended, as GitHub Actions expects
            fh.write(text)
    except OSError as exc:
        err.print(f"warning: GITHUB_STEP_SUMMARY {summary} cannot be appended to ({exc.strerror}); "
                  "the gate's verdict and exit code are unaffected", markup=False)
