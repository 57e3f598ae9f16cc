"""Costs from open counts: channel widths, MACs and params of a traced network when each group
keeps some number of units, for `TracedModel.cost` and `layer_widths`.

Not `zoo.cost.Cost.conv`/`linear` (whose totals it fills in): those take a square 2-D kernel
called once at a known output size, while a traced network has 1-D, 3-D and non-square kernels,
grouped and transposed convolutions, and layers called several times or on sequences. So the
kernel sizes and the calls are read from the network itself: one forward pass (`layer_calls`)
records, for every conv/linear call, the output elements per output channel.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from pdd_edge.zoo.cost import Cost
from pdd_edge.zoo.traced.groups import Group
from pdd_edge.zoo.traced.layers import BN, CONV, SLICEABLE, TRANSPOSED, dims

Calls = list[tuple[str, int]]  # (layer, output elements per output channel), one per call


def channel_counter(net: nn.Module, groups: Sequence[Group], counts: Mapping[str, Any]) -> Callable[[str, str], Any]:
    """channels(layer, "in" | "out") when group `point` keeps `counts[point]` units: every
    sliced layer's channel count is its fixed part plus, per group, the open units times the
    channels per unit."""
    modules = dict(net.named_modules())
    points = {g.point: g.units for g in groups}
    terms: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for g in groups:
        for slot in g.slots:
            terms.setdefault((slot.module, slot.dim), []).append((g.point, len(slot.positions) // max(g.units, 1)))

    def channels(name: str, dim: str) -> Any:
        width = dims(modules[name])[0 if dim == "in" else 1]
        parts = terms.get((name, dim), [])
        fixed = width - sum(per * points[p] for p, per in parts)
        value: Any = fixed
        for point, per in parts:
            value = value + counts[point] * per
        return value

    return channels


def layer_widths(net: nn.Module, groups: Sequence[Group], counts: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """(input, output) channels of every conv and linear layer under `counts`, keyed `net.<layer>`."""
    channels = channel_counter(net, groups, counts)
    return {f"net.{name}": (channels(name, "in"), channels(name, "out")) for name, module in net.named_modules()
            if isinstance(module, (*CONV, nn.Linear)) and not isinstance(module, TRANSPOSED)}


def cost(net: nn.Module, groups: Sequence[Group], counts: Mapping[str, Any], calls: Calls,
         unmasked_params: int) -> Cost:
    """MACs/params of `net` when group `point` keeps `counts[point]` units, its layers called as
    `calls` records; `unmasked_params` is the trainable parameter count of the model without its
    mask logits (what lies outside the sliced layers is counted from it)."""
    channels = channel_counter(net, groups, counts)
    c = Cost()
    sliced_params = 0
    for name, module in net.named_modules():
        if isinstance(module, TRANSPOSED):  # never sliced: its MACs are fixed
            c.macs = c.macs + sum(module.weight.numel() * n for used, n in calls if used == name)
        if not isinstance(module, SLICEABLE) or isinstance(module, TRANSPOSED):
            continue
        sliced_params += sum(p.numel() for p in module.parameters(recurse=False))
        c_out = channels(name, "out")
        if isinstance(module, BN):
            if module.weight is not None:
                c.add_params(2 * c_out)
            continue
        if isinstance(module, CONV) and module.groups > 1:
            per_out = module.in_channels // module.groups  # inputs each output channel reads
        else:
            per_out = channels(name, "in")
        kernel = module.weight[0, 0].numel()
        c.add_params(per_out * c_out * kernel + (c_out if module.bias is not None else 0))
        for _, elements in (u for u in calls if u[0] == name):
            c.macs = c.macs + per_out * c_out * kernel * elements
    c.add_params(unmasked_params - sliced_params)
    return c


def layer_calls(model: nn.Module, net: nn.Module, input_hw: tuple[int, int]) -> Calls:
    """(layer, output elements per output channel) for every conv/linear call of `net` (inside
    `model`, the wrapper) at `input_hw`, from one eval-mode pass on the net's device. Afterwards
    `model` goes back to its training mode, which `train()` passes on to all its children."""
    uses: Calls = []
    handles = []
    for name, module in net.named_modules():
        if isinstance(module, (*CONV, nn.Linear, TRANSPOSED)):
            def hook(mod, inp, out, name=name):
                if isinstance(mod, TRANSPOSED):  # fvcore: weight x input positions
                    uses.append((name, inp[0][0, 0].numel()))
                elif isinstance(mod, CONV):
                    uses.append((name, out.numel() // (out.shape[0] * out.shape[1])))
                else:
                    uses.append((name, out.numel() // out.shape[-1]))
            handles.append(module.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():  # on the net's device: a model training on a GPU probes there
            net(torch.zeros(1, 3, *input_hw, device=next(net.parameters()).device))
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return uses
