"""`pdd-edge compress` through the CLI: its options and the refusals before any training (the end-to-end runs: tests/test_compress.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pdd_edge import zoo
from pdd_edge.zoo import specs
from tests.helpers import assert_usage_error, files_in, run_cli
from tests.latency.synthetic import synthetic_table

USER = Path(__file__).parents[1] / "zoo" / "user_models.py"


def test_compress_latency_target_for_a_foreign_device_fails_before_training(tmp_path):
    result = run_cli("compress", "--student", "resnet20", "--teacher", "resnet20", "--target", "rpi4",
                     "--target-speedup", "2", "--out", tmp_path / "run")
    assert_usage_error(result, "make the table on the device")
    assert files_in(tmp_path) == []


def test_compress_latency_options_are_checked_before_training(tmp_path):
    base = ("compress", "--student", "resnet20", "--teacher", "resnet20", "--out", tmp_path / "run")
    assert_usage_error(run_cli(*base, "--target-speedup", "2", "--target-macs-reduction", "0.5"), "give one budget")
    other = tmp_path / "t.json"
    table = synthetic_table(zoo.build("resnet20")).to_dict()
    table["key"] |= {"model": "resnet32", "target": "local"}
    other.write_text(json.dumps(table))
    assert_usage_error(run_cli(*base, "--target-speedup", "2", "--latency-table", other), "is for model resnet32")
    assert_usage_error(run_cli(*base, "--latency-table", other), "is for model resnet32")  # the default speed target's
    assert_usage_error(run_cli(*base, "--target-macs-reduction", "0.5", "--latency-table", other),
                       "--latency-table is for a latency target")
    assert not (tmp_path / "run").exists()


def test_compress_default_speed_target_on_another_machine_falls_back_to_the_macs_target_and_says_so(tmp_path):
    # rpi4 is an aarch64 board: no table can be measured here, so the recipe's speed target becomes its
    # 60 % MACs target; the run then goes on (here: into a folder that is not a run, refused up front).
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    result = run_cli("compress", "--student", "resnet20", "--teacher", "resnet20", "--target", "rpi4",
                     "--out", tmp_path / "run")
    text = " ".join(result.stderr.split())
    assert "note: the recipe's speed target (--target-speedup 2 on rpi4) needs rpi4's latency table" in text
    assert "pruning to a 60 % MACs target instead" in text
    assert result.exit_code == 2 and "make the table on the device" not in text  # not refused, as an explicit request is
    assert files_in(tmp_path) == ["notes.txt"]


def test_compress_unknown_lr_schedule_fails_before_training(tmp_path):
    result = run_cli("compress", "--student", "resnet20", "--teacher", "resnet20", "--lr-schedule", "linear",
                     "--out", tmp_path / "run")
    assert_usage_error(result, "unknown learning-rate schedule (--lr-schedule) 'linear'")
    assert files_in(tmp_path) == []


def test_compress_refuses_an_unreachable_speedup_before_training_with_the_best_reachable_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path / "cache"))
    model = zoo.build("resnet20")
    table = synthetic_table(model)
    dense = table.predict(model.layer_widths(model.mask_points()))
    given = table.to_dict()
    given["key"] |= {"target": "local", "num_classes": 10}  # made for this run's first target and classes
    given["floor"] = {"measured_ms": dense / 4, "predicted_ms": 0.0}  # the thinnest network: 4x at most
    (tmp_path / "t.json").write_text(json.dumps(given))
    run = tmp_path / "run"
    result = run_cli("compress", "--student", "resnet20", "--teacher", "resnet20", "--teacher-epochs", "1",
                     "--latency-table", tmp_path / "t.json", "--target-speedup", "5", "--out", run)
    assert result.exit_code == 2 and "Traceback" not in result.stderr + result.stdout
    last = result.stderr.strip().splitlines()[-1]  # after the latency stage's progress lines: one error line
    assert last.startswith("error: --target-speedup 5 is out of reach on local: the best the student's structures can "
                           "reach is ") and "(4.00x the unpruned" in last and "ask for at most a 4.00x speed-up" in last
    assert ">> teacher" not in result.stderr  # nothing trained
    assert not run.exists()  # a fresh run refused before any stage finished leaves nothing



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
    # So small a network runs mostly session overhead: its measured table cannot price 2x (out of
    # reach, or too far off on its check networks), and the recipe's speed target gives way to its
    # MACs target, saying so.
    note = " ".join(done.stderr.split())
    assert "note: the recipe's --target-speedup 2 is out of reach on local" in note or (
        "note: the latency table of" in note and "too far to price the recipe's speed target" in note), done.stderr[-3000:]
    assert "pruning to a 60 % MACs target instead" in note
    assert json.loads((out / "manifest.json").read_text())["config"]["target_macs_reduction"] == 0.6
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


def test_compress_help_says_each_recipe_default_of_options_without_a_fixed_default():
    result = run_cli("compress", "--help")
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "default by --recipe: quick 15, standard 50, paper 50" in text  # --distill-epochs
    assert "default by --recipe: quick 0.05, standard 0.01, paper 0.01" in text  # --lr, --finetune-lr
    assert "warm start by --recipe: quick yes, standard yes, paper no" in text
    assert "KD by --recipe: quick yes, standard yes, paper no" in text  # --finetune-kd/--finetune-ce
    assert "default by --recipe: quick 2, standard 2, paper none" in text  # --target-speedup
