"""report/build.py: which file the report vouches for, and its latency-target section."""

from __future__ import annotations

import math
from pathlib import Path

import pytest


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


GOLDEN_MD = Path(__file__).parents[1] / "golden" / "report-every-section.md"


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
                    "max_abs_diff": 1.5e-6,
                    "notes": ["the distillation fixed the masks on the deployed widths at the start of epoch 9",
                              "closed 37 open channels with the smallest mask values"]},
        "training": {"teacher_top1": 98.9, "baseline_top1": 97.5, "masked_top1": None, "finetuned_top1": 97.2},
        "layers": {"layer1.0.gate_out": {"kept": 12, "total": 16}},
    }


def test_report_markdown_is_byte_for_byte_the_golden_file():
    # Pins every line of the Markdown, so that a change to how it is written is a deliberate one
    # (regenerate the file from markdown() and review the diff).
    from pdd_edge.report.build import markdown

    assert markdown(_report_with_every_section()) == GOLDEN_MD.read_text()
