"""The application around the commands: click's usage errors as one line, and shell completion."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pdd_edge.cli.app import app
from tests.helpers import run_cli


@pytest.mark.parametrize("args, line", [
    (["profile", "m.onnx", "--bogus"], "error: No such option: --bogus; see pdd-edge profile --help"),
    (["profile"], "error: Missing argument 'model'; see pdd-edge profile --help"),
    (["prune", "d.pt"], "error: Missing option '--out' / '-o'; see pdd-edge prune --help"),
    (["targets", "show"], "error: Missing argument 'target'; see pdd-edge targets show --help"),
    (["nosuch"], "error: No such command 'nosuch'; see pdd-edge --help"),
    (["gate", "run", "--junit"], "error: Option '--junit' requires an argument"),
])
def test_click_usage_error_is_one_line_with_exit_2(args, line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli(*args)

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [line] and result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_bad_option_value_is_one_line_naming_the_option():
    result = run_cli("distill", "--student", "resnet20", "--teacher-weights", "t.pt", "--out", "d", "--epochs", "x")

    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: Invalid value for '--epochs'") and "Traceback" not in result.output


def test_no_arguments_still_shows_the_help():
    result = run_cli()

    assert "Usage: pdd-edge" in result.output and "error:" not in result.output


def test_help_offers_to_install_shell_completion():
    # What --show-completion prints depends on the shell it detects around the test run, so the
    # completion itself is tested below, through the protocol the installed script speaks.
    result = run_cli("--help")

    assert result.exit_code == 0 and "--install-completion" in result.stdout and "--show-completion" in result.stdout


def test_completion_completes_command_names_and_options():
    def complete(words: str) -> list[str]:
        env = {"_PDD_EDGE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
        result = CliRunner().invoke(app, [], env=env, prog_name="pdd-edge")
        assert result.exit_code == 0, result.output
        return result.stdout.split()

    assert complete("pdd-edge pr") == ["profile", "prune"]
    assert complete("pdd-edge profile --war") == ["--warmup"]
