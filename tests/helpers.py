"""Small builders shared by tests (no fixtures here: plain functions)."""

from __future__ import annotations

import json
from pathlib import Path

from pdd_edge.cli.app import app
from typer.testing import CliRunner


def run_cli(*args: str):
    """Invoke the CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def cli_json(*args: str):
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).exists() else []


def assert_usage_error(result, message: str):
    """Bad input: one line on stderr naming the problem, exit code 2, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
