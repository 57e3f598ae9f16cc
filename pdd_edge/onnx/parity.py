"""Parity: an FP32 artifact (export, simplification) against the model it was made from, on real images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from pdd_edge.errors import FAILURE, PddError
from pdd_edge.onnx.runtime import GraphIO, run_logits
from pdd_edge.tolerance import LogitTolerance

# FP32 export and simplification are held to LogitTolerance (absolute plus relative to the logits);
# an INT8 model is judged by its accuracy instead.


def max_abs_diff(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Largest absolute logit difference; NaN or a shape mismatch counts as infinitely far."""
    if reference.shape != candidate.shape:
        return float("inf")
    diff = float(np.max(np.abs(reference.astype(np.float64) - candidate.astype(np.float64)), initial=0.0))
    return diff if np.isfinite(diff) else float("inf")


@dataclass(frozen=True)
class ParityConfig:
    """How an FP32 artifact is compared with its source: on the first `images` validation images."""

    images: int = 512
    batch_size: int = 64  # not the traced batch of 2, and the last batch is smaller: the dynamic axis is exercised
    tolerance: LogitTolerance = LogitTolerance()

    def __post_init__(self) -> None:
        if self.images < 1:
            raise PddError(f"parity needs at least 1 validation image, got {self.images}")


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float  # largest absolute logit difference
    images: int
    max_abs_logit: float  # scale of the reference logits, to read the difference against

    def require(self, tolerance: LogitTolerance, *, candidate: str, reference: str, dataset: str) -> float:
        """The limit used; a negative verdict (exit code 1) when the difference is over it or not a number."""
        limit = tolerance.limit(self.max_abs_logit)
        if not self.max_abs_diff <= limit:
            raise PddError(f"{candidate} differs from {reference} by up to {self.max_abs_diff:.3g} in the logits "
                           f"on {self.images} {dataset} validation images (limit {tolerance.describe(self.max_abs_logit)}); "
                           "nothing written", exit_code=FAILURE)
        return limit


def compare(reference: Callable[[np.ndarray], np.ndarray], sess, io: GraphIO,
           batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> Parity:
    """Compare `reference(x)` with the session's logits on every batch."""
    worst, scale, n = 0.0, 0.0, 0
    for x, _ in batches:
        expected = reference(x)
        worst = max(worst, max_abs_diff(expected, run_logits(sess, io, x)))
        scale = max(scale, float(np.max(np.abs(expected), initial=0.0)))
        n += len(x)
    if n == 0:
        raise PddError("no images to compare the models on: the dataset's validation split is empty")
    return Parity(worst, n, scale)
