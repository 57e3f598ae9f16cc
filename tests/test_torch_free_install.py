"""The edge install: `pip install .` (no training extra, not editable) in a fresh venv without
torch must give a working `pdd-edge profile`, find the built-in targets and evaluate an ONNX model
on an image folder."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest

from tests.install import copy_sources, report_and_gate
from tests.onnx_builders import conv_model, linear_classifier, save

# Every command runs with the venv as working directory (see tests/install.py).
pytestmark = pytest.mark.slow  # builds a venv and installs onnx/onnxruntime into it: ~30-60 s


@pytest.fixture(scope="module")
def edge_venv(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("edge")
    src = copy_sources(base / "src")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    proc = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(src)],
                          capture_output=True, text=True, cwd=base)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return env_dir


def test_edge_install_has_no_torch(edge_venv):
    proc = subprocess.run([str(edge_venv / "bin" / "python"), "-c", "import torch"], capture_output=True, text=True, cwd=edge_venv)

    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr


def test_edge_install_profiles_a_model_to_json(edge_venv, tmp_path):
    model = save(conv_model(["N", 3, 16, 16], (8, 3, 3, 3)), tmp_path / "model.onnx")
    out = tmp_path / "out.json"

    proc = subprocess.run([str(edge_venv / "bin" / "pdd-edge"), "profile", model, "--json-out", str(out), "--warmup", "1",
                           "--min-runs", "3", "--min-time", "0", "--threads", "1"], capture_output=True, text=True, cwd=edge_venv)

    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["schema"] == "pdd-edge.profile/1"
    assert record["cost"]["macs"] == 8 * 16 * 16 * 27
    assert record["batches"][0]["latency"]["runs"] >= 3


def test_edge_install_finds_builtin_targets_in_site_packages(edge_venv):
    where = subprocess.run([str(edge_venv / "bin" / "python"), "-c", "import pdd_edge.targets as t; print(t.__file__)"],
                           capture_output=True, text=True, cwd=edge_venv)
    proc = subprocess.run([str(edge_venv / "bin" / "pdd-edge"), "targets", "show", "rpi4", "--json"],
                          capture_output=True, text=True, cwd=edge_venv)

    assert Path(where.stdout.strip()).is_relative_to(edge_venv)  # the installed copy, not the work tree
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["name"] == "rpi4" and shown["source"] == "built-in"


def test_edge_install_training_command_says_what_to_install(edge_venv):
    proc = subprocess.run([str(edge_venv / "bin" / "pdd-edge"), "models"], capture_output=True, text=True, cwd=edge_venv)

    assert proc.returncode == 2
    assert "pip install 'pdd-edge[train]'" in proc.stderr


def test_edge_install_reports_and_gates_a_run_without_torch_or_matplotlib(edge_venv, tmp_path):
    from tests.run_fixtures import make_run

    run = make_run(tmp_path / "run")  # measured here; the edge install only reads the files
    bin_dir = edge_venv / "bin"
    has_mpl = subprocess.run([str(bin_dir / "python"), "-c", "import matplotlib"], capture_output=True, cwd=edge_venv)
    report, gate = report_and_gate(bin_dir, run.root, tmp_path)

    assert has_mpl.returncode != 0  # a bare edge install: no plotting library either
    assert report.returncode == 0, report.stderr
    assert (run.root / "report" / "report-local.json").is_file() and (run.root / "report" / "report-local.md").is_file()
    assert not list((run.root / "report").glob("*.png"))
    assert gate.returncode == 0, gate.stderr + gate.stdout
    assert "gate passed: 3 checks" in gate.stdout  # the deployable file, then the two budget keys


def test_edge_install_evaluates_an_onnx_model_on_an_image_folder_as_torch_does(edge_venv, tmp_path):
    from pdd_edge.data.options import DataConfig
    from pdd_edge.stages.evaluate import evaluate_onnx
    from tests.data.test_image_files import CLASSES, write_mixed_folder

    data = write_mixed_folder(tmp_path / "data")
    model = save(linear_classifier((32, 32), len(CLASSES)), tmp_path / "model.onnx")
    here = evaluate_onnx(model, DataConfig("imagefolder", str(data)))  # this install: torchvision reads the folder

    proc = subprocess.run([str(edge_venv / "bin" / "pdd-edge"), "evaluate", model, "--dataset", "imagefolder",
                           "--data-dir", str(data), "--json"], capture_output=True, text=True, cwd=edge_venv)

    assert proc.returncode == 0, proc.stderr
    board = json.loads(proc.stdout)
    assert (board["count"], board["top1"], board["top5"]) == (here["count"], here["top1"], here["top5"])
    assert board["count"] == 24 and board["num_classes"] == len(CLASSES)


def test_edge_install_evaluate_on_digits_names_the_training_extra(edge_venv, tmp_path):
    model = save(linear_classifier((32, 32), 10), tmp_path / "model.onnx")

    proc = subprocess.run([str(edge_venv / "bin" / "pdd-edge"), "evaluate", model, "--dataset", "digits"],
                          capture_output=True, text=True, cwd=edge_venv)

    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["error: the digits dataset needs PyTorch, which this install does not have; "
                                        "install the training extra: pip install 'pdd-edge[train]'"]
