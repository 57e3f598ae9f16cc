"""`pdd-edge gate`: pass, fail, fail closed, usage errors, JUnit and the GitHub step summary."""

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pdd_edge.fileio import file_sha256
from tests.helpers import run_cli
from tests.run_fixtures import damage

GOOD = {"variant": "int8", "latency_p90_ms": 4.0, "model_size_mb": 0.3, "peak_memory_mb": 12.0, "top1": 97.0,
        "top1_drop": 0.4, "macs_reduction": 48.0, "speedup": 1.9}


# what the runner records on a Raspberry Pi 4 (its own kind of device for the rpi4 target)
RPI4_ENV = {"machine": "aarch64", "cpu_model": "Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)", "cpus_available": 4,
            "intra_op_threads": 4}
X86_ENV = {"machine": "x86_64", "cpu_model": "AMD EPYC 9B14", "cpus_available": 2, "intra_op_threads": 4}


def vouched_file(path):
    """A stand-in deployable file and the gate's record of it (path, sha256, size)."""
    path.write_bytes(b"a deployable model: " + path.name.encode())
    return {"file": str(path), "sha256": file_sha256(path), "file_size_bytes": path.stat().st_size}


def write_report(path, gate=None, target="rpi4", budget=None, environment=None):
    report = {"schema": "pdd-edge.report/1", "target": {"name": target, "budget": budget or {}},
              "environment": RPI4_ENV if environment is None else environment,
              "gate": vouched_file(path.with_suffix(".onnx")) | dict(GOOD if gate is None else gate), "variants": {}}
    path.write_text(json.dumps(report, allow_nan=True))
    return path


def test_gate_passes_when_every_check_is_within_budget(tmp_path, budget):
    result = run_cli("gate", write_report(tmp_path / "r.json"), "--budget", budget)
    assert result.exit_code == 0, result.stderr
    assert "gate passed: 8 checks" in result.stdout


@pytest.mark.parametrize("metric, value, key", [("latency_p90_ms", 5.5, "latency_p90_ms"),
                                                ("model_size_mb", 1.01, "model_size_mb"),
                                                ("peak_memory_mb", 65.0, "peak_memory_mb"),
                                                ("top1", 94.9, "min_top1"),
                                                ("top1_drop", 1.2, "max_top1_drop"),
                                                ("macs_reduction", 39.9, "min_macs_reduction"),
                                                ("speedup", 1.79, "min_speedup"),
                                                ("speedup", 0.95, "min_speedup")])
def test_gate_fails_when_one_check_exceeds_its_budget(tmp_path, budget, metric, value, key):
    result = run_cli("gate", write_report(tmp_path / "r.json", GOOD | {metric: value}), "--budget", budget)
    assert result.exit_code == 1
    assert f"gate failed: {key}" in result.stderr


def test_gate_limits_are_inclusive(tmp_path, budget):
    edge = GOOD | {"latency_p90_ms": 5.0, "top1": 95.0, "macs_reduction": 40.0}
    assert run_cli("gate", write_report(tmp_path / "r.json", edge), "--budget", budget).exit_code == 0


@pytest.mark.parametrize("value", [None, math.nan, "fast"])
def test_gate_fails_closed_on_null_nan_or_non_numeric_metric(tmp_path, budget, value):
    result = run_cli("gate", write_report(tmp_path / "r.json", GOOD | {"latency_p90_ms": value}), "--budget", budget)
    assert result.exit_code == 1
    assert "fails closed" in result.stdout and "latency_p90_ms" in result.stderr


def test_gate_fails_closed_on_missing_metric(tmp_path, budget):
    gate = {k: v for k, v in GOOD.items() if k != "peak_memory_mb"}
    result = run_cli("gate", write_report(tmp_path / "r.json", gate), "--budget", budget)
    assert result.exit_code == 1 and "peak_memory_mb" in result.stderr


def test_gate_unknown_budget_key_is_usage_error(tmp_path):
    bad = tmp_path / "b.toml"
    bad.write_text("[budget]\nlatency_p99_ms = 3\n")
    result = run_cli("gate", write_report(tmp_path / "r.json"), "--budget", bad)
    assert result.exit_code == 2 and "'budget.latency_p99_ms' is not a budget key" in result.stderr


def test_gate_malformed_budget_file_is_usage_error(tmp_path):
    bad = tmp_path / "b.toml"
    bad.write_text("[budget\nlatency_p90_ms = ")
    result = run_cli("gate", write_report(tmp_path / "r.json"), "--budget", bad)
    assert result.exit_code == 2 and "not valid TOML" in result.stderr


def test_gate_empty_budget_is_usage_error_not_a_pass(tmp_path):
    empty = tmp_path / "b.toml"
    empty.write_text("[budget]\n")
    result = run_cli("gate", write_report(tmp_path / "r.json"), "--budget", empty)
    assert result.exit_code == 2 and "nothing to check" in result.stderr


