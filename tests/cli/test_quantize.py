"""`pdd-edge quantize` through the CLI: export -> simplify -> quantize as a user runs it, the top-1 it measures, its usage errors."""

from __future__ import annotations

import json

import pytest

from tests.deploy_helpers import DIGITS_META, tiny_classifier
from tests.helpers import assert_usage_error, run_cli


@pytest.fixture(scope="module")
def chain(trained_checkpoint, tmp_path_factory):
    """export -> simplify -> quantize of the trained model, as a user runs it."""
    d = tmp_path_factory.mktemp("chain")
    results = {}
    for name, args in [
        ("export", ["export", trained_checkpoint, "--out", d / "m.onnx", "--json"]),
        ("simplify", ["simplify", d / "m.onnx", "--out", d / "m.sim.onnx", "--json"]),
        ("quantize", ["quantize", d / "m.sim.onnx", "--out", d / "m.int8.onnx", "--json"]),
    ]:
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
        results[name] = json.loads(result.stdout)
    return d, results


@pytest.mark.one_thread
def test_export_simplify_quantize_chain_reports_measured_numbers(chain):
    d, r = chain
    assert r["export"]["parity_max_abs_diff"] <= 1e-4 and r["export"]["dataset"] == "digits"
    assert r["simplify"]["parity_max_abs_diff"] <= 1e-4 and r["simplify"]["batchnorm_after"] == 0
    assert r["quantize"]["size_int8"] < r["quantize"]["size_fp32"]
    assert r["quantize"]["int8_top1"] >= r["quantize"]["fp32_top1"] - 2.0
    assert sorted(p.name for p in d.iterdir()) == ["m.int8.onnx", "m.onnx", "m.sim.onnx"]


@pytest.mark.one_thread
def test_evaluate_onnx_reports_the_top1_quantize_measured(chain):
    d, r = chain
    result = run_cli("evaluate", d / "m.int8.onnx", "--json")
    assert result.exit_code == 0, result.output
    measured = json.loads(result.stdout)
    assert measured["format"] == "onnx" and measured["quantization"]["method"] == "static"
    assert measured["top1"] == r["quantize"]["int8_top1"] and measured["count"] == 359


@pytest.mark.one_thread
def test_quantize_prints_fp32_and_int8_top1(trained_onnx, tmp_path):
    result = run_cli("quantize", trained_onnx, "--out", tmp_path / "q.onnx", "--calibration-size", 64)
    assert result.exit_code == 0, result.output
    assert "calibrated on 64 digits train images" in result.stdout
    assert "top-1 on digits val (359 images, onnxruntime): FP32" in result.stdout and "INT8" in result.stdout


@pytest.mark.one_thread
def test_quantize_rejects_empty_calibration_set(tmp_path):
    out = tmp_path / "out.onnx"
    model = tiny_classifier(tmp_path / "m.onnx", meta=DIGITS_META)
    assert_usage_error(run_cli("quantize", model, "--out", out, "--calibration-size", 0), "the calibration set is empty")
    assert not out.exists()


@pytest.mark.one_thread
def test_quantize_rejects_calibration_size_when_method_is_dynamic(tmp_path):
    out = tmp_path / "out.onnx"
    model = tiny_classifier(tmp_path / "m.onnx", meta=DIGITS_META)
    assert_usage_error(run_cli("quantize", model, "--out", out, "--method", "dynamic", "--calibration-size", 10),
                       "--calibration-size applies to --method static")
    assert not out.exists()


def test_quantize_unknown_format_is_a_usage_error(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    assert_usage_error(run_cli("quantize", model, "--out", tmp_path / "q.onnx", "--format", "qint"), "unknown INT8 format")
    assert model.read_bytes() == b"x" and not (tmp_path / "q.onnx").exists()
