"""The torchrun-aware setup of the training commands (`train`, `distill`, `finetune`, `compress`)."""

from __future__ import annotations

import contextlib

from pdd_edge.cli.console import err, out


@contextlib.contextmanager
def training_setup(device: str, amp: str, workers: int | None = None, sync_bn: bool = False,
                     channels_last: bool = False, fused_sgd: bool = False, compile_mode: str = "off"):
    """The TrainSetup of a training command: options checked before any work, torchrun's process
    group joined for the command's duration, and every rank but 0 silent (rank 0 prints and
    writes for all)."""
    from pdd_edge.training.setup import TrainSetup

    setup = TrainSetup.from_options(device, amp, workers, sync_bn, channels_last, fused_sgd, compile_mode)
    quiet = out.quiet, err.quiet
    with setup.started():
        if not setup.dist.is_main:
            out.quiet = err.quiet = True
        try:
            yield setup
        finally:
            out.quiet, err.quiet = quiet
