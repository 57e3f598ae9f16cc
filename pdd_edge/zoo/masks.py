"""PDD's differentiable per-channel masks.

Each masked layer gets one learnable real scalar `m_c` per output channel. The forward pass
multiplies channel `c` by the binary gate `g_c = (sign(m_c) + 1) / 2`; the backward pass uses
Bi-Real Net's piecewise-quadratic approximation of sign as a straight-through estimator.

Gate rule at exactly zero: the reference code's `sign(0) = 0` gives a half-open gate (0.5),
which has no meaning after pruning (a channel is kept or removed). We use `g = 1` for
`m >= 0` and `g = 0` for `m < 0`, so that the masked network is always a network that
pruning can reproduce exactly. With N(0, 0.001^2) initialisation `m == 0` has probability zero.

Models expose mask points as `nn.Identity` placeholders (no parameters, so plain state dicts
load with `strict=True`); `MaskedNetwork.attach` (zoo/masked.py) swaps them for `ChannelMask`
modules and answers every question about them.

Part of the zoo, not of `nn`: a traced model (`zoo.traced`) gates its channel groups with these
masks, and pruning (`nn.pruning`) sits above the models it rebuilds.
"""

from __future__ import annotations

import torch
from torch import nn

from pdd_edge.errors import PddError

INIT_CHOICES = ("normal", "open")
INIT_STD = 1e-3  # N(0, 0.001^2): roughly half the gates start closed (PDD reference).


class _BiRealSign(torch.autograd.Function):
    """Binary gate in the forward pass; Bi-Real's quadratic sign surrogate in the backward pass."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(logits)
        return (logits >= 0).to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_gate: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (m,) = ctx.saved_tensors
        # approx(m) = m^2 + 2m on [-1, 0), -m^2 + 2m on [0, 1), constant outside; its slope is
        # 2 + 2m, resp. 2 - 2m, both of which go negative exactly outside [-1, 1): clamp to 0.
        slope = torch.where(m < 0, 2 + 2 * m, 2 - 2 * m).clamp_min_(0)
        return grad_gate * slope * 0.5  # the 1/2 of (sign + 1) / 2


def binary_gate(logits: torch.Tensor) -> torch.Tensor:
    """`(sign(m) + 1) / 2` with `sign(0) := 1`, differentiable through the Bi-Real surrogate."""
    return _BiRealSign.apply(logits)


def check_init(init: str) -> None:
    if init not in INIT_CHOICES:
        raise PddError(f"mask init must be one of: {', '.join(INIT_CHOICES)}; got {init!r}")


class ChannelMask(nn.Module):
    """Multiplies each channel of an NCHW (or NC) activation by its learned binary gate."""

    def __init__(self, channels: int, init: str = "normal") -> None:
        super().__init__()
        check_init(init)
        logits = torch.randn(channels) * INIT_STD
        if init == "open":
            # Same scale as the paper's init, all gates open: a pretrained student keeps its
            # features at the start and training decides what to close.
            logits = logits.abs()
        self.logits = nn.Parameter(logits)

    def gate(self) -> torch.Tensor:
        return binary_gate(self.logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The gate and its straight-through gradient are float32 (the logits are); the 0/1 gate is
        # exact in bf16/fp16, so a mixed-precision activation is multiplied in its own dtype.
        g = self.gate()
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * g.view(shape).to(x.dtype)

    def extra_repr(self) -> str:
        return f"channels={self.logits.numel()}"
