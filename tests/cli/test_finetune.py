"""`pdd-edge finetune` through the CLI: a pruned student trained on, with or without its teacher."""

from __future__ import annotations

import json

from pdd_edge import checkpoint
from tests.helpers import assert_usage_error, cli_json, files_in, run_cli


def test_finetune_trains_pruned_model_and_keeps_its_channel_plan(masked_ckpt, tmp_path):
    assert run_cli("prune", masked_ckpt, "--out", tmp_path / "p.pt").exit_code == 0
    summary = cli_json("finetune", tmp_path / "p.pt", "--epochs", "1", "--batch-size", "128", "--out", tmp_path / "ft", "--json")
    assert files_in(tmp_path / "ft") == ["best.pt", "history.json", "last.pt"]
    before = checkpoint.load(tmp_path / "p.pt")[1].keep
    model, info = checkpoint.load(tmp_path / "ft" / "best.pt")
    assert info.keep == before and info.record["stage"] == "finetune"
    assert summary["val_top1"] == info.metrics["val_top1"]


def test_finetune_with_teacher_uses_kd(masked_ckpt, digits_teacher, tmp_path):
    assert run_cli("prune", masked_ckpt, "--out", tmp_path / "p.pt").exit_code == 0
    cli_json("finetune", tmp_path / "p.pt", "--epochs", "1", "--batch-size", "128", "--teacher-weights", digits_teacher,
             "--out", tmp_path / "ft", "--json")
    history = json.loads((tmp_path / "ft" / "history.json").read_text())["epochs"]
    assert "kd" in history[0]


def test_finetune_masked_checkpoint_asks_to_prune_first(masked_ckpt, tmp_path):
    assert_usage_error(run_cli("finetune", masked_ckpt, "--epochs", "1", "--out", tmp_path / "ft"), "run `pdd-edge prune`")


def test_finetune_on_a_cosine_schedule_records_each_epochs_starting_lr(masked_ckpt, tmp_path):
    assert run_cli("prune", masked_ckpt, "--out", tmp_path / "p.pt").exit_code == 0
    cli_json("finetune", tmp_path / "p.pt", "--epochs", "2", "--batch-size", "128", "--lr", "0.04", "--lr-schedule", "cosine",
             "--out", tmp_path / "ft", "--json")
    history = json.loads((tmp_path / "ft" / "history.json").read_text())["epochs"]
    assert [e["lr"] for e in history] == [0.04, 0.02]  # cos(0) and cos(pi/2): halfway down at epoch 2's start


def test_finetune_bad_schedule_options_are_usage_errors(masked_ckpt, tmp_path):
    assert run_cli("prune", masked_ckpt, "--out", tmp_path / "p.pt").exit_code == 0
    base = ("finetune", tmp_path / "p.pt", "--epochs", "2", "--out", tmp_path / "ft")
    assert_usage_error(run_cli(*base, "--lr-schedule", "linear"), "unknown learning-rate schedule (--lr-schedule) 'linear'")
    assert_usage_error(run_cli(*base, "--lr-schedule", "cosine", "--milestones", "1"), "belong to the step schedule")
    assert files_in(tmp_path) == ["p.pt"]
