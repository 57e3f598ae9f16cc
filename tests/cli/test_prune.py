"""`pdd-edge prune` through the CLI: a dense smaller model that computes what the masked one does, and its usage errors."""

from __future__ import annotations

import json

import pytest
import torch

from pdd_edge import checkpoint
from pdd_edge import zoo
from pdd_edge.zoo.masked import MaskedNetwork
from tests.helpers import assert_usage_error, cli_json, files_in, run_cli
from tests.latency.synthetic import synthetic_table


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
    pruned, _ = checkpoint.load(tmp_path / "p.pt")
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
    checkpoint.save(bad, raw)  # a consistent file (its checksum made anew): only the masks are wrong
    result = run_cli("prune", bad, "--out", tmp_path / "p.pt")
    assert_usage_error(result, "masks do not fit this architecture")
    assert not (tmp_path / "p.pt").exists()


def test_prune_cli_names_the_latency_target_when_it_closes_channels_for_it(tmp_path):
    # Issue 22 item 11: closing channels for a latency target printed `--min-macs-reduction None`
    # and crashed with a TypeError after the pruned file was written.
    from pdd_edge.data import load_dataset
    from pdd_edge import checkpoint

    model = zoo.build("resnet20")
    MaskedNetwork.attach(model, "open")
    ckpt = tmp_path / "d.pt"
    checkpoint.save(ckpt, checkpoint.checkpoint_dict(model, model_name="resnet20", preprocess=load_dataset("digits").preprocess,
                                               dataset="digits"))
    table = tmp_path / "t.json"
    table.write_text(json.dumps(synthetic_table(zoo.build("resnet20")).to_dict()))
    result = run_cli("prune", ckpt, "--latency-table", table, "--target-speedup", "2", "--out", tmp_path / "p.pt")
    assert result.exit_code == 0, result.stdout + result.stderr
    closed = [line for line in result.stdout.splitlines() if "closed" in line]
    assert len(closed) == 1 and closed[0].startswith("latency target ") and "min-macs" not in result.stdout
    assert (tmp_path / "p.pt").is_file()


def test_prune_latency_target_without_table_and_missing_table_are_usage_errors(tmp_path):
    ckpt = tmp_path / "masked.pt"
    ckpt.write_bytes(b"not read: the options fail first")
    assert_usage_error(run_cli("prune", ckpt, "--out", tmp_path / "p.pt", "--target-latency-ms", "0.2"),
                       "needs the device's latency table")
    assert ckpt.read_bytes() == b"not read: the options fail first" and not (tmp_path / "p.pt").exists()
