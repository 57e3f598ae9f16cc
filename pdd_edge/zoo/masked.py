"""A masked network: a zoo network, its channel masks by mask point and its prunable view, found once.

What the stages ask about masks (which points, how many channels each lets through, what the
masked network costs, its mask values) used to be a free function per question, and each one
looked up the prunable view and the masks again: one `prune` asked `prunable()` four times.
Build a `MaskedNetwork` where the network is at hand and ask it.

Three ways to one:
- `MaskedNetwork(model)` finds the masks attached to `model` (none for a plain network: then
  every point counts all its channels and the masked cost is the dense cost);
- `MaskedNetwork.attach(model, init)` puts a fresh `ChannelMask` at every mask point;
- `MaskedNetwork.load(model, logits)` attaches masks set to saved values (a checkpoint's).

It holds the mask modules, not copies of their values, so it stays true while the masks train;
a mask attached to the network by other means afterwards is not seen (build a new one then).

`set_multiple(N)` makes the masks stand for the widths prune deploys at multiples of N (zoo/masks.py,
"deployed widths"): counts, costs and evaluation are then those of that network.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from pdd_edge.errors import PddError, shortlist
from pdd_edge.zoo.cost import Cost
from pdd_edge.zoo.masks import ChannelMask
from pdd_edge.zoo.protocol import PrunableModel, prunable


class MaskedNetwork:
    """`net` (unwrapped from DDP / DataParallel), its prunable view `arch`, its ordered mask
    `points` (module path -> channels) and its attached `masks` (point -> ChannelMask)."""

    def __init__(self, model: nn.Module) -> None:
        self.net: nn.Module = getattr(model, "module", model)  # DDP / DataParallel wrapper
        self.arch: PrunableModel = prunable(self.net)
        self.points: dict[str, int] = dict(self.arch.mask_points())
        self.masks: dict[str, ChannelMask] = {}
        for name in self.points:
            module = self.net.get_submodule(name)
            if isinstance(module, ChannelMask):
                self.masks[name] = module

    @classmethod
    def attach(cls, model: nn.Module, init: str = "normal") -> MaskedNetwork:
        """`model` with every mask point replaced by a fresh `ChannelMask` (attached ones too)."""
        return cls(model)._attach_fresh(init)

    @classmethod
    def load(cls, model: nn.Module, logits: Mapping[str, torch.Tensor]) -> MaskedNetwork:
        """`model` with masks set to `logits`, which must cover every mask point exactly. The
        masks are attached fresh (drawing their initial values, then overwritten), as they always
        were: the random stream after a checkpoint load is what it was."""
        masked = cls(model)
        masked._check_fits(logits)
        masked._attach_fresh("normal")
        with torch.no_grad():
            for name, mask in masked.masks.items():
                mask.logits.copy_(logits[name])
        return masked

    def _attach_fresh(self, init: str) -> MaskedNetwork:
        self.masks = {}
        for name, channels in self.points.items():
            mask = ChannelMask(channels, init)
            _set_submodule(self.net, name, mask)
            self.masks[name] = mask
        return self

    def _check_fits(self, logits: Mapping[str, torch.Tensor]) -> None:
        missing = [p for p in self.points if p not in logits]
        unknown = [p for p in logits if p not in self.points]
        if missing or unknown:
            raise PddError(
                f"masks do not fit this architecture (missing {shortlist(missing)}; unexpected {shortlist(unknown)})"
            )
        for name, channels in self.points.items():
            values = logits[name]
            if values.shape != (channels,):
                raise PddError(f"mask {name} has {tuple(values.shape)} values, the layer has {channels} channels")

    def set_multiple(self, multiple: int) -> MaskedNetwork:
        """Every mask lets through the channels prune keeps at widths in multiples of `multiple`
        (1: the open channels, at least one where a point may not vanish)."""
        for name, mask in self.masks.items():
            mask.rule = (int(multiple), self.arch.may_vanish(name))
        return self

    def fix(self, kept: Mapping[str, torch.Tensor] | None = None) -> None:
        """Keep every mask's deployed channels (or `kept[point]`) for good (`ChannelMask.fix`)."""
        for name, mask in self.masks.items():
            mask.fix(None if kept is None else kept[name])

    @property
    def multiple(self) -> int | None:
        """The channel multiple the masks deploy at (`set_multiple`); None: raw gates."""
        rules = {m.rule for m in self.masks.values()}
        if not rules or None in rules:
            return None
        return next(iter(rules))[0]

    def logits(self) -> dict[str, torch.Tensor]:
        """The mask values by point (detached copies; +/-1 on a fixed set; empty when unmasked)."""
        return {name: m.values() for name, m in self.masks.items()}

    def open_counts(self, soft: bool = False) -> dict[str, torch.Tensor | int]:
        """Channels each mask point lets through.

        Hard counts are ints (unmasked points count all their channels). With `soft=True` masked
        points give the sum of their straight-through gates: a tensor with the same value as the
        hard count whose gradient reaches the mask logits (used by the budget terms). With a
        multiple set, the counts are the deployed widths.
        """
        counts: dict[str, torch.Tensor | int] = {}
        for name, channels in self.points.items():
            mask = self.masks.get(name)
            if mask is None:
                counts[name] = channels
            elif soft:
                counts[name] = mask.gate().sum()
            else:
                counts[name] = int(mask.kept().sum())
        return counts

    def kept_fraction(self) -> float:
        """Share of masked channels that are open, over all mask points."""
        total = sum(self.points.values())
        return sum(int(v) for v in self.open_counts().values()) / total if total else 1.0

    def dense_cost(self, input_hw: tuple[int, int]) -> dict[str, int]:
        """MACs/params of the full-width network (every mask point open)."""
        return self.arch.cost(self.points, input_hw).as_ints()

    def cost(self, input_hw: tuple[int, int], soft: bool = False) -> Cost:
        """MACs/params counting open channels only; with `soft` a cost whose gradient reaches the masks."""
        return self.arch.cost(self.open_counts(soft), input_hw)

    def stats(self, input_hw: tuple[int, int], dense_macs: int) -> dict[str, Any]:
        """Kept channels and MACs/params of the masked network, for epoch records."""
        cost = self.cost(input_hw).as_ints()
        return {
            "kept_pct": 100.0 * self.kept_fraction(),
            "masked_macs": cost["macs"],
            "masked_params": cost["params"],
            "macs_reduction_pct": 100.0 * (1 - cost["macs"] / dense_macs),
        }


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, module)
