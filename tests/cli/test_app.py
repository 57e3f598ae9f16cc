"""The application around the commands: click's usage errors as one line, and shell completion."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from pdd_edge import zoo
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


def test_version_prints_the_installed_version():
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"pdd-edge {version('pdd-edge')}"


@pytest.mark.parametrize("command, text", [("gate", "[budget]"), ("report", "USER@HOST[:PORT]")])
def test_help_keeps_square_brackets_that_rich_markup_would_eat(command, text):
    result = run_cli(command, "--help")
    assert result.exit_code == 0 and text in result.stdout


def test_short_t_means_target_wherever_it_exists(tmp_path):
    result = run_cli("compress", "-t", "pi9000", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "unknown target 'pi9000'" in result.stderr and not (tmp_path / "run").exists()
    for command in ("distill", "finetune"):
        assert run_cli(command, "-t", "resnet56").exit_code == 2  # no -t there: --teacher has no short form


def test_distill_and_finetune_name_the_teacher_option_for_a_teachers_file(teacher, tmp_path):
    from pdd_edge import checkpoint

    bare = tmp_path / "bare.pt"
    torch.save(zoo.build("resnet20").state_dict(), bare)
    result = run_cli("distill", "--student", "resnet20", "--teacher-weights", bare, "--out", tmp_path / "d")
    assert result.exit_code == 2 and "pass --teacher NAME" in result.stderr and "--model" not in result.stderr
    result = run_cli("distill", "--student", "resnet20", "--teacher", "resnet56", "--teacher-weights", teacher,
                     "--out", tmp_path / "d")
    assert result.exit_code == 2 and "pass --teacher resnet20" in result.stderr
    pruned = tmp_path / "p.pt"
    model, info = checkpoint.load(teacher)
    checkpoint.save(pruned, checkpoint.checkpoint_dict(model, model_name="resnet20", preprocess=info.preprocess))
    result = run_cli("finetune", pruned, "--teacher-weights", bare, "--out", tmp_path / "f")
    assert result.exit_code == 2 and "pass --teacher NAME" in result.stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "f").exists()
