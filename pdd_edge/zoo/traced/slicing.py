"""Removal: a channel plan checked against a network's groups, the positions it keeps, and
conv, linear and BN weights cut down to them."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from pdd_edge.errors import PddError, shortlist
from pdd_edge.zoo.traced.groups import Group, Slot
from pdd_edge.zoo.traced.layers import BN, CONV, dims


def check_keep(keep: Mapping[str, Sequence[int]], full: Mapping[str, Sequence[int]], name: str) -> None:
    """Refuse a channel plan that does not fit network `name` at full width `full`."""
    if set(keep) != set(full):
        missing, extra = sorted(set(full) - set(keep)), sorted(set(keep) - set(full))
        raise PddError(f"the channel plan does not fit {name} (missing {shortlist(missing)}; unexpected "
                       f"{shortlist(extra)}): was the checkpoint made with another version of the model?")
    for point, idx in keep.items():
        width = len(full[point])
        if not idx or list(idx) != sorted(set(idx)) or any(not 0 <= i < width for i in idx):
            raise PddError(f"the channel plan for {point} of {name} must be 1 to {width} sorted distinct indices below {width}")


def sliced_positions(groups: Sequence[Group], keep: Mapping[str, Sequence[int]],
                     widths: Mapping[str, tuple[int, int]]) -> dict[tuple[str, str], list[int]]:
    """For every (layer, dim) a group touches: the positions (full width, `widths` of each layer)
    that `keep` keeps."""
    dropped: dict[tuple[str, str], set[int]] = {}
    for g in groups:
        kept = set(keep[g.point])
        for slot in g.slots:
            gone = dropped.setdefault((slot.module, slot.dim), set())
            gone.update(p for p, u in zip(slot.positions, slot.units) if u not in kept)
    out = {}
    for (module, dim), gone in dropped.items():
        width = widths[module][0 if dim == "in" else 1]
        out[(module, dim)] = [p for p in range(width) if p not in gone]
    return out


def current_groups(groups: Sequence[Group], keep: Mapping[str, Sequence[int]],
                   widths: Mapping[str, tuple[int, int]]) -> list[Group]:
    """The groups of the network pruned to `keep`, in its own (pruned) positions and units."""
    kept_pos = sliced_positions(groups, keep, widths)
    out = []
    for g in groups:
        unit_index = {u: i for i, u in enumerate(keep[g.point])}
        slots = []
        for slot in g.slots:
            where = {p: i for i, p in enumerate(kept_pos[(slot.module, slot.dim)])}
            pairs = [(where[p], unit_index[u]) for p, u in zip(slot.positions, slot.units) if u in unit_index]
            slots.append(Slot(slot.module, slot.dim, [p for p, _ in pairs], [u for _, u in pairs]))
        out.append(Group(g.key, g.root, len(keep[g.point]), slots))
    return out


def slice_layers(net: nn.Module, kept: Mapping[tuple[str, str], Sequence[int]]) -> None:
    """Cut every touched layer down to its kept positions (in the layer's current coordinates)."""
    modules = dict(net.named_modules())
    for name in sorted({m for m, _ in kept}):
        module = modules[name]
        c_in, c_out = dims(module)
        keep_in = list(kept.get((name, "in"), range(c_in)))
        keep_out = list(kept.get((name, "out"), range(c_out)))
        i_in, i_out = torch.tensor(keep_in, dtype=torch.long), torch.tensor(keep_out, dtype=torch.long)
        with torch.no_grad():
            if isinstance(module, BN):
                for attr in ("weight", "bias"):
                    if getattr(module, attr) is not None:
                        setattr(module, attr, nn.Parameter(getattr(module, attr)[i_out].clone()))
                for attr in ("running_mean", "running_var"):
                    if getattr(module, attr) is not None:
                        setattr(module, attr, getattr(module, attr)[i_out].clone())
                module.num_features = len(keep_out)
                continue
            weight = module.weight[i_out]
            if isinstance(module, CONV) and module.groups > 1:
                # whole convolution groups go (units guarantee it): the per-group input width stays
                per_in = c_in // module.groups
                module.groups = len(keep_in) // per_in
            else:
                weight = weight[:, i_in]
            module.weight = nn.Parameter(weight.clone())
            if module.bias is not None:
                module.bias = nn.Parameter(module.bias[i_out].clone())
            if isinstance(module, CONV):
                module.in_channels, module.out_channels = len(keep_in), len(keep_out)
            else:
                module.in_features, module.out_features = len(keep_in), len(keep_out)
