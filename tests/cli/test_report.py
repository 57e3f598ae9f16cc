"""`pdd-edge report` through the CLI: what it writes, and the runs it refuses."""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path

import pytest

from pdd_edge.fileio import file_sha256
from tests.helpers import run_cli
from tests.run_fixtures import TOP1, damage, make_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run") / "run").root


def test_report_writes_json_markdown_and_png_plots(run_dir):
    result = run_cli("report", run_dir)
    assert result.exit_code == 0, result.stderr
    folder = run_dir / "report"
    assert {p.name for p in folder.iterdir()} == {"report-local.json", "report-local.md", "accuracy-latency-local.png",
                                                  "channels.png"}
    for png in ("accuracy-latency-local.png", "channels.png"):
        data = (folder / png).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_report_json_has_schema_variants_and_gate_numbers(run_dir):
    assert run_cli("report", run_dir).exit_code == 0
    report = json.loads((run_dir / "report" / "report-local.json").read_text())
    assert report["schema"] == "pdd-edge.report/1"
    assert set(report["variants"]) == {"baseline", "pruned", "int8"}
    for v in report["variants"].values():
        assert {"top1", "macs", "params", "size_mb", "latency_p50_ms", "latency_p90_ms", "speedup_p50"} <= set(v)
        assert v["latency_p50_ms"] <= v["latency_p90_ms"]
    assert report["variants"]["baseline"]["macs"] == 32 * 27 * 16 * 16 + 32 * 10
    assert report["variants"]["baseline"]["speedup_p50"] == 1.0
    gate = report["gate"]
    # Measured here, on the local target itself: the fastest file, the unpruned one included (all
    # are within 1 point), so the deployed file is never slower than the unpruned one.
    fastest = min(report["variants"], key=lambda n: report["variants"][n]["latency_p50_ms"])
    assert report["deployable"] == fastest and report["deployable_reason"].startswith(f"{fastest} is the fastest")
    assert gate["top1"] == TOP1[fastest]
    assert gate["top1_drop"] == pytest.approx(TOP1["baseline"] - TOP1[fastest])
    assert gate["speedup"] == report["variants"][fastest]["speedup_p50"] >= 1.0
    assert report["variants"]["pruned"]["macs_reduction_pct"] == pytest.approx(
        100 * (1 - (12 * 27 * 256 + 120) / (32 * 27 * 256 + 320)))
    assert gate["macs_reduction"] == report["variants"][fastest]["macs_reduction_pct"]
    assert (report["not_faster"] is None) == (fastest in ("pruned", "int8"))
    assert report["layers"]["layer1.0.gate_out"] == {"kept": 12, "total": 16, "reopened": 1}


def test_report_markdown_names_every_variant_and_embeds_plots(run_dir):
    assert run_cli("report", run_dir).exit_code == 0
    md = (run_dir / "report" / "report-local.md").read_text()
    for label in ("baseline: unpruned KD student", "pruned: PDD-pruned", "int8: PDD-pruned"):
        assert label in md
    assert "![accuracy vs latency](accuracy-latency-local.png)" in md and "![channels kept per layer](channels.png)" in md
    assert "multiply-accumulates" in md


def test_report_target_without_profile_is_profiled_now(tmp_path):
    run = make_run(tmp_path / "run", profile=False)
    result = run_cli("report", run.root, "--target", "rpi4", "--min-runs", "3", "--min-time", "0")
    assert result.exit_code == 0, result.stderr
    report = json.loads((run.root / "report" / "report-rpi4.json").read_text())
    assert report["target"]["name"] == "rpi4" and report["deployable"] == "int8"  # rpi4 declares int8
    assert (run.root / "profile" / "profile-rpi4.json").exists()
    if platform.machine() != "aarch64":  # profiled here, not on a Raspberry Pi: the report says so, loudly
        assert report["device_check"]["foreign"] and "not on rpi4" in result.stderr
        md = (run.root / "report" / "report-rpi4.md").read_text()
        assert "> **Warning: measured on" in md and "--accept-foreign-measurements" in md
        gate = run_cli("gate", run.root, "--target", "rpi4")
        assert gate.exit_code == 1 and "latency_p90_ms" in gate.stderr


def test_report_of_run_without_profile_is_usage_error(tmp_path):
    run = make_run(tmp_path / "run", profile=False)
    result = run_cli("report", run.root)
    assert result.exit_code == 2 and "has no profile yet" in result.stderr


def test_report_of_folder_without_manifest_is_usage_error(tmp_path):
    result = run_cli("report", tmp_path)
    assert result.exit_code == 2 and "not a pdd-edge run directory" in result.stderr


def test_report_records_the_files_it_adds_in_the_manifest(tmp_path):
    run = make_run(tmp_path / "run", profile=False)
    result = run_cli("report", run.root, "--target", "rpi4", "--min-runs", "3", "--min-time", "0")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((run.root / "manifest.json").read_text())
    added = {f for c in manifest["commands"] for f in c["files"]}
    assert {"profile/profile-rpi4.json", "report/report-rpi4.json", "report/report-rpi4.md"} <= added
    assert all((run.root / f).is_file() for f in added)


def test_report_says_loudly_when_no_pruned_file_is_faster_within_the_accuracy_budget(tmp_path):
    # The pruned files lose 0.3 and 0.6 points, outside a 0.1-point budget: the unpruned student
    # ships (its INT8 file loses exactly 0.1), and the report and Markdown say pruning did not pay.
    run = make_run(tmp_path / "run", profile=False, variants=("baseline", "baseline-int8", "pruned", "int8"))
    strict = tmp_path / "strict.toml"
    strict.write_text('name = "strict"\nbatch_sizes = [1]\n[budget]\nmax_top1_drop = 0.1\nmin_speedup = 1.0\n')
    result = run_cli("report", run.root, "--target", strict, "--min-runs", "3", "--min-time", "0")
    assert result.exit_code == 0, result.stderr
    report = json.loads((run.root / "report" / "report-strict.json").read_text())
    assert report["deployable"] in ("baseline", "baseline-int8")
    assert report["not_faster"].startswith("pruning did not pay on this target")
    assert report["gate"]["speedup"] >= 1.0 and not math.isnan(report["gate"]["speedup"])
    md = (run.root / "report" / "report-strict.md").read_text()
    assert "> **NOT FASTER: pruning did not pay on this target" in md
    assert "baseline-int8: unpruned KD student, INT8" in md


def test_report_with_a_new_target_on_a_read_only_run_is_refused_before_profiling(read_only_run):
    result = run_cli("report", read_only_run, "--target", "local", "--min-runs", "1", "--min-time", "0")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (f"error: cannot write RUN_DIR file {read_only_run / 'manifest.json'}: "
                                     f"{read_only_run} is not writable (Read-only file system)")
    assert "profiling" not in result.stderr


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


def test_report_records_the_sha256_and_size_of_the_vouched_file(reported_run):
    gate = json.loads((reported_run / "report" / "report-local.json").read_text())["gate"]
    path = reported_run / gate["file"]
    assert gate["sha256"] == file_sha256(path) and gate["file_size_bytes"] == path.stat().st_size


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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
