"""An epoch's training sums kept on the device of the batches.

Adding each step's loss terms as Python floats would read them from the GPU every step, and a
read waits for every queued kernel: the GPU idles while the host launches the next step. The
sums stay tensors until the epoch ends. They are float64 products of the same float32 values and
batch sizes, added in the same order, so a CPU run's history is bit-identical to the float sums.
"""

from __future__ import annotations

from typing import Mapping

import torch

from pdd_edge.training.accuracy import topk_hits


class StepSums:
    def __init__(self) -> None:
        self.terms: dict[str, torch.Tensor] = {}  # each logged loss term times the batch size
        self.correct: torch.Tensor | int = 0  # top-1 hits
        self.seen = 0  # images (known on the host: no read needed)

    def add(self, out: Mapping[str, torch.Tensor], y: torch.Tensor) -> None:
        """One step's task output (`output` is the logits, every other entry a logged term)."""
        n = len(y)
        for k, v in out.items():
            if k != "output":
                term = v.detach().double() * n
                self.terms[k] = self.terms[k] + term if k in self.terms else term
        self.correct = self.correct + topk_hits(out["output"].detach(), y, 1)
        self.seen += n

    def totals(self) -> tuple[list[str], torch.Tensor]:
        """The term names (sorted) and one float64 CPU tensor: their sums, then top-1 hits, then
        images (one read from the device)."""
        keys = sorted(self.terms)
        values = [self.terms[k] for k in keys] + [torch.as_tensor(self.correct), torch.tensor(self.seen)]
        return keys, torch.stack([v.cpu().double() for v in values])
