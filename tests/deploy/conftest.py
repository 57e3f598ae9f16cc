"""Fixtures of the deployment tests: one small trained model, exported once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _threads():
    # One thread, not the suite's two: on cores shared with other jobs, a 2-thread OpenMP
    # barrier waits for a descheduled thread and one training epoch goes from ~2 s to ~70 s.
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> Path:
    """ResNet-20 trained for 4 epochs on digits: enough for INT8 to have something to lose.
    At 16x16 (the digits are 8x8 scans) training costs a quarter of 32x32 on 2 shared cores;
    every later stage takes the size from the model."""
    from pdd_edge.data.options import DataConfig
    from pdd_edge.stages import teacher

    torch.set_num_threads(1)  # session fixtures run before the autouse one above
    out = tmp_path_factory.mktemp("trained") / "resnet20.pt"
    cfg = teacher.TrainConfig(model="resnet20", data=DataConfig(name="digits", input_size=16),
                            optim=teacher.default_optim(4, lr=0.05, batch_size=64))
    teacher.train(cfg, out)
    return out


@pytest.fixture(scope="session")
def trained_onnx(trained_checkpoint, tmp_path_factory) -> Path:
    from pdd_edge.stages import export

    out = tmp_path_factory.mktemp("exported") / "resnet20.onnx"
    export.export_checkpoint(export.ExportConfig(), trained_checkpoint, out)
    return out
