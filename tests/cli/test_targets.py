"""`pdd-edge targets list|show` through the Typer app."""

from __future__ import annotations

import json

from pdd_edge.cli.app import app
from typer.testing import CliRunner

runner = CliRunner()


def test_targets_list_json_names_every_builtin():
    result = runner.invoke(app, ["targets", "list", "--json"])

    assert result.exit_code == 0, result.output
    names = {t["name"] for t in json.loads(result.stdout)}
    assert {"local", "x86-server", "rpi4", "rpi5", "jetson-orin-nano-cpu", "aarch64-generic"} <= names


def test_targets_list_table_names_targets_and_their_threads():
    result = runner.invoke(app, ["targets", "list"])

    assert result.exit_code == 0, result.output
    assert "jetson-orin-nano-cpu" in result.stdout and "all CPUs" in result.stdout


def test_targets_show_json_has_budget():
    result = runner.invoke(app, ["targets", "show", "rpi5", "--json"])

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["name"] == "rpi5" and shown["threads"] == 4 and "latency_p90_ms" in shown["budget"]


def test_targets_show_reads_user_file(tmp_path):
    path = tmp_path / "board.toml"
    path.write_text('description = "my board"\n[budget]\npeak_memory_mb = 64\n')

    result = runner.invoke(app, ["targets", "show", str(path)])

    assert result.exit_code == 0, result.output
    assert "my board" in result.stdout and "budget.peak_memory_mb" in result.stdout


def test_targets_show_malformed_file_exits_2_with_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[budget]\nlatency_p90_ms = -3\n")

    result = runner.invoke(app, ["targets", "show", str(path)])

    assert result.exit_code == 2
    assert "must not be negative" in result.stderr
    assert "Traceback" not in result.output


def test_targets_show_unknown_name_exits_2():
    result = runner.invoke(app, ["targets", "show", "rpi3"])

    assert result.exit_code == 2
    assert "unknown target 'rpi3'" in result.stderr


def test_targets_show_says_which_machines_may_measure_for_the_target():
    result = runner.invoke(app, ["targets", "show", "rpi4"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "aarch64, CPU matching 'Cortex-A72', 4 CPUs" in result.stdout
    assert "any (not declared)" in runner.invoke(app, ["targets", "show", "local"], env={"COLUMNS": "200"}).stdout


def test_targets_show_refuses_a_thread_count_out_of_range_with_one_line(tmp_path):
    path = tmp_path / "board.toml"
    path.write_text("threads = 100000\n")

    result = runner.invoke(app, ["targets", "show", str(path)])

    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "'threads' must be an integer from 1 to" in lines[0]
    assert result.stdout == ""
