"""Shared fixtures. Tests that read ../shared skip (not fail) when it is absent, as in a user's clone."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
AKAMASTER = SHARED / "checkpoints" / "akamaster"
CIFAR_JPEG = SHARED / "datasets" / "cifar10-jpeg-10k"


def shared_file(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared is absent in a user's clone)")
    return path


@pytest.fixture(autouse=True)
def _threads():
    # Tests compare numbers across runs; pin the thread count so reductions are ordered the same.
    import torch

    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session")
def digits_teacher(tmp_path_factory):
    """A ResNet20 trained for a few epochs on digits: a real teacher for short distillations."""
    from pdd_edge.data.options import DataConfig
    from pdd_edge.stages import teacher

    out = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    cfg = teacher.TrainConfig(model="resnet20", data=DataConfig("digits"), optim=teacher.default_optim(4, batch_size=64))
    teacher.train(cfg, out)
    return out
