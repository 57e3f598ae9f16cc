"""`pdd-edge train` through the CLI: what it writes, and its usage errors."""

from __future__ import annotations

from tests.helpers import assert_usage_error, files_in, run_cli


def test_train_cli_writes_checkpoint_history_and_resume_state(tmp_path):
    out = tmp_path / "t.pt"
    # batch 32 at lr 0.05: one epoch that leaves chance (~23 %), which `train` requires of what it keeps
    result = run_cli("train", "--model", "resnet20", "--epochs", "1", "--batch-size", "32", "--lr", "0.05", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert files_in(tmp_path) == ["t.history.json", "t.last.pt", "t.pt"]
    assert "epoch 1/1" in result.stderr


def test_train_unknown_model_is_usage_error(tmp_path):
    result = run_cli("train", "--model", "resnet21", "--out", tmp_path / "t.pt")
    assert_usage_error(result, "unknown model 'resnet21'")
    assert files_in(tmp_path) == []


def test_train_unknown_dataset_is_usage_error(tmp_path):
    result = run_cli("train", "--model", "resnet20", "--dataset", "mnist", "--out", tmp_path / "t.pt")
    assert_usage_error(result, "unknown dataset 'mnist'")
    assert files_in(tmp_path) == []


def test_train_unknown_lr_schedule_is_usage_error(tmp_path):
    result = run_cli("train", "--model", "resnet20", "--lr-schedule", "linear", "--out", tmp_path / "t.pt")
    assert_usage_error(result, "unknown learning-rate schedule (--lr-schedule) 'linear'")
    assert files_in(tmp_path) == []
