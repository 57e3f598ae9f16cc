"""`pdd-edge profile` through the Typer app: the JSON file, and one-line errors for bad inputs."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
from onnx import helper
from typer.testing import CliRunner

from pdd_edge.cli.app import app
from tests.onnx_builders import conv_model, make_model, save, tensor_input, weight

runner = CliRunner()
LEAN = ["--warmup", "0", "--min-runs", "3", "--min-time", "0", "--threads", "1"]


@pytest.fixture
def small_model(tmp_path) -> str:
    return save(conv_model(["N", 3, 8, 8], (4, 3, 3, 3)), tmp_path / "small.onnx")


def test_profile_writes_json_record_and_prints_summary(small_model, tmp_path):
    out = tmp_path / "reports" / "small.json"

    result = runner.invoke(app, ["profile", small_model, "--batch-size", "1,4", "--json-out", str(out), *LEAN])

    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["schema"] == "pdd-edge.profile/1"
    assert [b["batch_size"] for b in record["batches"]] == [1, 4]
    assert record["cost"]["macs"] == 4 * 8 * 8 * 27
    assert "multiply-accumulates" in result.stdout and "MACs 6,912" in result.stdout


def test_profile_json_to_a_symlink_writes_its_target_and_keeps_the_link(small_model, tmp_path):
    target = tmp_path / "store" / "latest.json"
    target.parent.mkdir()
    target.write_text("{}\n")
    link = tmp_path / "small.json"
    link.symlink_to(target)

    result = runner.invoke(app, ["profile", small_model, "--json-out", str(link), *LEAN])

    assert result.exit_code == 0, result.output
    assert link.is_symlink() and link.resolve() == target
    assert json.loads(target.read_text())["schema"] == "pdd-edge.profile/1"

def test_profile_uses_a_user_target_file(small_model, tmp_path):
    target = tmp_path / "board.toml"
    target.write_text("threads = 1\nbatch_sizes = [2]\n[budget]\nlatency_p90_ms = 50\n")
    out = tmp_path / "p.json"

    result = runner.invoke(app, ["profile", small_model, "--target", str(target), "--json-out", str(out),
                                 "--warmup", "0", "--min-runs", "2", "--min-time", "0", "--no-memory"])

    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["target"]["name"] == "board" and record["environment"]["intra_op_threads"] == 1
    assert record["settings"]["batch_sizes"] == [2] and record["batches"][0]["memory"] is None


def test_profile_for_another_kind_of_device_warns_in_terminal_and_json(small_model, tmp_path):
    other = "aarch64" if platform.machine().lower() in ("x86_64", "amd64") else "x86_64"
    target = tmp_path / "board.toml"
    target.write_text(f'arch = "{other}"\n')
    out = tmp_path / "p.json"

    result = runner.invoke(app, ["profile", small_model, "--target", str(target), "--json-out", str(out), *LEAN, "--no-memory"])

    assert result.exit_code == 0, result.output
    check = json.loads(out.read_text())["device_check"]
    assert check["foreign"] and check["reasons"][0].endswith(f"not {other}")
    assert f"warning: measured on {platform.machine()}" in result.stderr and "not on board" in result.stderr
    assert "use --remote" not in result.stdout  # the warning goes to stderr, the results to stdout


def _no_input_model(tmp_path) -> str:
    node = helper.make_node("Constant", [], ["Y"], value=weight("c", 2))
    return save(make_model([node], [], [tensor_input("Y", [2])]), tmp_path / "constant.onnx")


def _truncated_model(tmp_path) -> str:
    data = Path(save(conv_model([1, 3, 8, 8], (4, 3, 3, 3)), tmp_path / "full.onnx")).read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def _text_file(tmp_path) -> str:
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n")
    return str(path)


def _bad_target(tmp_path) -> str:
    return _target(tmp_path, "[budget]\nlatency_p90_ms = -1\n")


def _target(tmp_path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("make_args, message", [
    (lambda tmp, m: [str(tmp / "missing.onnx")], "ONNX model not found"),
    (lambda tmp, m: [_text_file(tmp)], "not a readable ONNX model"),
    (lambda tmp, m: [_truncated_model(tmp)], "not a readable ONNX model"),
    (lambda tmp, m: [_no_input_model(tmp)], "no inputs"),
    (lambda tmp, m: [m, "--target", "rpi3"], "unknown target 'rpi3'"),
    (lambda tmp, m: [m, "--target", _bad_target(tmp)], "must not be negative"),
    (lambda tmp, m: [m, "--batch-size", "1,x"], "--batch-size must be comma-separated integers"),
    (lambda tmp, m: [m, "--batch-size", "0"], "batch sizes must be positive"),
    (lambda tmp, m: [m, "--threads", "0"], "--threads must be from 1 to"),
    (lambda tmp, m: [m, "--threads", "100000"], "--threads must be from 1 to"),
    (lambda tmp, m: [m, "--target", _target(tmp, "threads = 100000\n")], "key 'threads' must be an integer from 1 to"),
    (lambda tmp, m: [save(conv_model(["N", 3, "H", "W"], (4, 3, 3, 3)), tmp / "dyn.onnx")], "cannot resolve dimension 2"),
    (lambda tmp, m: [m, "--input-shape", "3,16,16"], "does not match --input-shape"),
    (lambda tmp, m: [m, "--remote", "no-user-host"], "--remote must look like USER@HOST"),
    (lambda tmp, m: [m, "--input-shape", "Y=3,8,8"], "names 'Y', which the model does not have; its inputs are 'X'"),
    (lambda tmp, m: [m, "--input-shape", "3,8,8", "--input-shape", "3,8,8"], "without a NAME= may be given once"),
    (lambda tmp, m: [m, "--input-shape", "X=3,8,8", "--input-shape", "X=3,8,8"], "give each input once"),
    (lambda tmp, m: [m, "--input-shape", "X=3,8"], "has 3 dimension(s) after the batch, but --input-shape X= gives 2"),
])
def test_profile_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, small_model, make_args, message):
    out = tmp_path / "out.json"

    result = runner.invoke(app, ["profile", *LEAN, *make_args(tmp_path, small_model), "--json-out", str(out)])

    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not list(tmp_path.glob(".out.json.*"))  # no temporary leftovers either


def test_profile_feeds_a_two_input_model_with_per_input_shapes(tmp_path):
    # An image and a vector of features whose length the model leaves open: one shared hint
    # cannot fit both inputs, so each is named.
    nodes = [helper.make_node("Conv", ["X", "W"], ["C"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("ReduceMean", ["C"], ["P"], keepdims=0, axes=[2, 3]),
             helper.make_node("ReduceSum", ["F"], ["S"], keepdims=1, axes=[1]),
             helper.make_node("Add", ["P", "S"], ["Y"])]
    model = make_model(nodes, [tensor_input("X", ["N", 3, "H", "W"]), tensor_input("F", ["N", "K"])],
                       [tensor_input("Y", ["N", 4])], [weight("W", 4, 3, 3, 3)], opset=11)
    path = save(model, tmp_path / "two.onnx")
    out = tmp_path / "two.json"

    result = runner.invoke(app, ["profile", path, "--input-shape", "X=3,8,8", "--input-shape", "F=5",
                                 "--batch-size", "1,2", "--no-memory", "--json-out", str(out), *LEAN])

    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert [b["input_shapes"] for b in record["batches"]] == [{"X": [1, 3, 8, 8], "F": [1, 5]},
                                                              {"X": [2, 3, 8, 8], "F": [2, 5]}]
    assert record["settings"]["input_shape_hints"] == {"X": [3, 8, 8], "F": [5]}
    assert record["cost"]["macs"] == 4 * 8 * 8 * 27


def test_profile_json_prints_the_record_on_stdout_and_writes_no_file(small_model, tmp_path):
    result = runner.invoke(app, ["profile", small_model, "--json", *LEAN, "--no-memory"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["schema"] == "pdd-edge.profile/1" and record["model"]["path"] == small_model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.onnx"]


def test_profile_json_with_a_file_as_before_says_to_use_json_out(small_model, tmp_path):
    result = runner.invoke(app, ["profile", small_model, "--json", str(tmp_path / "p.json"), *LEAN])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: unexpected argument '{tmp_path / 'p.json'}'; --json takes no file (it prints "
                                     "the record on stdout): write a file with --json-out FILE")
    assert not (tmp_path / "p.json").exists()
