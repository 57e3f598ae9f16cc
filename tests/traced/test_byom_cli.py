"""Bring-your-own-model from the command line: `models SPEC`, bad specs as one-line usage errors,
and the whole chain (compress) for a user's file model with builder arguments."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pdd_edge.zoo import specs
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


@pytest.mark.slow
def test_compress_runs_the_whole_chain_for_a_user_file_model(tmp_path, digits_teacher, monkeypatch):
    user = tmp_path / "net.py"
    user.write_text(USER.read_text())
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PDD_EDGE_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    out = tmp_path / "run"
    args = [sys.executable, "-m", "pdd_edge", "compress", "--student", f"{user}:branchy", "--model-arg", "width=8",
            "--teacher", "resnet20", "--teacher-weights", str(digits_teacher), "--distill-epochs", "3",
            "--finetune-epochs", "1", "--batch-size", "64", "--round-to", "2", "--profile-min-runs", "5",
            "--profile-min-time", "0", "--out", str(out)]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(cwd.iterdir()) == []  # onnxruntime's shape-inference scratch files stay in a temp folder
    ckpt = torch.load(out / "prune" / "pruned.pt", weights_only=True)
    assert ckpt["model"] == f"{user}:branchy" and ckpt["arch"]["args"] == {"width": 8}
    assert ckpt["arch"]["source"]["sha256"] == specs.file_sha256(user)
    pruned = json.loads((out / "prune" / "pruned.json").read_text())
    assert pruned["max_abs_diff"] <= pruned["tolerance"] and pruned["macs_after"] <= 0.5 * pruned["macs_before"]
    labels = {entry["label"] for entry in pruned["layers"].values()}  # groups named after layers of the network
    from tests.zoo.user_models import Branchy

    names = {n for n, _ in Branchy(10, 8).named_modules() if n}
    assert len(labels) == 5 and all(label.split(" (+")[0] in names for label in labels), labels
    report = json.loads((out / "report" / "report-local.json").read_text())
    variants = report["variants"]
    assert variants["pruned"]["macs"] == pruned["macs_after"] and variants["baseline"]["macs"] == pruned["macs_before"]
    assert {"baseline", "pruned", "int8"} <= set(variants)
    # a new process must be told to run the file: without --model the checkpoint is refused
    monkeypatch.setattr(specs, "_TRUSTED", set())
    refused = run_cli("evaluate", str(out / "finetune" / "best.pt"))
    assert refused.exit_code == 2 and "pass --model" in refused.stderr
    ok = run_cli("evaluate", str(out / "finetune" / "best.pt"), "--model", f"{user}:branchy", "--json")
    assert ok.exit_code == 0, ok.stderr


def test_teacher_of_another_resolution_sees_the_batch_at_its_own_size():
    from pdd_edge.data.preprocess import Preprocess
    from pdd_edge.training.tasks import DistillTask

    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 4)

        def forward(self, x):
            seen.append(tuple(x.shape))
            return self.fc(x.mean((2, 3)))

    teacher_pre = Preprocess(mean=(0.5,) * 3, std=(0.5,) * 3, input_size=(32, 32))
    student_pre = Preprocess(mean=(0.5,) * 3, std=(0.5,) * 3, input_size=(48, 40))
    task = DistillTask(Probe(), teacher_pre, student_pre)
    out = task(Probe(), torch.rand(2, 3, 48, 40), torch.tensor([0, 1]))
    assert seen == [(2, 3, 32, 32), (2, 3, 48, 40)] and out["output"].shape == (2, 4)


def test_teacher_input_size_sets_the_size_third_party_teacher_weights_get(tmp_path):
    from pdd_edge.data import load_dataset
    from pdd_edge.data.options import NormOverride, resolve_preprocess

    data = load_dataset("digits", input_size=(48, 40))
    pre = resolve_preprocess(data, None, NormOverride(input_size=(32, 32)), any_size=True)
    assert pre.input_size == (32, 32) and resolve_preprocess(data, None, NormOverride(), any_size=True).input_size == (48, 40)
    bad = run_cli("distill", "--student", "resnet20", "--teacher-weights", str(tmp_path / "t.pt"), "--out",
                  str(tmp_path / "o"), "--teacher-input-size", "0,32")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --teacher-input-size must be H (square) or H,W")
