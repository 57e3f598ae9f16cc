"""`pdd-edge report` on a run directory: files, schema, Markdown and plots."""

import json
import math
import platform
from pathlib import Path

import pytest

from pdd_edge.artifact import RunDir
from tests.helpers import run_cli
from tests.run_fixtures import TOP1, make_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def test_run_dir_create_refuses_existing_run_without_resume(tmp_path):
    make_run(tmp_path / "run", profile=False)
    from pdd_edge.errors import PddError

    with pytest.raises(PddError, match="already holds a run; add --resume"):
        RunDir.create(tmp_path / "run", {}, resume=False)


def test_report_records_the_files_it_adds_in_the_manifest(tmp_path):
    run = make_run(tmp_path / "run", profile=False)
    result = run_cli("report", run.root, "--target", "rpi4", "--min-runs", "3", "--min-time", "0")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((run.root / "manifest.json").read_text())
    added = {f for c in manifest["commands"] for f in c["files"]}
    assert {"profile/profile-rpi4.json", "report/report-rpi4.json", "report/report-rpi4.md"} <= added
    assert all((run.root / f).is_file() for f in added)


def _variants(**spec):
    return {n: {"top1": top1, "latency_p50_ms": ms} for n, (top1, ms) in spec.items()}


def test_deployable_is_the_fastest_variant_within_the_accuracy_budget():
    from pdd_edge.report.build import deployable_variant

    v = _variants(baseline=(97.0, 1.0), pruned=(96.8, 0.6), int8=(96.5, 0.4))
    assert deployable_variant(v, {"quantization": "fp32"})[0] == "int8"  # faster, 0.5 points within 1
    slow_int8 = _variants(baseline=(97.0, 1.0), pruned=(96.8, 0.6), int8=(96.5, 0.7))
    name, why = deployable_variant(slow_int8, {"quantization": "int8-qdq"})
    assert name == "pruned" and "int8: p50 0.7 ms" in why  # INT8 that does not pay is not chosen
    lossy = _variants(baseline=(97.0, 1.0), pruned=(96.8, 0.6), int8=(94.0, 0.3))
    assert deployable_variant(lossy, {"budget": {"max_top1_drop": 2.0}})[0] == "pruned"
    assert deployable_variant(lossy, {"budget": {"max_top1_drop": 3.5}})[0] == "int8"
    both_bad = _variants(baseline=(97.0, 1.0), pruned=(90.0, 0.6), int8=(89.0, 0.3))
    assert deployable_variant(both_bad, {})[0] == "baseline"  # no pruned file within: the unpruned one ships
    unmeasured = _variants(baseline=(math.nan, 1.0), pruned=(90.0, 0.6), int8=(89.0, 0.3))
    assert deployable_variant(unmeasured, {})[0] == "pruned"  # nothing within (no reference): the more accurate


def test_deployable_is_never_slower_than_the_unpruned_files():
    from pdd_edge.report.build import deployable_variant, not_faster

    slower = _variants(baseline=(97.0, 1.0), **{"baseline-int8": (96.9, 0.7)}, pruned=(96.8, 1.1), int8=(96.7, 0.8))
    name, why = deployable_variant(slower, {"quantization": "int8-qdq"})
    assert name == "baseline-int8" and why.startswith("baseline-int8 is the fastest")
    line = not_faster(slower, name, foreign=False)
    assert line.startswith("pruning did not pay on this target") and "fastest pruned: int8, p50 0.8 ms" in line
    assert not_faster(slower, name, foreign=True) is None  # measured elsewhere: nothing can be said
    faster = _variants(baseline=(97.0, 1.0), **{"baseline-int8": (96.9, 0.7)}, pruned=(96.8, 0.5), int8=(96.7, 0.4))
    name, _ = deployable_variant(faster, {})
    assert name == "int8" and not_faster(faster, name, foreign=False) is None


def test_deployable_measured_on_another_device_is_the_declared_format():
    from pdd_edge.report.build import deployable_variant

    v = _variants(baseline=(97.0, 1.0), pruned=(96.8, 0.4), int8=(96.5, 0.6))
    name, why = deployable_variant(v, {"quantization": "int8-qdq"}, foreign=True)
    assert name == "int8" and "not measured on this device" in why


