"""`pdd-edge distill` through the CLI: what a distillation writes, its options and its usage errors."""

from __future__ import annotations

import json

import pytest
import torch

from pdd_edge import zoo
from tests.helpers import assert_usage_error, cli_json, files_in, run_cli
from tests.latency.synthetic import synthetic_table


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


def test_distill_with_macs_budget_at_a_multiple_lands_within_three_points_and_validates_the_pruned_network(
        digits_teacher, tmp_path):
    out = tmp_path / "budget"
    summary = cli_json("distill", "--student", "resnet20", "--teacher-weights", digits_teacher, "--epochs", "10",
                       "--batch-size", "64", "--lr", "0.05", "--target-macs-reduction", "0.5", "--round-to", "8",
                       "--budget-ramp-epochs", "4", "--out", out, "--json")
    report = cli_json("prune", out / "best.pt", "--out", tmp_path / "p.pt", "--json")  # the multiple the masks trained at
    assert report["round_to"] == 8 and report["macs_reduction_pct"] >= 47.0
    assert all(layer["kept"] % 8 == 0 for layer in report["layers"].values())
    assert summary["macs_reduction_pct"] == pytest.approx(report["macs_reduction_pct"])
    # the epoch kept was validated as the network prune writes: the same top-1, not a rounded relative of it
    pruned = cli_json("evaluate", tmp_path / "p.pt", "--json")
    assert pruned["top1"] == pytest.approx(summary["val_top1"], abs=1e-9)


def test_distill_budget_out_of_range_is_usage_error(digits_teacher, tmp_path):
    result = run_cli("distill", "--student", "resnet20", "--teacher-weights", digits_teacher,
                     "--target-macs-reduction", "50", "--out", tmp_path / "d")
    assert_usage_error(result, "between 0 and 1")


@pytest.mark.parametrize("value", ["0", "-16"])
def test_distill_round_to_below_one_is_a_usage_error_that_writes_nothing(digits_teacher, tmp_path, value):
    result = run_cli("distill", "--student", "resnet20", "--teacher-weights", digits_teacher, "--out", tmp_path / "d",
                     "--target-macs-reduction", "0.5", "--round-to", value)
    assert_usage_error(result, f"--round-to must be a positive integer, got {value}")
    assert files_in(tmp_path) == []


def test_distill_latency_budget_usage_errors(digits_teacher, tmp_path):
    base = ("distill", "--student", "resnet20", "--teacher-weights", digits_teacher, "--out", tmp_path / "d", "--epochs", "1")
    assert_usage_error(run_cli(*base, "--target-latency-ms", "0.2"), "needs the device's latency table")
    table = tmp_path / "t.json"
    table.write_text(json.dumps(synthetic_table(zoo.build("resnet20")).to_dict()))
    assert_usage_error(run_cli(*base, "--latency-table", table, "--target-speedup", "2", "--target-macs-reduction", "0.5"),
                       "give one budget")
    assert_usage_error(run_cli(*base, "--latency-table", table, "--target-speedup", "0.5"), "must be above 1")
    assert_usage_error(run_cli(*base, "--latency-table", table, "--target-latency-ms", "0.0001"), "out of reach")
    assert files_in(tmp_path / "d") == []


def test_distill_with_a_missing_latency_table_is_a_usage_error(digits_teacher, tmp_path):
    result = run_cli("distill", "--student", "resnet20", "--teacher-weights", digits_teacher, "--out", tmp_path / "d",
                     "--latency-table", tmp_path / "none.json", "--target-speedup", "2")
    assert_usage_error(result, "latency table not found")
    assert files_in(tmp_path) == []


def test_teacher_input_size_sets_the_size_third_party_teacher_weights_get(tmp_path):
    from pdd_edge.data import load_dataset
    from pdd_edge.data.options import NormOverride, resolve_preprocess

    data = load_dataset("digits", input_size=(48, 40))
    pre = resolve_preprocess(data, None, NormOverride(input_size=(32, 32)), any_size=True)
    assert pre.input_size == (32, 32) and resolve_preprocess(data, None, NormOverride(), any_size=True).input_size == (48, 40)
    bad = run_cli("distill", "--student", "resnet20", "--teacher-weights", str(tmp_path / "t.pt"), "--out",
                  str(tmp_path / "o"), "--teacher-input-size", "0,32")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --teacher-input-size must be H (square) or H,W")


def test_distill_lr_schedule_usage_errors(digits_teacher, tmp_path):
    base = ("distill", "--student", "resnet20", "--teacher-weights", digits_teacher, "--out", tmp_path / "d", "--epochs", "2")
    assert_usage_error(run_cli(*base, "--lr-schedule", "linear"), "unknown learning-rate schedule (--lr-schedule) 'linear'")
    assert_usage_error(run_cli(*base, "--lr-schedule", "cosine", "--milestones", "1"), "belong to the step schedule")
    assert files_in(tmp_path / "d") == []