def test_gate_uses_target_budget_from_builtin_target(tmp_path):
    # rpi4's built-in budget: latency_p90_ms 20, model_size_mb 4, peak_memory_mb 128, max_top1_drop 1
    result = run_cli("gate", write_report(tmp_path / "r.json"), "--target", "rpi4")
    assert result.exit_code == 0, result.stderr
    failing = run_cli("gate", write_report(tmp_path / "r2.json", GOOD | {"model_size_mb": 4.5}), "--target", "rpi4")
    assert failing.exit_code == 1 and "model_size_mb" in failing.stderr


def test_gate_target_other_than_report_target_is_usage_error(tmp_path):
    result = run_cli("gate", write_report(tmp_path / "r.json", target="local"), "--target", "rpi4")
    assert result.exit_code == 2 and "measured for target 'local', not 'rpi4'" in result.stderr


def test_gate_file_that_is_not_a_report_is_usage_error(tmp_path, budget):
    other = tmp_path / "x.json"
    other.write_text(json.dumps({"schema": "something-else"}))
    assert run_cli("gate", other, "--budget", budget).exit_code == 2
    broken = tmp_path / "y.json"
    broken.write_text("{not json")
    result = run_cli("gate", broken, "--budget", budget)
    assert result.exit_code == 2 and "not valid JSON" in result.stderr


def test_gate_run_dir_with_several_reports_needs_target(tmp_path, budget):
    (tmp_path / "report").mkdir()
    write_report(tmp_path / "report" / "report-rpi4.json")
    write_report(tmp_path / "report" / "report-local.json", target="local")
    result = run_cli("gate", tmp_path, "--budget", budget)
    assert result.exit_code == 2 and "choose one with --target" in result.stderr
    assert run_cli("gate", tmp_path, "--target", "rpi4").exit_code == 0


def test_gate_junit_has_one_case_per_check_and_marks_failures(tmp_path, budget):
    junit = tmp_path / "gate.xml"
    result = run_cli("gate", write_report(tmp_path / "r.json", GOOD | {"top1": 90.0}), "--budget", budget, "--junit", junit)
    assert result.exit_code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["deployable_file", "latency_p90_ms", "model_size_mb", "peak_memory_mb",
                                              "min_top1", "max_top1_drop", "min_macs_reduction", "min_speedup"]
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["min_top1"] and suite.get("failures") == "1"


def test_gate_appends_table_to_github_step_summary(tmp_path, budget, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert run_cli("gate", write_report(tmp_path / "r.json"), "--budget", budget).exit_code == 0
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "| min_top1 | 97 % | >= 95 % | pass |" in text


def test_gate_checks_a_bare_profile_record_and_fails_closed_on_accuracy(tmp_path):
    vouched = vouched_file(tmp_path / "m.onnx")
    model = {"path": vouched["file"], "sha256": vouched["sha256"], "file_size_bytes": vouched["file_size_bytes"]}
    record = {"schema": "pdd-edge.profile/1", "target": {"name": "local", "budget": {}}, "model": model,
              "environment": RPI4_ENV,
              "summary": {"latency_p90_ms": 3.0, "model_size_mb": 0.5, "peak_memory_mb": 10.0}}
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps(record))
    speed = tmp_path / "speed.toml"
    speed.write_text("[budget]\nlatency_p90_ms = 5\nmodel_size_mb = 1\npeak_memory_mb = 32\n")
    assert run_cli("gate", profile, "--budget", speed).exit_code == 0
    accuracy = tmp_path / "acc.toml"
    accuracy.write_text("[budget]\nlatency_p90_ms = 5\nmin_top1 = 90\n")
    result = run_cli("gate", profile, "--budget", accuracy)
    assert result.exit_code == 1 and "gate failed: min_top1" in result.stderr


def test_gate_run_dir_without_a_report_for_the_target_says_how_to_make_it(tmp_path, budget):
    (tmp_path / "report").mkdir()
    write_report(tmp_path / "report" / "report-local.json", target="local")
    result = run_cli("gate", tmp_path, "--target", "rpi4")
    assert result.exit_code == 2 and f"pdd-edge report {tmp_path} --target rpi4" in result.stderr


def test_gate_fails_latency_and_memory_measured_on_another_kind_of_machine(tmp_path):
    junit = tmp_path / "gate.xml"
    report = write_report(tmp_path / "r.json", environment=X86_ENV)
    result = run_cli("gate", report, "--target", "rpi4", "--junit", junit)
    assert result.exit_code == 1
    assert "gate failed: latency_p90_ms, peak_memory_mb" in result.stderr  # size and accuracy do not depend on it
    assert "measured on x86_64 AMD EPYC 9B14, 2 CPUs, not on rpi4" in result.stderr
    assert "architecture x86_64, not aarch64" in result.stdout and "--accept-foreign-measurements" in result.stdout
    failed = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase") if c.find("failure") is not None]
    assert failed == ["latency_p90_ms", "peak_memory_mb"]


