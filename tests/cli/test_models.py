"""`pdd-edge models` through the CLI: the zoo, the mask points of any model spec, and bad specs as one-line usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import cli_json, run_cli

USER = Path(__file__).parents[1] / "zoo" / "user_models.py"


def test_models_spec_lists_the_channel_groups_pdd_finds():
    d = cli_json("models", "torchvision:resnet18", "--num-classes", "7", "--input-size", "32,48", "--json")
    assert (len(d["mask_points"]), d["unmasked"], d["num_classes"], d["input_size"]) == (12, [], 7, [32, 48])
    assert d["macs"] > 0 and d["params"] == 11_180_103


def test_models_spec_lists_groups_left_unmasked_with_the_reason():
    d = cli_json("models", "torchvision:convnext_tiny", "--json")
    assert len(d["unmasked"]) == 4 and all("LayerNorm" in why for why in d["unmasked"])


@pytest.mark.parametrize("args, message", [
    (["models", "torchvision:shufflenet_v2_x0_5"], "cannot trace torchvision:shufflenet_v2_x0_5 .* reshape after layer"),
    (["models", "keras:resnet"], "names no known builder 'keras'"),
    (["models", f"{USER}:nothing"], "has no function 'nothing'"),
    (["models", f"{USER}:not_a_module"], "returned str, not a torch.nn.Module"),
    (["models", "torchvision:resnet18", "--model-arg", "width"], "must be KEY=VALUE"),
    (["models", "torchvision:resnet18", "--model-arg", "zero_init=1"], "rejected its arguments"),
    (["models", "torchvision:resnet18", "--num-classes", "0"], "num_classes must be positive, got 0"),
    (["models", "torchvision:resnet18", "--input-size", "32,0"], "--input-size must be H"),
    (["prune", "d.pt", "--out", "p.pt", "--model", "gone.py:build"], "model file not found: gone.py"),
    (["distill", "--student", "nowhere.py:build", "--teacher-weights", "t.pt", "--out", "o"], "model file not found: nowhere.py"),
    (["train", "--model", "torchvision:resnet18", "--model-arg", "depth=3", "--out", "o.pt"], "rejected its arguments"),
])
def test_bad_model_specs_are_one_line_usage_errors(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli(*args)
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and __import__("re").search(message, lines[0]), result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
