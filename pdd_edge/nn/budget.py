"""The MACs budget of `distill --target-macs-reduction R` (our addition; pure PDD has none).

Term: `lambda * macs(masks) / dense_macs`, where `macs(masks)` is the masked network's MAC
count written as a function of per-layer open-channel counts (`model.cost`), each count being a
sum of straight-through gates — so the term has the hard count's value and a gradient that
reaches every mask logit through the same Bi-Real surrogate the distillation loss uses.

`lambda` is not a hand-tuned weight but the output of a PI controller on the constraint error
`e = relative_macs - (1 - R)`: `lambda = gain * e + integral`, `integral += rate * e` after every
step (the integral is the Lagrange multiplier of dual ascent; the proportional part damps its
overshoot). Above the MACs target lambda is positive and closing channels pays; below it lambda
turns negative and re-opening pays. It settles wherever the distillation loss and the constraint
balance, whatever the scale of the KD gradients for this dataset and model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pdd_edge.nn.masks import open_counts

DEFAULT_RATE = 0.02  # integral gain, per step
DEFAULT_GAIN = 2.0  # proportional gain
TOLERANCE_PCT = 3.0  # a checkpoint "meets the budget" within +/- 3 percentage points


class MacsBudget:
    def __init__(self, target_reduction: float, dense_macs: int, input_hw: tuple[int, int], rate: float = DEFAULT_RATE,
                 gain: float = DEFAULT_GAIN) -> None:
        if not 0.0 < target_reduction < 1.0:
            raise ValueError(f"target MACs reduction must be in (0, 1), got {target_reduction}")
        self.target_reduction = target_reduction
        self.dense_macs = dense_macs
        self.input_hw = input_hw
        self.rate = rate
        self.gain = gain
        self.integral = 0.0

    def __call__(self, model: nn.Module) -> dict[str, torch.Tensor]:
        bare = getattr(model, "module", model)  # DDP wrapper
        relative = bare.cost(open_counts(bare, soft=True), self.input_hw).macs / self.dense_macs
        # The soft count equals the hard count in the forward pass, so `error` is exact.
        error = relative.detach().item() - (1.0 - self.target_reduction)
        lam = self.gain * error + self.integral
        self.integral += self.rate * error
        return {"loss": lam * relative, "macs_rel": relative.detach(), "lambda": torch.tensor(lam)}

    def deviation_pct(self, macs_reduction_pct: float) -> float:
        return macs_reduction_pct - 100.0 * self.target_reduction

    def selection_key(self, record: dict[str, Any]) -> tuple:
        """Best epoch: highest val top-1 among epochs within tolerance; else the closest to target."""
        dev = abs(self.deviation_pct(record["macs_reduction_pct"]))
        return (1, record["val_top1"]) if dev <= TOLERANCE_PCT else (0, -dev)

    def state_dict(self) -> dict[str, float]:
        return {"integral": self.integral}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.integral = float(state["integral"])
