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

Deployed widths: a network pruned to widths in multiples of N (the device's channel multiple)
keeps, per mask point, the open channels rounded to the nearest multiple (`deployed_width`) — not
the open channels themselves (`kept_channels`: the open channels, less the weakest or plus the
strongest closed ones). With a rule set (`ChannelMask.rule`, from `MaskedNetwork.set_multiple`),
evaluation passes that deployed set while training steps keep the raw gates, and `fix` keeps
it for good. Why (issue 23): ResNet20 distilled on CIFAR-10
images to 62-65 % top-1 with its raw open channels fell to 15-17 % once prune rounded 9 layers to
multiples of 16 (reopening about 45 channels and closing about 45), and the four fine-tuning
epochs only climbed back to where it had been; stages/distill.DeployedWidths says when the masks
are fixed, and why not from the first step.

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


def _rounded(n_open, multiple: int, nearest: bool):
    """`n_open` (an int, or an integer tensor: the same integer arithmetic) rounded to a multiple of
    `multiple`: the nearest (ties up), or with `nearest=False` the next one up."""
    if multiple <= 1:
        return n_open
    steps = (2 * n_open + multiple) // (2 * multiple) if nearest else (n_open + multiple - 1) // multiple
    return steps * multiple


def deployed_width(n_open: int, width: int, multiple: int, may_vanish: bool, nearest: bool = True) -> int:
    """The width a mask point with `n_open` open channels is pruned to: the nearest multiple of
    `multiple` (ties up; `nearest=False`: the next multiple up), at most `width`, and at least
    `multiple` (or `width`; 1 with no multiple) unless the point may vanish. Nearest, not up, where the
    masks trained under the rule or a latency constraint priced it: rounding up made the constraint
    push on while no layer had reached the next multiple down (nn/constraint.deployed_counts)."""
    want = min(width, _rounded(n_open, multiple, nearest))
    if want == 0 and not may_vanish:
        want = min(width, max(multiple, 1))
    return want


def kept_channels(logits: torch.Tensor, multiple: int, may_vanish: bool, nearest: bool = True) -> torch.Tensor:
    """Which channels the pruned network keeps (a bool tensor): the `deployed_width` strongest mask
    values, ties to the lower index. Those are the open channels (values >= 0), less the weakest
    of them or plus the strongest closed ones. Tensor arithmetic only, so that a training step on
    a GPU never waits for the host."""
    width = logits.numel()
    want = _rounded((logits >= 0).sum(), multiple, nearest).clamp(max=width)  # `deployed_width`, on the device
    if not may_vanish:
        want = torch.where(want == 0, min(width, max(multiple, 1)), want)
    order = torch.argsort(logits, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(width, device=logits.device)
    return rank < want


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
        # (multiple, may_vanish): the widths prune deploys (module docstring); None: the raw gates.
        # Not state: a checkpoint records the multiple and loading sets it again (MaskedNetwork).
        self.rule: tuple[int, bool] | None = None
        # The channels kept for good once `fix` ran (bool), or None. Not state either: the
        # training's resume state holds it (stages/distill.DeployedWidths), a checkpoint the +/-1
        # mask values that `values` gives for it.
        self.fixed: torch.Tensor | None = None

    def kept(self) -> torch.Tensor:
        """The channels the deployed network keeps (bool): the rule applied."""
        if self.fixed is not None:
            return self.fixed
        m = self.logits.detach()
        return m >= 0 if self.rule is None else kept_channels(m, *self.rule)

    def gate(self) -> torch.Tensor:
        """Training steps pass the raw gates; evaluation, with a rule, the deployed set; a fixed
        mask its set, with a zero gradient (kept in the graph: DDP expects one for every parameter)."""
        if self.fixed is not None:
            return self.fixed.to(self.logits.dtype) + 0.0 * self.logits
        g = binary_gate(self.logits)
        if self.rule is None or self.training:
            return g
        return g + (self.kept().to(g.dtype) - g).detach()

    def fix(self, kept: torch.Tensor | None = None) -> None:
        """Keep the deployed set (or `kept`) for good: the mask values no longer move it. Why not
        snap the values to +/-1 and let Bi-Real's zero slope hold them: weight decay moves them
        off +/-1, and the distillation's gradient, summed over a batch's pixels, then reopened
        two vanished blocks of ResNet20 within an epoch (val top-1 64 % raw, 13 % deployed)."""
        self.fixed = (self.kept() if kept is None else kept).detach().clone().to(self.logits.device)

    def values(self) -> torch.Tensor:
        """The mask values to save: the logits, or +/-1 on a fixed set (which loads as that set)."""
        if self.fixed is not None:
            return torch.where(self.fixed, 1.0, -1.0).to(self.logits.dtype)
        return self.logits.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The gate and its straight-through gradient are float32 (the logits are); the 0/1 gate is
        # exact in bf16/fp16, so a mixed-precision activation is multiplied in its own dtype.
        g = self.gate()
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * g.view(shape).to(x.dtype)

    def extra_repr(self) -> str:
        rule = "" if self.rule is None else f", multiple={self.rule[0]}"
        return f"channels={self.logits.numel()}{rule}"
