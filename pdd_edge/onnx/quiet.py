"""Silence third-party tools that talk on their own (exporters, quantizers) while pdd-edge runs them.

The CLI reports what happened in one line per step; the torch.onnx exporter's progress prints,
onnxscript's and onnxruntime.quantization's log records and Python warnings would bury it.
Errors still surface: they are exceptions, which this does not touch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Iterator


@contextlib.contextmanager
def quiet(*logger_names: str) -> Iterator[None]:
    """Drop stdout prints, warnings and records below ERROR of the named loggers ("" is the root)."""
    loggers = [logging.getLogger(name or None) for name in logger_names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
