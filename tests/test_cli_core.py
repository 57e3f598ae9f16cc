"""The train / distill / evaluate commands end to end, and every bad input of the core issue."""

import pytest
import torch

from pdd_edge import zoo
from tests.conftest import AKAMASTER, CIFAR_JPEG, shared_file
from tests.helpers import cli_json, files_in, run_cli

IMAGENET = ["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"]


@pytest.fixture(scope="module")
def teacher(digits_teacher):
    return digits_teacher


def test_train_cli_writes_checkpoint_history_and_resume_state(tmp_path):
    out = tmp_path / "t.pt"
    # batch 32 at lr 0.05: one epoch that leaves chance (~23 %), which `train` requires of what it keeps
    result = run_cli("train", "--model", "resnet20", "--epochs", "1", "--batch-size", "32", "--lr", "0.05", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert files_in(tmp_path) == ["t.history.json", "t.last.pt", "t.pt"]
    assert "epoch 1/1" in result.stderr


@pytest.mark.parametrize("filename, name, top1", [("resnet20-12fca82f.th", "resnet20", 85.65),
                                                  ("resnet56-4bfd9763.th", "resnet56", 88.50)])
def test_evaluate_akamaster_checkpoint_on_cifar_jpeg_val(filename, name, top1):
    ckpt = shared_file(AKAMASTER / filename)
    data = shared_file(CIFAR_JPEG)
    result = cli_json("evaluate", "--model", name, "--weights", ckpt, "--dataset", "imagefolder",
                      "--data-dir", data, *IMAGENET, "--json")
    # ../shared/datasets/README.md: the ResNet20 checkpoint scores about 85.7 % on these JPEG copies.
    assert result["count"] == 2000
    assert result["top1"] == pytest.approx(top1, abs=0.1)


def test_train_writes_checkpoint_that_evaluate_reads_without_model_name(teacher):
    result = cli_json("evaluate", teacher, "--json")
    assert result["model"] == "resnet20" and result["count"] == 359
    best = torch.load(teacher, weights_only=True)["metrics"]["val_top1"]
    assert result["top1"] == pytest.approx(best, abs=1e-9)


def test_distill_lowers_loss_and_keeps_best_masked_checkpoint(teacher, tmp_path):
    out = tmp_path / "distill"
    summary = cli_json("distill", "--student", "resnet20", "--teacher-weights", teacher, "--epochs", "4",
                       "--batch-size", "64", "--lr", "0.05", "--out", out, "--json")
    assert files_in(out) == ["best.pt", "history.json", "last.pt"]
    history = __import__("json").loads((out / "history.json").read_text())["epochs"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(0 < h["kept_pct"] < 100 for h in history)
    assert summary["val_top1"] == max(h["val_top1"] for h in history)
    evaluated = cli_json("evaluate", out / "best.pt", "--json")
    assert evaluated["masked"] is True
    assert evaluated["top1"] == pytest.approx(summary["val_top1"], abs=1e-9)


def test_distill_same_seed_gives_identical_students(teacher, tmp_path):
    states = []
    for run in ("a", "b"):
        result = run_cli("distill", "--student", "resnet20", "--teacher-weights", teacher, "--epochs", "1",
                         "--batch-size", "128", "--seed", "3", "--out", tmp_path / run)
        assert result.exit_code == 0, result.stderr
        states.append(torch.load(tmp_path / run / "last.pt", weights_only=True)["model"])
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_distill_no_masks_runs_plain_kd(teacher, tmp_path):
    summary = cli_json("distill", "--student", "resnet20", "--teacher-weights", teacher, "--epochs", "1",
                       "--no-masks", "--out", tmp_path / "kd", "--json")
    assert "kept_pct" not in summary
    assert torch.load(tmp_path / "kd" / "best.pt", weights_only=True)["masks"] is None


# --- bad input: one line, exit code 2, no traceback, nothing half-written ---------------------------

def assert_usage_error(result, message: str):
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_train_unknown_model_is_usage_error(tmp_path):
    result = run_cli("train", "--model", "resnet21", "--out", tmp_path / "t.pt")
    assert_usage_error(result, "unknown model 'resnet21'")
    assert files_in(tmp_path) == []


def test_train_unknown_dataset_is_usage_error(tmp_path):
    result = run_cli("train", "--model", "resnet20", "--dataset", "mnist", "--out", tmp_path / "t.pt")
    assert_usage_error(result, "unknown dataset 'mnist'")
    assert files_in(tmp_path) == []


def test_evaluate_missing_data_dir_says_how_to_get_data(teacher, tmp_path):
    result = run_cli("evaluate", teacher, "--dataset", "cifar10", "--data-dir", tmp_path / "nothing")
    assert_usage_error(result, "--download")


def test_evaluate_missing_checkpoint_is_usage_error(tmp_path):
    assert_usage_error(run_cli("evaluate", tmp_path / "nope.pt"), "checkpoint not found")


def test_evaluate_corrupt_checkpoint_is_usage_error(teacher, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(teacher.read_bytes()[:1000])
    assert_usage_error(run_cli("evaluate", bad), "not a readable PyTorch checkpoint")


def test_evaluate_checkpoint_for_another_architecture_is_usage_error(tmp_path):
    path = tmp_path / "r20.pth"
    torch.save(zoo.build("resnet20").state_dict(), path)
    assert_usage_error(run_cli("evaluate", path, "--model", "resnet56"), "does not fit model resnet56")


def test_evaluate_malformed_mean_is_usage_error(teacher):
    assert_usage_error(run_cli("evaluate", teacher, "--mean", "0.5,abc,0.5"), "--mean must be comma-separated numbers")


def test_distill_teacher_with_other_class_count_is_usage_error(tmp_path):
    teacher7 = tmp_path / "t7.pth"
    torch.save(zoo.build("resnet20", num_classes=7).state_dict(), teacher7)
    out = tmp_path / "out"
    result = run_cli("distill", "--student", "resnet20", "--teacher", "resnet20", "--teacher-weights", teacher7,
                     "--epochs", "1", "--out", out)
    assert_usage_error(result, "predicts 7 classes but digits has 10")
    assert files_in(out) == []


def test_distill_resume_with_changed_options_is_usage_error(teacher, tmp_path):
    out = tmp_path / "d"
    args = ["distill", "--student", "resnet20", "--teacher-weights", teacher, "--epochs", "1", "--out", out]
    assert run_cli(*args).exit_code == 0
    result = run_cli(*args[:-2], "--lr", "0.5", "--out", out, "--resume")
    assert_usage_error(result, "different options")


def test_version_prints_the_installed_version():
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"pdd-edge {version('pdd-edge')}"


@pytest.mark.parametrize("command, text", [("gate", "[budget]"), ("report", "USER@HOST[:PORT]")])
def test_help_keeps_square_brackets_that_rich_markup_would_eat(command, text):
    result = run_cli(command, "--help")
    assert result.exit_code == 0 and text in result.stdout


@pytest.mark.parametrize("resumable", [True, False])
def test_interrupt_promises_resume_only_to_commands_that_have_it(resumable):
    import typer
    from typer.testing import CliRunner

    from pdd_edge.cli.console import command

    app = typer.Typer()

    if resumable:
        @command(app, "work")
        def work(resume: bool = False) -> None:
            raise KeyboardInterrupt
    else:
        @command(app, "work")
        def work(quick: bool = False) -> None:
            raise KeyboardInterrupt

    result = CliRunner().invoke(app, [])
    assert result.exit_code == 130
    assert ("--resume" in result.stderr) is resumable


def test_short_t_means_target_wherever_it_exists(tmp_path):
    result = run_cli("compress", "-t", "pi9000", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "unknown target 'pi9000'" in result.stderr and not (tmp_path / "run").exists()
    for command in ("distill", "finetune"):
        assert run_cli(command, "-t", "resnet56").exit_code == 2  # no -t there: --teacher has no short form


def test_distill_and_finetune_name_the_teacher_option_for_a_teachers_file(teacher, tmp_path):
    from pdd_edge import checkpoint as ckpt_io

    bare = tmp_path / "bare.pt"
    torch.save(zoo.build("resnet20").state_dict(), bare)
    result = run_cli("distill", "--student", "resnet20", "--teacher-weights", bare, "--out", tmp_path / "d")
    assert result.exit_code == 2 and "pass --teacher NAME" in result.stderr and "--model" not in result.stderr
    result = run_cli("distill", "--student", "resnet20", "--teacher", "resnet56", "--teacher-weights", teacher,
                     "--out", tmp_path / "d")
    assert result.exit_code == 2 and "pass --teacher resnet20" in result.stderr
    pruned = tmp_path / "p.pt"
    model, info = ckpt_io.load(teacher)
    ckpt_io.save(pruned, ckpt_io.checkpoint_dict(model, model_name="resnet20", preprocess=info.preprocess))
    result = run_cli("finetune", pruned, "--teacher-weights", bare, "--out", tmp_path / "f")
    assert result.exit_code == 2 and "pass --teacher NAME" in result.stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "f").exists()


def test_lists_cut_short_in_messages_end_with_an_ellipsis_and_the_count():
    from pdd_edge.errors import shortlist

    assert shortlist(["a", "b"]) == "'a', 'b'"
    assert shortlist(["a", "b", "c", "d", "e"]) == "'a', 'b', 'c', … (5 in all)"
    assert shortlist([]) == "none"
