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
def _threads(request):
    # Tests compare numbers across runs; pin the thread count so reductions are ordered the same.
    # The deployment tests (marked one_thread) take one, not two: on cores shared with other jobs, a
    # 2-thread OpenMP barrier waits for a descheduled thread and one training epoch goes from ~2 s to ~70 s.
    import torch

    torch.set_num_threads(1 if request.node.get_closest_marker("one_thread") else 2)
    yield


@pytest.fixture(scope="session")
def digits_teacher(tmp_path_factory):
    """A ResNet20 trained for a few epochs on digits: a real teacher for short distillations."""
    from pdd_edge.data.options import DataConfig
    from pdd_edge.stages import teacher

    out = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    cfg = teacher.TrainConfig(model="resnet20", data=DataConfig("digits"), optim=teacher.default_optim(4, batch_size=64))
    teacher.train_teacher(cfg, out)
    return out


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> Path:
    """ResNet-20 trained for 4 epochs on digits: enough for INT8 to have something to lose.
    At 16x16 (the digits are 8x8 scans) training costs a quarter of 32x32 on 2 shared cores;
    every later stage takes the size from the model."""
    import torch

    from pdd_edge.data.options import DataConfig
    from pdd_edge.stages import teacher

    torch.set_num_threads(1)  # session fixtures run before the autouse one above
    out = tmp_path_factory.mktemp("trained") / "resnet20.pt"
    cfg = teacher.TrainConfig(model="resnet20", data=DataConfig(name="digits", input_size=16),
                            optim=teacher.default_optim(4, lr=0.05, batch_size=64))
    teacher.train_teacher(cfg, out)
    return out


@pytest.fixture(scope="session")
def trained_onnx(trained_checkpoint, tmp_path_factory) -> Path:
    from pdd_edge.stages import export

    out = tmp_path_factory.mktemp("exported") / "resnet20.onnx"
    export.export_checkpoint(export.ExportConfig(), trained_checkpoint, out)
    return out


BUDGET = """[budget]
latency_p90_ms = 5.0
model_size_mb = 1.0
peak_memory_mb = 64
min_top1 = 95
max_top1_drop = 1.0
min_macs_reduction = 40
min_speedup = 1.8
"""


@pytest.fixture
def budget(tmp_path):
    p = tmp_path / "budget.toml"
    p.write_text(BUDGET)
    return p