def test_latency_target_section_compares_request_prediction_and_measurement():
    from pdd_edge.report.build import latency_budget

    lat = {"target": "local", "target_ms": 0.30, "predicted_ms": 0.29, "batch_size": 1, "table": "t.json"}
    variants = {"pruned": {"latency_p50_ms": 0.32, "batch_size": 1}}
    lb = latency_budget(lat, {"name": "local"}, variants)
    assert lb["measured_vs_requested_pct"] == pytest.approx(100 * 0.02 / 0.30) and lb["met"]
    assert lb["prediction_error_pct"] == pytest.approx(100 * (0.29 - 0.32) / 0.32)
    assert not latency_budget(lat, {"name": "local"}, {"pruned": {"latency_p50_ms": 0.40, "batch_size": 1}})["met"]
    assert latency_budget(lat, {"name": "rpi4"}, variants) is None  # the table describes another device
    assert latency_budget(None, {"name": "local"}, variants) is None


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


GOLDEN_MD = Path(__file__).parent / "golden" / "report-every-section.md"


def _report_with_every_section() -> dict:
    """A report dict (as build_report returns it) that turns on every part of the Markdown: a
    remote, foreign measurement, a run whose pruning did not pay, a latency target that was limited,
    noisy latencies, both plots, the pruning section, and numbers that were not measured (n/a)."""
    def variant(label, top1, macs, p50, noisy=False):
        return {"label": label, "top1": top1, "macs": macs, "params": macs // 100, "size_mb": macs / 2**24,
                "latency_p50_ms": p50, "latency_p90_ms": p50 * 1.25, "speedup_p50": 2.0 / p50,
                "peak_memory_mb": None if noisy else 3.25, "noisy": noisy, "val_images": 359, "batch_size": 1}

    return {
        "student": "resnet20", "teacher": "resnet56", "dataset": "digits",
        "target": {"name": "rpi4", "description": "Raspberry Pi 4"},
        "environment": {"cpu_model": "Cortex-A72", "machine": "aarch64", "onnxruntime": "1.0",
                        "execution_provider": "CPUExecutionProvider", "intra_op_threads": 4},
        "remote": {"host": "pi@rpi4"},
        "device_check": {"foreign": True, "message": "measured on x86_64, not on rpi4"},
        "not_faster": "pruning did not pay on this target",
        "variants": {"baseline": variant("unpruned KD student, FP32", 97.5, 41_000_000, 2.0),
                     "pruned": variant("PDD-pruned + fine-tuned, FP32", math.nan, 20_000_000, 2.5, noisy=True)},
        "deployable": "baseline", "deployable_reason": "baseline is the fastest",
        "gate": {"variant": "baseline", "macs_reduction": 0.0, "top1_drop": None},
        "latency_budget": {"requested_ms": 1.0, "predicted_ms": 1.05, "measured_ms": 2.5, "table_batch_size": 1,
                           "measured_vs_requested_pct": 150.0, "met": False, "prediction_error_pct": math.nan,
                           "table": "latency/rpi4.json",
                           "limited": {"masks_predicted_ms": 1.5, "stopped_at_ms": 1.2, "max_unrecovered_share": 0.25}},
        "plots": {"accuracy_latency": "accuracy-latency-rpi4.png", "channels": "channels.png"},
        "pruning": {"macs_before": 41_000_000, "macs_after": 20_000_000, "params_before": 270_000,
                    "params_after": 120_000, "macs_reduction_pct": 51.22, "params_reduction_pct": 55.56,
                    "max_abs_diff": 1.5e-6},
        "training": {"teacher_top1": 98.9, "baseline_top1": 97.5, "masked_top1": None, "finetuned_top1": 97.2},
        "layers": {"layer1.0.gate_out": {"kept": 12, "total": 16}},
    }


def test_report_markdown_is_byte_for_byte_the_golden_file():
    # Pins every line of the Markdown, so that a change to how it is written is a deliberate one
    # (regenerate the file from markdown() and review the diff).
    from pdd_edge.report.build import markdown

    assert markdown(_report_with_every_section()) == GOLDEN_MD.read_text()
