"""The torchrun-aware runtime of the training commands (`train`, `distill`, `finetune`, `compress`)."""

from __future__ import annotations

import contextlib

from pdd_edge.cli.console import err, out


@contextlib.contextmanager
def training_runtime(device: str, amp: str, workers: int | None = None, sync_bn: bool = False,
                     channels_last: bool = False, fused_sgd: bool = False, compile_mode: str = "off"):
    """The Runtime of a training command: options checked before any work, torchrun's process
    group joined for the command's duration, and every rank but 0 silent (rank 0 prints and
    writes for all)."""
    from pdd_edge.training.runtime import Runtime

    rt = Runtime.from_options(device, amp, workers, sync_bn, channels_last, fused_sgd, compile_mode)
    quiet = out.quiet, err.quiet
    with rt.started():
        if not rt.dist.is_main:
            out.quiet = err.quiet = True
        try:
            yield rt
        finally:
            out.quiet, err.quiet = quiet
