"""`report` and `gate` on inputs they cannot use: malformed reports, a read-only run directory,
a job summary that cannot be written."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pdd_edge.fileio import file_sha256
from tests.helpers import run_cli
from tests.run_fixtures import make_run
from tests.cli.test_gate import write_report


@pytest.mark.parametrize("change, problem", [
    ({"target": None}, '"target" must be an object with a "name", got null'),
    ({"target": "rpi4"}, '"target" must be an object with a "name", got "rpi4"'),
    ({"environment": "x86"}, '"environment" must be an object, got "x86"'),
    ({"target": {"name": "rpi4", "budget": {"model_size_mb": "1"}}}, '"target.budget.model_size_mb" must be a number, got "1"'),
])
def test_gate_on_a_malformed_report_is_one_line_exit_2(tmp_path, change, problem):
    path = write_report(tmp_path / "r.json")
    path.write_text(json.dumps(json.loads(path.read_text()) | change))
    result = run_cli("gate", path)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (f"error: {path} is malformed: {problem}; regenerate it with `pdd-edge report` "
                                     "(or `pdd-edge profile --json-out`)")


@pytest.mark.parametrize("change", [{"summary": None}, {"model": None}, {"target": None}])
def test_gate_on_a_malformed_profile_record_is_one_line_exit_2(tmp_path, change):
    record = {"schema": "pdd-edge.profile/1", "target": {"name": "local", "budget": {}}, "model": {"path": "m.onnx"},
              "summary": {"latency_p90_ms": 3.0, "model_size_mb": 0.5, "peak_memory_mb": 10.0}} | change
    path = tmp_path / "p.json"
    path.write_text(json.dumps(record))
    result = run_cli("gate", path)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "malformed" in result.stderr


@pytest.mark.parametrize("verdict, code", [("pass", 0), ("fail", 1)])
def test_gate_step_summary_that_is_a_folder_warns_and_keeps_the_verdict(tmp_path, budget, monkeypatch, verdict,  # noqa: F811
                                                                        code):
    gate = None if verdict == "pass" else {"variant": "int8", "latency_p90_ms": 99.0, "model_size_mb": 0.3,
                                           "peak_memory_mb": 12.0, "top1": 97.0, "top1_drop": 0.4, "macs_reduction": 48.0}
    folder = tmp_path / "summary"
    folder.mkdir()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(folder))
    result = run_cli("gate", write_report(tmp_path / "r.json", gate), "--budget", budget)
    assert result.exit_code == code, result.output
    assert f"warning: GITHUB_STEP_SUMMARY {folder} cannot be appended to (Is a directory); the gate's verdict " \
           "and exit code are unaffected" in result.stderr
    assert list(folder.iterdir()) == []


@pytest.fixture
def read_only_run(tmp_path):
    """A run directory on a read-only mount (root bind-mounts it; skipped where that is not possible:
    permission bits do not stop root)."""
    root = make_run(tmp_path / "run", profile=False).root
    mounted = subprocess.run(["mount", "--bind", str(root), str(root)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("a read-only bind mount needs root")
    if subprocess.run(["mount", "-o", "remount,ro,bind", str(root)], capture_output=True).returncode:
        subprocess.run(["umount", str(root)])
        pytest.skip("cannot remount read-only")
    yield root
    subprocess.run(["umount", "-l", str(root)], check=True)


def test_report_with_a_new_target_on_a_read_only_run_is_refused_before_profiling(read_only_run):
    result = run_cli("report", read_only_run, "--target", "local", "--min-runs", "1", "--min-time", "0")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (f"error: cannot write RUN_DIR file {read_only_run / 'manifest.json'}: "
                                     f"{read_only_run} is not writable (Read-only file system)")
    assert "profiling" not in result.stderr


# --- the deployable file: report and gate check the bytes that were profiled ---------------------

@pytest.fixture(scope="module")
def reported_run(tmp_path_factory):
    root = make_run(tmp_path_factory.mktemp("reported") / "run").root
    assert run_cli("report", root).exit_code == 0
    return root


@pytest.fixture
def run_copy(reported_run, tmp_path):
    return Path(shutil.copytree(reported_run, tmp_path / "run"))


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:  # flip bytes in the middle: same size, other content
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 16]) + data[middle + 16:])


@pytest.mark.parametrize("rel, how, problem", [
    ("quantize/pruned.int8.onnx", "delete", "is missing"),
    ("simplify/pruned.onnx", "delete", "is missing"),
    ("simplify/pruned.onnx", "truncate", "is {half:,} bytes, not the {full:,} that were profiled (truncated or replaced)"),
    ("simplify/baseline.onnx", "flip", "has changed since it was profiled (sha256"),
])
def test_report_refuses_a_run_whose_profiled_file_is_gone_or_changed(run_copy, rel, how, problem):
    full = (run_copy / rel).stat().st_size
    problem = problem.format(half=full // 2, full=full)
    damage(run_copy / rel, how)
    result = run_cli("report", run_copy)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert line.startswith(f"error: deployable file {run_copy / rel} {problem}") and "\n" not in line
    assert "restore that file, or make the run again" in line


@pytest.mark.parametrize("how, problem", [("delete", "is missing"), ("truncate", "truncated or replaced"),
                                          ("flip", "has changed since it was profiled")])
def test_gate_fails_closed_when_the_vouched_file_is_gone_or_changed(run_copy, tmp_path, how, problem):
    size = tmp_path / "size.toml"
    size.write_text("[budget]\nmodel_size_mb = 100\n")
    assert run_cli("gate", run_copy, "--budget", size).exit_code == 0
    vouched = json.loads((run_copy / "report" / "report-local.json").read_text())["gate"]["file"]
    damage(run_copy / vouched, how)
    result = run_cli("gate", run_copy, "--budget", size)
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert line.startswith(f"gate failed: deployable_file ({run_copy / vouched} ") and "\n" not in line
    assert problem in line and line.endswith("(fails closed))")


def test_report_records_the_sha256_and_size_of_the_vouched_file(reported_run):
    gate = json.loads((reported_run / "report" / "report-local.json").read_text())["gate"]
    path = reported_run / gate["file"]
    assert gate["sha256"] == file_sha256(path) and gate["file_size_bytes"] == path.stat().st_size


def test_gate_of_a_report_that_names_no_file_fails_closed(tmp_path, budget):  # noqa: F811
    path = write_report(tmp_path / "r.json")
    report = json.loads(path.read_text())
    del report["gate"]["sha256"]
    path.write_text(json.dumps(report))
    result = run_cli("gate", path, "--budget", budget)
    assert result.exit_code == 1
    assert "gate failed: deployable_file (the report does not record the sha256 of the file it vouches for" in result.stderr


def test_gate_json_prints_the_verdict_and_every_check(tmp_path, budget):  # noqa: F811
    result = run_cli("gate", write_report(tmp_path / "r.json", {"variant": "int8", "latency_p90_ms": 9.0,
                                                                "model_size_mb": 0.3, "peak_memory_mb": 12.0,
                                                                "top1": 97.0, "top1_drop": 0.4, "macs_reduction": 48.0,
                                                                "speedup": 1.9}),
                     "--budget", budget, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["passed"] is False and data["variant"] == "int8" and data["budget_source"] == str(budget)
    assert [(c["key"], c["passed"]) for c in data["checks"]][:2] == [("deployable_file", True), ("latency_p90_ms", False)]
    assert result.stderr.strip() == "gate failed: latency_p90_ms"


def test_report_without_matplotlib_says_so_and_removes_stale_plots(run_copy, monkeypatch):
    from pdd_edge.report import plots

    stale = sorted(p.name for p in (run_copy / "report").glob("*.png"))
    assert stale == ["accuracy-latency-local.png", "channels.png"]  # drawn by the first report
    monkeypatch.setattr(plots, "available", lambda: False)
    result = run_cli("report", run_copy)
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == ("warning: no PNG plots: matplotlib is not installed (pip install 'pdd-edge[plots]'); "
                                     "plots of earlier reports were removed")
    assert list((run_copy / "report").glob("*.png")) == []
    assert "![" not in (run_copy / "report" / "report-local.md").read_text()


def test_gate_finds_a_profile_records_relative_file_beside_the_record_and_fails_closed_without_it(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"an onnx model")
    record = {"schema": "pdd-edge.profile/1", "target": {"name": "local", "budget": {}},
              "model": {"path": "m.onnx", "sha256": file_sha256(model), "file_size_bytes": model.stat().st_size},
              "summary": {"latency_p90_ms": 3.0, "model_size_mb": 0.5, "peak_memory_mb": 10.0}}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(record))
    size = tmp_path / "size.toml"
    size.write_text("[budget]\nmodel_size_mb = 1\n")
    assert run_cli("gate", path, "--budget", size).exit_code == 0
    model.unlink()
    result = run_cli("gate", path, "--budget", size)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (f"gate failed: deployable_file (m.onnx (looked for {Path.cwd() / 'm.onnx'} and "
                                     f"{model}) is missing (fails closed))")


def test_gate_step_summary_on_a_read_only_file_system_warns_and_keeps_the_verdict(read_only_run, tmp_path, budget,  # noqa: F811
                                                                                   monkeypatch):
    summary = read_only_run / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run_cli("gate", write_report(tmp_path / "r.json"), "--budget", budget)
    assert result.exit_code == 0, result.output
    assert f"warning: GITHUB_STEP_SUMMARY {summary} cannot be appended to (Read-only file system)" in result.stderr
    assert not summary.exists()
