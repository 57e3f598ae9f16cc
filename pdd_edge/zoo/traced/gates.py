"""Gate hooks: a group's mask multiplies its channels where they enter a layer that mixes
channels (a dense or grouped conv's input, a linear layer's input), the paper's placement."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from pdd_edge.zoo.masks import ChannelMask
from pdd_edge.zoo.traced.groups import Group
from pdd_edge.zoo.traced.layers import mixes_channels


class _GateInputs:
    """Forward pre-hook of a channel-mixing layer: multiplies the channels that groups feed it
    by their masks' gates. An object, not a closure, so that `copy.deepcopy` of the model gives
    the copy's hook the copy's masks."""

    def __init__(self, masks: nn.ModuleDict, channel_dim: int, entries: list[tuple[str, torch.Tensor, torch.Tensor]]):
        self.masks = masks
        self.channel_dim = channel_dim  # 1 for conv (N, C, ...), -1 for linear (..., C)
        self.entries = entries  # (mask key, positions, units)

    def __call__(self, module: nn.Module, args: tuple) -> tuple | None:
        x = args[0]
        scale = None
        for key, positions, units in self.entries:
            mask = self.masks[key]
            if not isinstance(mask, ChannelMask):
                continue
            if scale is None:
                scale = x.new_ones(x.shape[self.channel_dim])
            scale = scale.index_copy(0, positions, mask.gate().to(x.dtype)[units])
        if scale is None:
            return None
        shape = [1] * x.dim()
        shape[self.channel_dim] = -1
        return (x * scale.view(shape), *args[1:])


def remove_gates(net: nn.Module) -> None:
    """Take pdd-edge's input gates off `net`, leaving the network's own hooks (weight norm, ...)."""
    for module in net.modules():
        for key in [k for k, hook in module._forward_pre_hooks.items() if isinstance(hook, _GateInputs)]:
            del module._forward_pre_hooks[key]


def install_gates(net: nn.Module, groups: Sequence[Group], masks: nn.ModuleDict) -> list:
    """Gate the channels each group feeds a channel-mixing layer by the group's mask in `masks`
    (where a removed channel can reach nothing else); the hooks' handles."""
    modules = dict(net.named_modules())
    per_module: dict[str, list[tuple[str, torch.Tensor, torch.Tensor]]] = {}
    for g in groups:
        for slot in g.slots:
            if slot.dim == "in" and mixes_channels(modules[slot.module]) and slot.positions:
                per_module.setdefault(slot.module, []).append(
                    (g.key, torch.tensor(slot.positions, dtype=torch.long), torch.tensor(slot.units, dtype=torch.long)))
    handles = []
    for name, entries in per_module.items():
        module = modules[name]
        dim = -1 if isinstance(module, nn.Linear) else 1
        handles.append(module.register_forward_pre_hook(_GateInputs(masks, dim, entries)))
    return handles
