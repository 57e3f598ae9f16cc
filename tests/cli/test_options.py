"""cli/options.py: the --input-size option the commands share (parsed as H or H,W, one-line errors,
what reaches the command)."""

from __future__ import annotations

import os

import pytest
import typer

from pdd_edge.cli.options import parse_input_size
from pdd_edge.errors import PddError
from tests.helpers import run_cli


@pytest.mark.parametrize("text, hw", [("32", (32, 32)), ("24,40", (24, 40)), ("24x40", (24, 40)),
                                      ("24X40", (24, 40)), (" 24 , 40 ", (24, 40)), (None, None)])
def test_parse_input_size_reads_square_and_height_width(text, hw):
    assert parse_input_size(text) == hw


@pytest.mark.parametrize("text", ["0", "-5", "3,4,5", "abc", "0,32", "24,", "", "1_0", "24x40x3"])
def test_parse_input_size_refuses_what_is_not_one_or_two_positive_integers(text):
    with pytest.raises(typer.BadParameter, match=r"H \(square\) or H,W \(height,width; or HxW\)"):
        parse_input_size(text)


@pytest.mark.parametrize("value", ["0", "-5", "3,4,5", "abc", "0,32"])
def test_bad_input_size_is_a_one_line_usage_error_naming_the_accepted_forms(tmp_path, value):
    model = tmp_path / "m.pt"
    model.write_bytes(os.urandom(64))
    result = run_cli("evaluate", model, "--input-size", value)
    assert result.exit_code == 2 and "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines() == [
        f"error: --input-size must be H (square) or H,W (height,width; or HxW) in positive pixels, e.g. 32 or 24,40; got {value!r}"]


@pytest.mark.parametrize("value, hw", [("24,40", (24, 40)), ("24x40", (24, 40)), ("16", (16, 16))])
def test_input_size_reaches_the_command_as_height_width(tmp_path, monkeypatch, value, hw):
    from pdd_edge.stages import evaluate

    seen = {}

    def fake_evaluate(path, data, **_):
        seen["data"] = data
        raise PddError("stop here")

    monkeypatch.setattr(evaluate, "evaluate_checkpoint", fake_evaluate)
    model = tmp_path / "m.pt"
    model.write_bytes(b"unused")
    result = run_cli("evaluate", model, "--input-size", value)
    assert result.exit_code == 2 and "stop here" in result.stderr
    assert seen["data"].input_size == hw


def test_help_shows_both_forms():
    result = run_cli("train", "--help")
    assert result.exit_code == 0 and "H,W" in result.stdout and "height,width" in result.stdout
