"""Fixtures of the CLI tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from pdd_edge import checkpoint
from pdd_edge.zoo.masked import MaskedNetwork
from tests.helpers import run_cli
from tests.run_fixtures import make_run


@pytest.fixture(scope="module")
def teacher(digits_teacher):
    return digits_teacher


@pytest.fixture(scope="module")
def masked_ckpt(digits_teacher, tmp_path_factory):
    """The trained teacher's weights with PDD masks that close about 40 % of the channels."""
    model, info = checkpoint.load(digits_teacher)
    torch.manual_seed(0)
    for mask in MaskedNetwork.attach(model).masks.values():
        mask.logits.data = torch.rand(mask.logits.shape) - 0.4
    path = tmp_path_factory.mktemp("masked") / "masked.pt"
    checkpoint.save(path, checkpoint.checkpoint_dict(model, model_name=info.model, preprocess=info.preprocess,
                                               classes=info.classes, dataset=info.dataset, record=info.record))
    return path


@pytest.fixture
def read_only_run(tmp_path):
    """A run directory on a read-only mount (root bind-mounts it; skipped where that is not possible:
    permission bits do not stop root)."""
    root = make_run(tmp_path / "run", profile=False).root
    mounted = subprocess.run(["mount", "--bind", str(root), str(root)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("a read-only bind mount needs root")
    if subprocess.run(["mount", "-o", "remount,ro,bind", str(root)], capture_output=True).returncode:
        subprocess.run(["umount", str(root)])
        pytest.skip("cannot remount read-only")
    yield root
    subprocess.run(["umount", "-l", str(root)], check=True)


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory):
    root = make_run(tmp_path_factory.mktemp("reported") / "run").root
    assert run_cli("report", root).exit_code == 0
    return root


@pytest.fixture
def run_copy(reported_run, tmp_path):
    return Path(shutil.copytree(reported_run, tmp_path / "run"))
