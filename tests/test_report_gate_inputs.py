"""`report` and `gate` on inputs they cannot use: malformed reports, a read-only run directory,
a job summary that cannot be written."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers import run_cli
from tests.run_fixtures import make_run
from tests.test_gate import budget, write_report  # noqa: F401 (fixture)


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
                                     "(or `pdd-edge profile --json`)")


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
