"""PDD's differentiable per-channel masks.

Each masked layer gets one learnable real scalar `m_c` per output channel. The forward pass
multiplies channel `c` by the binary gate `g_c = (sign(m_c) + 1) / 2`; the backward pass uses
Bi-Real Net's piecewise-quadratic approximation of sign as a straight-through estimator.

Gate rule at exactly zero: the reference code's `sign(0) = 0` gives a half-open gate (0.5),
which has no meaning after pruning (a channel is kept or removed). We use `g = 1` for
`m >= 0` and `g = 0` for `m < 0`, so that the masked network is always a network that
pruning can reproduce exactly. With N(0, 0.001^2) initialisation `m == 0` has probability zero.

Models expose mask points as `nn.Identity` placeholders (no parameters, so plain state dicts
load with `strict=True`); `attach_masks` swaps them for `ChannelMask` modules.

Part of the zoo, not of `nn`: a traced model (`zoo.traced`) gates its channel groups with these
masks, and pruning (`nn.pruning`) sits above the models it rebuilds.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from pdd_edge.errors import PddError, shortlist
from pdd_edge.zoo.protocol import prunable

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


def mask_points(model: nn.Module) -> dict[str, int]:
    """Ordered mask points of a zoo model: module path -> number of channels it gates."""
    return dict(prunable(model).mask_points())


def attach_masks(model: nn.Module, init: str = "normal") -> dict[str, ChannelMask]:
    """Replace every mask point of `model` by a fresh `ChannelMask`; returns them by point name."""
    masks = {}
    for name, channels in mask_points(model).items():
        mask = ChannelMask(channels, init)
        _set_submodule(model, name, mask)
        masks[name] = mask
    return masks


def get_masks(model: nn.Module) -> dict[str, ChannelMask]:
    """The attached masks of `model` by point name (empty when the model is unmasked)."""
    model = getattr(model, "module", model)  # DDP / DataParallel wrapper
    found = {}
    for name in mask_points(model):
        module = model.get_submodule(name)
        if isinstance(module, ChannelMask):
            found[name] = module
    return found


def mask_logits(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: m.logits.detach().clone() for name, m in get_masks(model).items()}


def load_mask_logits(model: nn.Module, logits: Mapping[str, torch.Tensor]) -> None:
    """Attach masks to `model` and set them to `logits` (which must cover every mask point)."""
    points = mask_points(model)
    missing = [p for p in points if p not in logits]
    unknown = [p for p in logits if p not in points]
    if missing or unknown:
        raise PddError(
            f"masks do not fit this architecture (missing {shortlist(missing)}; unexpected {shortlist(unknown)})"
        )
    for name, channels in points.items():
        values = logits[name]
        if values.shape != (channels,):
            raise PddError(f"mask {name} has {tuple(values.shape)} values, the layer has {channels} channels")
    for name, mask in attach_masks(model).items():
        with torch.no_grad():
            mask.logits.copy_(logits[name])


def open_counts(model: nn.Module, soft: bool = False) -> dict[str, torch.Tensor | int]:
    """Channels each mask point lets through.

    Hard counts are ints (unmasked points count all their channels). With `soft=True` masked
    points give the sum of their straight-through gates: a tensor with the same value as the
    hard count whose gradient reaches the mask logits (used by the MACs budget term).
    """
    counts: dict[str, torch.Tensor | int] = {}
    masks = get_masks(model)
    for name, channels in mask_points(model).items():
        mask = masks.get(name)
        if mask is None:
            counts[name] = channels
        elif soft:
            counts[name] = mask.gate().sum()
        else:
            counts[name] = int((mask.logits.detach() >= 0).sum())
    return counts


def kept_fraction(model: nn.Module) -> float:
    """Share of masked channels that are open, over all mask points."""
    total = sum(mask_points(model).values())
    return sum(int(v) for v in open_counts(model).values()) / total if total else 1.0


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, module)


def mask_stats(model: nn.Module, input_hw: tuple[int, int], dense_macs: int) -> dict[str, Any]:
    """Kept channels and MACs/params of the masked network (only open channels counted)."""
    cost = prunable(model).cost(open_counts(model), input_hw).as_ints()
    return {
        "kept_pct": 100.0 * kept_fraction(model),
        "masked_macs": cost["macs"],
        "masked_params": cost["params"],
        "macs_reduction_pct": 100.0 * (1 - cost["macs"] / dense_macs),
    }


def dense_cost(model: nn.Module, input_hw: tuple[int, int]) -> dict[str, int]:
    return prunable(model).cost(mask_points(model), input_hw).as_ints()
