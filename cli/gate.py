"""`pdd-edge gate`: check a deployable model against a device budget; exit 0/1/2 (torch-free)."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer
from pdd_edge.cli import options
from pdd_edge.cli.console import err, out, print_json, warn_foreign
from rich.markup import escape
from rich.table import Table

from pdd_edge.errors import FAILURE


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
    json_out: options.Json = False,
) -> None:
    """Check the deployable model against a budget: exit 0 all pass, 1 any fails, 2 usage error."""
    from pdd_edge.fileio import check_output, write_bytes
    from pdd_edge.profiling import provenance
    from pdd_edge.report.gate import (FILE_CHECK, check_budget, check_file, device_target, find_report, junit_xml,
                                      markdown_table, read_report, resolve_budget)

    if junit is not None:  # checked first: a failure to write it later would read as "budget failed" in CI
        check_output(junit, report, budget, option="--junit")
    report_path = find_report(report, target)
    rep = read_report(report_path)
    source, limits = resolve_budget(rep, target, budget)
    device = provenance.check(device_target(rep, target), rep.get("environment"))
    # the file first: a budget met by a file that is gone or changed vouches for nothing
    checks = [check_file(rep, report_path), *check_budget(rep["gate"], limits, device["summary"],
                                                          accept_foreign_measurements)]
    warn_foreign(device)
    name = rep["target"]["name"]
    title = f"pdd-edge gate: {rep['gate'].get('variant')} model on {name}, budget from {source}"
    if json_out:
        print_json({"report": str(report_path), "target": name, "variant": rep["gate"].get("variant"),
                    "budget_source": source, "passed": all(c.passed for c in checks), "checks": [asdict(c) for c in checks]})
    else:
        print_table(checks, title)
    if junit is not None:
        write_bytes(junit, junit_xml(checks, name))
    append_step_summary(markdown_table(checks, title) + "\n")
    failed = [f"{c.key} ({c.reason})" if c.key == FILE_CHECK else c.key for c in checks if not c.passed]
    if failed:
        err.print(f"gate failed: {', '.join(failed)}", markup=False)
        raise typer.Exit(FAILURE)
    if not json_out:
        out.print(f"gate passed: {len(checks)} checks")


def print_table(checks, title: str) -> None:
    table = Table(title=escape(title))
    for col in ("check", "actual", "limit", "verdict"):
        table.add_column(col, justify="left" if col in ("check", "verdict") else "right")
    for c in checks:
        verdict = "[green]pass[/]" if c.passed else f"[bold red]FAIL[/] {escape(c.reason)}"
        if c.note:
            verdict += f" [yellow]({escape(c.note)})[/]"
        table.add_row(c.key, escape(c.actual_text()), escape(c.limit_text()), verdict)
    out.print(table)


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
