"""evaluate, simplify and quantize on ONNX files they cannot use: one line on stderr, exit code 2, no output file."""

from __future__ import annotations

import pytest

from tests.deploy_helpers import DIGITS_META, tiny_classifier
from tests.helpers import assert_usage_error, run_cli

ONNX_COMMANDS = ["evaluate", "simplify", "quantize"]  # the commands that read an ONNX model


def onnx_command(command: str, model, out, *options):
    """`command MODEL [--out OUT] OPTIONS`: evaluate writes no file, the others do."""
    return run_cli(command, model, *options, *([] if command == "evaluate" else ["--out", out]))


@pytest.mark.one_thread
@pytest.mark.parametrize("command", ONNX_COMMANDS)
def test_commands_reject_file_when_it_is_not_onnx(tmp_path, command):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a model\n")
    out = tmp_path / "out.onnx"
    assert_usage_error(onnx_command(command, bad, out), "is not a readable ONNX model")
    assert not out.exists()


@pytest.mark.one_thread
@pytest.mark.parametrize("command", ONNX_COMMANDS)
def test_commands_reject_file_when_it_is_truncated(tmp_path, command):
    data = tiny_classifier(tmp_path / "m.onnx", meta=DIGITS_META).read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.onnx"
    assert_usage_error(onnx_command(command, truncated, out), "truncated or not ONNX")
    assert not out.exists()


@pytest.mark.one_thread
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
