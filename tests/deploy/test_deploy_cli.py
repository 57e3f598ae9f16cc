"""`pdd-edge evaluate / export / simplify / quantize` through the CLI: the chain end to end, and
every bad input as one line on stderr, exit code 2 and no output file."""

from __future__ import annotations

import json

import pytest
from tests.deploy_helpers import digits_preprocess, masked_checkpoint, tiny_classifier
from pdd_edge.cli.app import app
from typer.testing import CliRunner

from pdd_edge.onnx.meta import OnnxMeta

runner = CliRunner()
ONNX_COMMANDS = ["evaluate", "simplify", "quantize"]  # the commands that read an ONNX model
DIGITS_META = OnnxMeta(dataset="digits", preprocess=digits_preprocess())


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def onnx_command(command: str, model, out, *options):
    """`command MODEL [--out OUT] OPTIONS`: evaluate writes no file, the others do."""
    return invoke(command, model, *options, *([] if command == "evaluate" else ["--out", out]))


def assert_usage_error(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_evaluate_onnx_runs_third_party_model_when_user_gives_what_is_missing(tmp_path):
    model = tiny_classifier(tmp_path / "third_party.onnx")
    assert_usage_error(invoke("evaluate", model), "does not record the dataset it was trained on; pass --dataset")
    result = invoke("evaluate", model, "--dataset", "digits", "--mean", "0.3,0.3,0.3", "--std", "0.3,0.3,0.3")
    assert result.exit_code == 0, result.output
    assert "(ONNX) on digits val (359 images): top-1" in result.stdout
    assert "normalisation from command line" in result.stderr


@pytest.mark.parametrize("command", ONNX_COMMANDS)
def test_commands_reject_file_when_it_is_not_onnx(tmp_path, command):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a model\n")
    out = tmp_path / "out.onnx"
    assert_usage_error(onnx_command(command, bad, out), "is not a readable ONNX model")
    assert not out.exists()


@pytest.mark.parametrize("command", ONNX_COMMANDS)
def test_commands_reject_file_when_it_is_truncated(tmp_path, command):
    data = tiny_classifier(tmp_path / "m.onnx", meta=DIGITS_META).read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.onnx"
    assert_usage_error(onnx_command(command, truncated, out), "truncated or not ONNX")
    assert not out.exists()


@pytest.mark.parametrize("command", ONNX_COMMANDS)
def test_commands_reject_model_when_input_shape_does_not_fit_dataset(tmp_path, command):
    out = tmp_path / "out.onnx"
    wide = tiny_classifier(tmp_path / "wide.onnx", hw=(64, 64))
    assert_usage_error(onnx_command(command, wide, out, "--dataset", "digits", "--input-size", 32),
                       "expects 64x64 inputs but digits gives 32x32; pass --input-size 64")
    gray = tiny_classifier(tmp_path / "gray.onnx", channels=1)
    assert_usage_error(onnx_command(command, gray, out, "--dataset", "digits"),
                       "expects 1-channel input but digits gives 3-channel RGB images")
    assert not out.exists()


def test_export_prints_parity_in_text_mode(trained_checkpoint, tmp_path):
    result = invoke("export", trained_checkpoint, "--out", tmp_path / "m.onnx", "--parity-images", 50)
    assert result.exit_code == 0, result.output
    assert "resnet20, ONNX opset 18" in result.stdout
    assert "parity vs PyTorch on 50 digits val images: max |logit difference|" in result.stdout


def test_export_rejects_checkpoint_when_it_still_has_masks(tmp_path):
    out = tmp_path / "m.onnx"
    assert_usage_error(invoke("export", masked_checkpoint(tmp_path / "masked.pt"), "--out", out), "pdd-edge prune")
    assert not out.exists()


def test_evaluate_onnx_matches_pytorch_checkpoint(trained_onnx, trained_checkpoint):
    onnx_result = json.loads(invoke("evaluate", trained_onnx, "--json").stdout)
    torch_result = json.loads(invoke("evaluate", trained_checkpoint, "--json").stdout)
    assert onnx_result["top1"] == torch_result["top1"] and onnx_result["top5"] == torch_result["top5"]
    assert onnx_result["loss"] == pytest.approx(torch_result["loss"], abs=1e-4)
    assert onnx_result["preprocess"] == torch_result["preprocess"]


def test_simplify_prints_node_and_batchnorm_counts(tmp_path):
    model = tiny_classifier(tmp_path / "m.onnx", meta=DIGITS_META)
    result = invoke("simplify", model, "--out", tmp_path / "m.sim.onnx")
    assert result.exit_code == 0, result.output
    assert "nodes 6 -> 5, BatchNormalization 1 -> 0" in result.stdout
    assert "parity vs" in result.stdout and "on 359 digits val images" in result.stdout


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
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        results[name] = json.loads(result.stdout)
    return d, results


def test_export_simplify_quantize_chain_reports_measured_numbers(chain):
    d, r = chain
    assert r["export"]["parity_max_abs_diff"] <= 1e-4 and r["export"]["dataset"] == "digits"
    assert r["simplify"]["parity_max_abs_diff"] <= 1e-4 and r["simplify"]["batchnorm_after"] == 0
    assert r["quantize"]["size_int8"] < r["quantize"]["size_fp32"]
    assert r["quantize"]["int8_top1"] >= r["quantize"]["fp32_top1"] - 2.0
    assert sorted(p.name for p in d.iterdir()) == ["m.int8.onnx", "m.onnx", "m.sim.onnx"]


def test_evaluate_onnx_reports_the_top1_quantize_measured(chain):
    d, r = chain
    result = invoke("evaluate", d / "m.int8.onnx", "--json")
    assert result.exit_code == 0, result.output
    measured = json.loads(result.stdout)
    assert measured["format"] == "onnx" and measured["quantization"]["method"] == "static"
    assert measured["top1"] == r["quantize"]["int8_top1"] and measured["count"] == 359


def test_quantize_prints_fp32_and_int8_top1(trained_onnx, tmp_path):
    result = invoke("quantize", trained_onnx, "--out", tmp_path / "q.onnx", "--calibration-size", 64)
    assert result.exit_code == 0, result.output
    assert "calibrated on 64 digits train images" in result.stdout
    assert "top-1 on digits val (359 images, onnxruntime): FP32" in result.stdout and "INT8" in result.stdout


def test_quantize_rejects_empty_calibration_set(tmp_path):
    out = tmp_path / "out.onnx"
    model = tiny_classifier(tmp_path / "m.onnx", meta=DIGITS_META)
    assert_usage_error(invoke("quantize", model, "--out", out, "--calibration-size", 0), "the calibration set is empty")
    assert not out.exists()


def test_quantize_rejects_calibration_size_when_method_is_dynamic(tmp_path):
    out = tmp_path / "out.onnx"
    model = tiny_classifier(tmp_path / "m.onnx", meta=DIGITS_META)
    assert_usage_error(invoke("quantize", model, "--out", out, "--method", "dynamic", "--calibration-size", 10),
                       "--calibration-size applies to --method static")
    assert not out.exists()