def test_gate_accepts_a_foreign_measurement_only_when_told_and_says_so(tmp_path):
    junit = tmp_path / "gate.xml"
    report = write_report(tmp_path / "r.json", environment=X86_ENV)
    result = run_cli("gate", report, "--target", "rpi4", "--accept-foreign-measurements", "--junit", junit)
    assert result.exit_code == 0, result.stderr
    assert "foreign measurement accepted" in result.stdout
    notes = {c.get("name"): c.findtext("system-out") for c in ET.parse(junit).getroot().iter("testcase")}
    assert notes["latency_p90_ms"].startswith("foreign measurement accepted") and notes["model_size_mb"] is None
    # accepted evidence is still checked against the budget
    slow = write_report(tmp_path / "slow.json", GOOD | {"latency_p90_ms": 25.0}, environment=X86_ENV)
    assert run_cli("gate", slow, "--target", "rpi4", "--accept-foreign-measurements").exit_code == 1


@pytest.mark.parametrize("environment, reason", [
    (RPI4_ENV | {"cpu_model": "Cortex-A53 (Raspberry Pi 3)"}, "does not match 'Cortex-A72'"),
    (RPI4_ENV | {"cpus_available": 2, "intra_op_threads": 2}, "2 CPUs, not 4"),
    (RPI4_ENV | {"intra_op_threads": 1}, "1 threads, not the target's 4"),
    ({}, "does not say which machine measured it"),
])
def test_gate_fails_closed_when_the_measuring_machine_does_not_match_the_target(tmp_path, environment, reason):
    result = run_cli("gate", write_report(tmp_path / "r.json", environment=environment), "--target", "rpi4")
    assert result.exit_code == 1 and reason in result.stderr


def test_gate_fails_closed_when_a_target_asks_for_more_threads_than_the_machine_has(tmp_path):
    board = tmp_path / "board.toml"
    board.write_text('arch = "x86_64"\nthreads = 8\n[budget]\nlatency_p90_ms = 5\n')
    env = {"machine": "x86_64", "cpu_model": "AMD EPYC", "cpus_available": 2, "intra_op_threads": 8}
    result = run_cli("gate", write_report(tmp_path / "r.json", target="board", environment=env), "--target", board)
    assert result.exit_code == 1 and "8 threads on 2 CPUs (oversubscribed)" in result.stderr


@pytest.mark.parametrize("metric, value", [("latency_p90_ms", -1.0), ("latency_p90_ms", 0.0), ("model_size_mb", 0.0),
                                           ("peak_memory_mb", -5.0), ("top1", 150.0), ("macs_reduction", 120.0)])
def test_gate_fails_closed_on_impossible_values(tmp_path, budget, metric, value):
    result = run_cli("gate", write_report(tmp_path / "r.json", GOOD | {metric: value}), "--budget", budget)
    assert result.exit_code == 1 and "is impossible (fails closed)" in result.stdout


def test_gate_min_speedup_fails_closed_on_a_foreign_or_missing_measurement(tmp_path):
    budget = tmp_path / "speed.toml"
    budget.write_text("[budget]\nmin_speedup = 1.5\n")
    # measured on an x86 machine, gated for a Raspberry Pi: the speed-up is not the device's evidence
    foreign = write_report(tmp_path / "foreign.json", environment=X86_ENV)
    result = run_cli("gate", foreign, "--target", "rpi4", "--budget", budget)
    assert result.exit_code == 1 and "gate failed: min_speedup" in result.stderr
    missing = write_report(tmp_path / "missing.json", {k: v for k, v in GOOD.items() if k != "speedup"})
    result = run_cli("gate", missing, "--budget", budget)
    assert result.exit_code == 1 and "gate failed: min_speedup" in result.stderr
    assert run_cli("gate", write_report(tmp_path / "ok.json"), "--budget", budget).exit_code == 0


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
def test_gate_step_summary_that_is_a_folder_warns_and_keeps_the_verdict(tmp_path, budget, monkeypatch, verdict,
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


def test_gate_of_a_report_that_names_no_file_fails_closed(tmp_path, budget):
    path = write_report(tmp_path / "r.json")
    report = json.loads(path.read_text())
    del report["gate"]["sha256"]
    path.write_text(json.dumps(report))
    result = run_cli("gate", path, "--budget", budget)
    assert result.exit_code == 1
    assert "gate failed: deployable_file (the report does not record the sha256 of the file it vouches for" in result.stderr


def test_gate_json_prints_the_verdict_and_every_check(tmp_path, budget):
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


def test_gate_step_summary_on_a_read_only_file_system_warns_and_keeps_the_verdict(read_only_run, tmp_path, budget,
                                                                                   monkeypatch):
    summary = read_only_run / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run_cli("gate", write_report(tmp_path / "r.json"), "--budget", budget)
    assert result.exit_code == 0, result.output
    assert f"warning: GITHUB_STEP_SUMMARY {summary} cannot be appended to (Read-only file system)" in result.stderr
    assert not summary.exists()
