"""Units: what one gate removes. Torch-Pruning's groups become mask points, and a grouped
convolution, which can only lose whole convolution groups, ties the channels that feed one of its
groups to the ones it produces: units are the connected components of that relation."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn

from pdd_edge.zoo.traced.groups import Group, Slot
from pdd_edge.zoo.traced.layers import CONV, dims, mixes_channels

Owner = tuple[int, int]  # (Torch-Pruning group, root unit)


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def merge_units(net: nn.Module, roots: Sequence[str], slots_of: Sequence[list[Slot]], widths: Sequence[int],
                refused: list[str]) -> list[Group]:
    """Merge Torch-Pruning groups (their `roots`, slots and widths; no slots: refused) into mask
    points, with grouped convolutions losing whole groups; refusals are added to `refused`."""
    units = UnionFind()  # over (group, root unit): what one gate removes
    joined = UnionFind()  # over groups: which groups form one mask point
    modules = dict(net.named_modules())
    owner, bad = _owners(slots_of, units)
    _join_grouped_convs(modules, owner, units, joined, bad)
    groups: list[Group] = []
    for p, members in _points(slots_of, joined, bad):
        root = roots[p]
        if any(g in bad for g in members):
            refused.append(f"{root}: its channels are shared with a layer outside the group (a grouped "
                           "convolution that would lose part of a group, or overlapping groups)")
            continue
        group = _point(f"g{len(groups)}", root, members, slots_of, widths, units)
        if _uneven(group):
            refused.append(f"{root}: its units hold different numbers of channels in one layer")
            continue
        if not any(s.dim == "in" and mixes_channels(modules[s.module]) for s in group.slots):
            refused.append(f"{root}: no layer consumes these channels (they reach the output)")
            continue
        groups.append(group)
    return groups


def _owners(slots_of: Sequence[list[Slot]], units: UnionFind) -> tuple[dict[tuple[str, str, int], Owner], set[int]]:
    """(module, dim, position) -> (group, root unit), and the groups that claim a position
    another group claims too."""
    owner: dict[tuple[str, str, int], Owner] = {}
    bad: set[int] = set()
    for gi, slots in enumerate(slots_of):
        for slot in slots:
            for p, u in zip(slot.positions, slot.units):
                units.find((gi, u))
                key = (slot.module, slot.dim, p)
                if key in owner and owner[key][0] != gi:
                    bad.update({gi, owner[key][0]})
                owner[key] = (gi, u)
    return owner, bad


def _join_grouped_convs(modules: Mapping[str, nn.Module], owner: Mapping[tuple[str, str, int], Owner],
                        units: UnionFind, joined: UnionFind, bad: set[int]) -> None:
    """Tie the inputs and outputs of every convolution group into one unit (and their Torch-Pruning
    groups into one mask point); a convolution group with a fixed channel marks its groups bad."""
    for name, module in modules.items():
        if not (isinstance(module, CONV) and module.groups > 1):
            continue
        c_in, c_out = dims(module)
        bi, bo = c_in // module.groups, c_out // module.groups
        for k in range(module.groups):
            members = [owner.get((name, "in", p)) for p in range(k * bi, (k + 1) * bi)]
            members += [owner.get((name, "out", p)) for p in range(k * bo, (k + 1) * bo)]
            if any(m is None for m in members):
                # part of a conv group is fixed (an input, an output layer or a refused group):
                # its other channels cannot go alone
                bad.update(m[0] for m in members if m is not None)
                continue
            for m in members[1:]:
                units.union(members[0], m)
                joined.union(members[0][0], m[0])


def _points(slots_of: Sequence[list[Slot]], joined: UnionFind, bad: set[int]) -> list[tuple[int, list[int]]]:
    """(point, its Torch-Pruning groups) in point order: a point is a set of groups joined by
    grouped convolutions. Refusing one group refuses the groups joined with it (added to `bad`)."""
    point_of = {gi: joined.find(gi) for gi, slots in enumerate(slots_of) if slots}
    for gi in list(bad):
        bad.update(g for g, p in point_of.items() if p == point_of.get(gi))
    members_of: dict[int, list[int]] = {}
    for gi, p in point_of.items():
        members_of.setdefault(p, []).append(gi)
    return sorted(members_of.items())


def _point(key: str, root: str, members: Sequence[int], slots_of: Sequence[list[Slot]], widths: Sequence[int],
           units: UnionFind) -> Group:
    """The mask point made of Torch-Pruning groups `members`, its units numbered in order."""
    comps = sorted({units.find((g, u)) for g in members for u in range(widths[g])})
    unit_of = {c: i for i, c in enumerate(comps)}
    group = Group(key=key, root=root, units=len(comps))
    for g in members:
        for slot in slots_of[g]:
            group.slots.append(Slot(slot.module, slot.dim, list(slot.positions),
                                    [unit_of[units.find((g, u))] for u in slot.units]))
    return group


def _uneven(group: Group) -> bool:
    for slot in group.slots:
        per_unit: dict[int, int] = {}
        for u in slot.units:
            per_unit[u] = per_unit.get(u, 0) + 1
        if len(set(per_unit.values())) > 1 or len(per_unit) != group.units:
            return True
    return False
