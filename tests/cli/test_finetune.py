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
