"""prune and finetune end to end; the MACs budget of distill."""

import json

import pytest
import torch

from pdd_edge import checkpoint as ckpt_io
from pdd_edge import zoo
from pdd_edge.zoo.masked import MaskedNetwork
from tests.helpers import cli_json, files_in, run_cli
from tests.test_cli_core import assert_usage_error


@pytest.fixture(scope="module")
def masked_ckpt(digits_teacher, tmp_path_factory):
    """The trained teacher's weights with PDD masks that close about 40 % of the channels."""
    model, info = ckpt_io.load(digits_teacher)
    torch.manual_seed(0)
    for mask in MaskedNetwork.attach(model).masks.values():
        mask.logits.data = torch.rand(mask.logits.shape) - 0.4
    path = tmp_path_factory.mktemp("masked") / "masked.pt"
    ckpt_io.save(path, ckpt_io.checkpoint_dict(model, model_name=info.model, preprocess=info.preprocess,
                                               classes=info.classes, dataset=info.dataset, record=info.record))
    return path


def test_prune_then_evaluate_gives_same_top1_as_masked_checkpoint(masked_ckpt, tmp_path):
    report = cli_json("prune", masked_ckpt, "--out", tmp_path / "p.pt", "--json")
    assert report["max_abs_diff"] <= 1e-4
    assert report["macs_after"] < report["macs_before"] and report["params_after"] < report["params_before"]
    masked = cli_json("evaluate", masked_ckpt, "--json")
    pruned = cli_json("evaluate", tmp_path / "p.pt", "--json")
    assert pruned["pruned"] and not pruned["masked"]
    assert pruned["top1"] == masked["top1"] and pruned["top5"] == masked["top5"]
    assert pruned["loss"] == pytest.approx(masked["loss"], abs=1e-5)


def test_prune_json_counts_agree_with_fvcore_of_pruned_checkpoint(masked_ckpt, tmp_path):
    from pdd_edge.zoo.cost import fvcore_counts

    report = cli_json("prune", masked_ckpt, "--out", tmp_path / "p.pt", "--json")
    pruned, _ = ckpt_io.load(tmp_path / "p.pt")
    assert fvcore_counts(pruned, (32, 32)) == {"macs": report["macs_after"], "params": report["params_after"]}
    assert report["macs_before"] == 40_551_040 and report["params_before"] == 269_722


def test_prune_round_to_reports_reopened_channels_and_multiples(masked_ckpt, tmp_path):
    report = cli_json("prune", masked_ckpt, "--out", tmp_path / "p8.pt", "--round-to", "8", "--json")
    assert report["reopened_channels"] > 0
    assert all(layer["kept"] % 8 == 0 for layer in report["layers"].values())
    result = run_cli("prune", masked_ckpt, "--out", tmp_path / "p8b.pt", "--round-to", "8")
    assert "re-opened" in result.stdout and "multiply-accumulates" in result.stdout


def test_prune_checkpoint_without_masks_is_usage_error(digits_teacher, tmp_path):
    result = run_cli("prune", digits_teacher, "--out", tmp_path / "p.pt")
    assert_usage_error(result, "has no masks")
    assert files_in(tmp_path) == []


def test_prune_checkpoint_with_masks_of_another_architecture_is_usage_error(masked_ckpt, tmp_path):
    raw = torch.load(masked_ckpt, weights_only=True)
    other = zoo.build("resnet32")
    raw["masks"] = {p: m.logits.detach() for p, m in MaskedNetwork.attach(other).masks.items()}
    bad = tmp_path / "bad.pt"
    ckpt_io.save(bad, raw)  # a consistent file (its checksum made anew): only the masks are wrong
    result = run_cli("prune", bad, "--out", tmp_path / "p.pt")
    assert_usage_error(result, "masks do not fit this architecture")
    assert not (tmp_path / "p.pt").exists()


def test_finetune_trains_pruned_model_and_keeps_its_channel_plan(masked_ckpt, tmp_path):
    assert run_cli("prune", masked_ckpt, "--out", tmp_path / "p.pt").exit_code == 0
    summary = cli_json("finetune", tmp_path / "p.pt", "--epochs", "1", "--batch-size", "128", "--out", tmp_path / "ft", "--json")
    assert files_in(tmp_path / "ft") == ["best.pt", "history.json", "last.pt"]
    before = ckpt_io.load(tmp_path / "p.pt")[1].keep
    model, info = ckpt_io.load(tmp_path / "ft" / "best.pt")
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


def test_distill_with_macs_budget_lands_within_three_points(digits_teacher, tmp_path):
    out = tmp_path / "budget"
    summary = cli_json("distill", "--student", "resnet20", "--teacher-weights", digits_teacher, "--epochs", "10",
                       "--batch-size", "64", "--lr", "0.05", "--target-macs-reduction", "0.5", "--out", out, "--json")
    report = cli_json("prune", out / "best.pt", "--out", tmp_path / "p.pt", "--json")
    assert abs(report["macs_reduction_pct"] - 50.0) <= 3.0
    assert summary["macs_reduction_pct"] == pytest.approx(report["macs_reduction_pct"])


def test_distill_budget_out_of_range_is_usage_error(digits_teacher, tmp_path):
    result = run_cli("distill", "--student", "resnet20", "--teacher-weights", digits_teacher,
                     "--target-macs-reduction", "50", "--out", tmp_path / "d")
    assert_usage_error(result, "between 0 and 1")
