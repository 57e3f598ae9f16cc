"""PDD for any CNN: channel groups found by tracing, exact removal, costs from open counts.

`TracedModel` wraps a network built from a model spec (torchvision, timm, a user's file) and
implements `zoo.protocol.PrunableModel`, so distillation, pruning, costs and checkpoints treat it
like a hand-written zoo network.

How the pieces fit:

1. **Groups.** Torch-Pruning's `DependencyGraph` traces the network once (autograd, at the
   model's input size) and yields, for every conv/linear layer, the set of channels that must be
   removed with its output channels: the BN that follows, residual adds, concatenations,
   depthwise convolutions, squeeze-and-excitation products, flatten into a linear layer. We read
   each group as *slots*: (layer, in|out dimension, positions), each position tagged with the
   root channel it follows.
2. **Units.** A mask gate removes one *unit*. Normally a unit is one root channel. A grouped
   convolution (1 < groups < channels) can only lose whole convolution groups, and it ties the
   channels that feed a convolution group to the ones it produces: units are the connected
   components of that relation (union-find), so such a group's gates are whole groups.
3. **Masks.** One `ChannelMask` per group, applied where the group's channels enter a layer that
   mixes channels (a dense or grouped conv's input, a linear layer's input). That is the paper's
   placement (after the producing layer's normalisation and activation), and it makes removal
   exact: a removed channel can reach nothing else, whatever elementwise ops sit in between.
4. **Removal.** Slicing conv, linear and BN weights to the kept positions of each slot.
5. **Trust, but verify.** A group Torch-Pruning cannot describe exactly (a channel split, a
   layer we cannot slice, a reshape that mixes channels) is left unmasked and listed in
   `refused`; then a seeded check with randomised weights compares the masked and the pruned
   network, and any group whose removal does not reproduce its mask is refused too. So a group
   is either pruned exactly or listed, never silently mis-pruned.

The network's output layers (the conv/linear layers whose output reaches the model's output
without another such layer in between) keep their width.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from pdd_edge.errors import PddError, shortlist
from pdd_edge.zoo.cost import Cost
from pdd_edge.zoo.masks import ChannelMask

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_SLICEABLE = (*_CONV, nn.Linear, *_BN)
VERIFY_SEED = 20240601  # the exactness check is seeded: the same model always gets the same groups
# Torch-Pruning's group search is exponential on a few graphs (timm's rexnet runs for hours): give
# up with a message instead of hanging. Typical CNNs take 0.1-8 s.
TRACE_SECONDS = float(os.environ.get("PDD_EDGE_TRACE_SECONDS", "120"))


class _TraceTimeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise _TraceTimeout in the main thread after `seconds` (POSIX SIGALRM; elsewhere no limit)."""
    import signal
    import threading

    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum, _frame):
        raise _TraceTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Slot:
    """Positions of one layer dimension that belong to a group, and the unit each one follows."""

    module: str
    dim: str  # "in" or "out"
    positions: list[int]
    units: list[int]


@dataclass
class Group:
    key: str  # mask point name inside the wrapper: "pdd_masks.<key>"
    root: str  # the layer whose output channels define the group (named in messages)
    units: int  # gates at full width
    slots: list[Slot] = field(default_factory=list)

    @property
    def point(self) -> str:
        return f"pdd_masks.{self.key}"


def _mixes_channels(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (isinstance(module, _CONV) and module.groups == 1)


def _dims(module: nn.Module) -> tuple[int, int]:
    """(input channels, output channels) of a sliceable layer."""
    if isinstance(module, _CONV):
        return module.in_channels, module.out_channels
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return module.num_features, module.num_features


class _UnionFind:
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


def _output_layers(dg, names: Mapping[nn.Module, str]) -> list[nn.Module]:
    """Conv/linear layers whose output reaches the model's output with no such layer between."""
    found: list[nn.Module] = []
    seen: set[int] = set()
    stack = [n for n in dg.module2node.values() if not n.outputs]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.module, (*_CONV, nn.Linear)):
            found.append(node.module)
            continue
        stack.extend(node.inputs)
    return found


def _trace_groups(net: nn.Module, example: torch.Tensor, spec_name: str) -> tuple[list[Group], list[str]]:
    """Groups of `net` at full width from Torch-Pruning's dependency graph, plus refusals."""
    import torch_pruning as tp

    names = {m: n for n, m in net.named_modules()}
    try:
        with warnings.catch_warnings(), _time_limit(TRACE_SECONDS):
            warnings.simplefilter("ignore")
            dg = tp.DependencyGraph().build_dependency(net, example_inputs=example, verbose=False)
            outputs = _output_layers(dg, names)
            raw = list(dg.get_all_groups(ignored_layers=outputs, root_module_types=(*_CONV, nn.Linear)))
    except _TraceTimeout:
        raise PddError(f"Torch-Pruning's dependency analysis of {spec_name} did not finish in {TRACE_SECONDS:g} s "
                       "(its group search grows exponentially on some graphs); pdd-edge cannot prune this model "
                       "(PDD_EDGE_TRACE_SECONDS raises the limit)") from None
    except Exception as exc:  # Torch-Pruning's tracer fails in many shapes; the user needs one line
        raise PddError(f"cannot trace {spec_name} to find its channel groups: {_failing_op(exc, names)}; "
                       "pdd-edge prunes networks that Torch-Pruning's DependencyGraph can trace") from None

    refused: list[str] = []
    slots_of: list[list[Slot]] = []
    widths: list[int] = []
    for gi, group in enumerate(raw):
        root_module = group[0].dep.target.module
        root = names.get(root_module, type(root_module).__name__)
        width = len(group[0].idxs)
        slots: dict[tuple[str, str], Slot] = {}
        problem = None
        for item in group:
            module, handler = item.dep.target.module, item.dep.handler
            if isinstance(module, nn.Module) and module.__class__.__module__.startswith("torch_pruning"):
                continue  # Torch-Pruning's stand-ins for add/cat/split/reshape: nothing to slice
            if not isinstance(module, _SLICEABLE) or isinstance(module, nn.modules.conv._ConvTransposeNd):
                what = names.get(module, type(module).__name__) if isinstance(module, nn.Module) else "a bare parameter"
                problem = f"{what} ({type(module).__name__}) cannot be sliced by pdd-edge"
                break
            dim = "out" if dg.is_out_channel_pruning_fn(handler) or isinstance(module, _BN) else "in"
            dims = [dim]
            if dim == "out" and isinstance(module, _CONV) and module.groups == module.out_channels > 1:
                # Torch-Pruning's depthwise handler removes input and output channel together
                if module.in_channels != module.out_channels:
                    problem = f"{names[module]} is a depthwise convolution with a channel multiplier"
                    break
                dims.append("in")
            for d in dims:
                slot = slots.setdefault((names[module], d), Slot(names[module], d, [], []))
                slot.positions.extend(int(i) for i in item.idxs)
                slot.units.extend(int(r) for r in item.root_idxs)
        if problem is None:
            for slot in slots.values():
                if sorted(set(slot.units)) != list(range(width)):
                    problem = (f"{slot.module} sees only some of its channels (a split or slice): the cost of a "
                               "mask pattern would depend on which channels close, not how many")
                    break
        if problem is not None:
            refused.append(f"{root}: {problem}")
            slots_of.append([])
        else:
            slots_of.append(list(slots.values()))
        widths.append(width)
    return _units(net, names, raw, slots_of, widths, refused), refused


def _units(net, names, raw, slots_of: list[list[Slot]], widths: list[int], refused: list[str]) -> list[Group]:
    """Merge Torch-Pruning groups into mask points, with grouped convolutions losing whole groups."""
    uf = _UnionFind()  # over (group, root unit): what one gate removes
    guf = _UnionFind()  # over groups: which groups form one mask point
    owner: dict[tuple[str, str, int], tuple[int, int]] = {}  # (module, dim, position) -> (group, root unit)
    bad: set[int] = set()
    for gi, slots in enumerate(slots_of):
        for slot in slots:
            for p, u in zip(slot.positions, slot.units):
                uf.find((gi, u))
                key = (slot.module, slot.dim, p)
                if key in owner and owner[key][0] != gi:
                    bad.update({gi, owner[key][0]})
                owner[key] = (gi, u)
    modules = dict(net.named_modules())
    for name, module in modules.items():
        if not (isinstance(module, _CONV) and module.groups > 1):
            continue
        c_in, c_out = _dims(module)
        bi, bo = c_in // module.groups, c_out // module.groups
        for k in range(module.groups):
            members = [owner.get((name, "in", p)) for p in range(k * bi, (k + 1) * bi)]
            members += [owner.get((name, "out", p)) for p in range(k * bo, (k + 1) * bo)]
            if any(m is None for m in members):
                # part of a conv group is fixed (an input, an output layer or a refused group):
                # its other channels cannot go alone
                for m in members:
                    if m is not None:
                        bad.add(m[0])
                continue
            for m in members[1:]:
                uf.union(members[0], m)
                guf.union(members[0][0], m[0])
    # A point is a set of Torch-Pruning groups joined by grouped convolutions.
    point_of: dict[int, int] = {}
    for gi, slots in enumerate(slots_of):
        if slots:
            point_of[gi] = guf.find(gi)
    for gi in list(bad):  # refusing one group refuses the groups joined with it
        bad.update(g for g, p in point_of.items() if p == point_of.get(gi))
    groups: list[Group] = []
    members_of: dict[int, list[int]] = {}
    for gi, p in point_of.items():
        members_of.setdefault(p, []).append(gi)
    for p, members in sorted(members_of.items()):
        root = _root_name(raw[p], names)
        if any(g in bad for g in members):
            refused.append(f"{root}: its channels are shared with a layer outside the group (a grouped "
                           "convolution that would lose part of a group, or overlapping groups)")
            continue
        comps = sorted({uf.find((g, u)) for g in members for u in range(widths[g])})
        unit_of = {c: i for i, c in enumerate(comps)}
        group = Group(key=f"g{len(groups)}", root=root, units=len(comps))
        for g in members:
            for slot in slots_of[g]:
                group.slots.append(Slot(slot.module, slot.dim, list(slot.positions),
                                        [unit_of[uf.find((g, u))] for u in slot.units]))
        if _uneven(group):
            refused.append(f"{root}: its units hold different numbers of channels in one layer")
            continue
        if not any(s.dim == "in" and _mixes_channels(modules[s.module]) for s in group.slots):
            refused.append(f"{root}: no layer consumes these channels (they reach the output)")
            continue
        groups.append(group)
    return groups


def _root_name(group, names) -> str:
    module = group[0].dep.target.module
    return names.get(module, type(module).__name__)


def _uneven(group: Group) -> bool:
    for slot in group.slots:
        per_unit: dict[int, int] = {}
        for u in slot.units:
            per_unit[u] = per_unit.get(u, 0) + 1
        if len(set(per_unit.values())) > 1 or len(per_unit) != group.units:
            return True
    return False


def _failing_op(exc: BaseException, names: Mapping[nn.Module, str]) -> str:
    """The operation a tracer failure happened in: the innermost Torch-Pruning frame's function,
    and the graph node it was handling, named by the nearest layer that feeds it."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    where = next((f"{f.name} ({f.filename.rsplit('/', 1)[-1]})" for f in reversed(frames) if "torch_pruning" in f.filename), None)
    msg = str(exc).splitlines()[0] if str(exc) else ""
    text = f"{type(exc).__name__}{': ' + msg if msg else ''}"
    layer = _failing_layer(exc, names)
    if layer:
        text += f" at the {layer}"
    return f"{text} in {where}" if where else text


def _failing_layer(exc: BaseException, names: Mapping[nn.Module, str]) -> str | None:
    tb, node = exc.__traceback__, None
    while tb is not None:  # the innermost frame that holds a graph node
        local = tb.tb_frame.f_locals
        for key in ("node", "reshape_node"):  # the node being handled, not its neighbours
            if type(local.get(key)).__name__ == "Node":
                node = local[key]
        tb = tb.tb_next
    if node is None:
        return None
    kind = type(node.module).__name__.strip("_").replace("Op", "").lower() or "operation"
    seen, stack = set(), list(node.inputs)
    while stack:  # breadth-first towards the input: the nearest named layer
        n = stack.pop(0)
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.module in names:
            return f"{kind} after layer {names[n.module]}"
        stack.extend(n.inputs)
    return kind


# --- positions, slicing and input gates -------------------------------------------------------


def _sliced_positions(groups: Sequence[Group], keep: Mapping[str, Sequence[int]],
                      dims: Mapping[str, tuple[int, int]]) -> dict[tuple[str, str], list[int]]:
    """For every (layer, dim) a group touches: the positions (full width) that `keep` keeps."""
    dropped: dict[tuple[str, str], set[int]] = {}
    for g in groups:
        kept = set(keep[g.point])
        for slot in g.slots:
            gone = dropped.setdefault((slot.module, slot.dim), set())
            gone.update(p for p, u in zip(slot.positions, slot.units) if u not in kept)
    out = {}
    for (module, dim), gone in dropped.items():
        width = dims[module][0 if dim == "in" else 1]
        out[(module, dim)] = [p for p in range(width) if p not in gone]
    return out


def _current(groups: Sequence[Group], keep: Mapping[str, Sequence[int]],
             dims: Mapping[str, tuple[int, int]]) -> list[Group]:
    """The groups of the network pruned to `keep`, in its own (pruned) positions and units."""
    kept_pos = _sliced_positions(groups, keep, dims)
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


def _slice(net: nn.Module, kept: Mapping[tuple[str, str], Sequence[int]]) -> None:
    """Cut every touched layer down to its kept positions (in the layer's current coordinates)."""
    modules = dict(net.named_modules())
    for name in sorted({m for m, _ in kept}):
        module = modules[name]
        c_in, c_out = _dims(module)
        keep_in = list(kept.get((name, "in"), range(c_in)))
        keep_out = list(kept.get((name, "out"), range(c_out)))
        i_in, i_out = torch.tensor(keep_in, dtype=torch.long), torch.tensor(keep_out, dtype=torch.long)
        with torch.no_grad():
            if isinstance(module, _BN):
                for attr in ("weight", "bias"):
                    if getattr(module, attr) is not None:
                        setattr(module, attr, nn.Parameter(getattr(module, attr)[i_out].clone()))
                for attr in ("running_mean", "running_var"):
                    if getattr(module, attr) is not None:
                        setattr(module, attr, getattr(module, attr)[i_out].clone())
                module.num_features = len(keep_out)
                continue
            weight = module.weight[i_out]
            if isinstance(module, _CONV) and module.groups > 1:
                # whole convolution groups go (units guarantee it): the per-group input width stays
                per_in = c_in // module.groups
                module.groups = len(keep_in) // per_in
            else:
                weight = weight[:, i_in]
            module.weight = nn.Parameter(weight.clone())
            if module.bias is not None:
                module.bias = nn.Parameter(module.bias[i_out].clone())
            if isinstance(module, _CONV):
                module.in_channels, module.out_channels = len(keep_in), len(keep_out)
            else:
                module.in_features, module.out_features = len(keep_in), len(keep_out)


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


def _install_gates(net: nn.Module, groups: Sequence[Group], masks: nn.ModuleDict) -> list:
    modules = dict(net.named_modules())
    per_module: dict[str, list[tuple[str, torch.Tensor, torch.Tensor]]] = {}
    for g in groups:
        for slot in g.slots:
            if slot.dim == "in" and _mixes_channels(modules[slot.module]) and slot.positions:
                per_module.setdefault(slot.module, []).append(
                    (g.key, torch.tensor(slot.positions, dtype=torch.long), torch.tensor(slot.units, dtype=torch.long)))
    handles = []
    for name, entries in per_module.items():
        module = modules[name]
        dim = -1 if isinstance(module, nn.Linear) else 1
        handles.append(module.register_forward_pre_hook(_GateInputs(masks, dim, entries)))
    return handles


# --- the exactness check ----------------------------------------------------------------------


def _randomise(net: nn.Module, gen: torch.Generator) -> None:
    """Weights and BN statistics that leave no channel neutral (zero-initialised BN gammas, as in
    timm's residual blocks, would hide a mis-pruned channel)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (*_CONV, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / math.sqrt(fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, _BN) and m.running_var is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                if m.weight is not None:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def random_keep(groups: Sequence[Group], gen: torch.Generator, share: float = 0.5) -> dict[str, list[int]]:
    """A random channel plan keeping about `share` of each group's units (at least one)."""
    keep = {}
    for g in groups:
        n = max(1, round(share * g.units))
        keep[g.point] = sorted(torch.randperm(g.units, generator=gen)[:n].tolist())
    return keep


def _mismatch(net: nn.Module, groups: Sequence[Group], keep: Mapping[str, Sequence[int]],
              dims: Mapping[str, tuple[int, int]], x: torch.Tensor) -> str | None:
    """Why pruning `net` to `keep` does not compute what the masked `net` computes (None: it does)."""
    from pdd_edge.tolerance import LogitTolerance

    masks = nn.ModuleDict()
    for g in groups:
        mask = ChannelMask(g.units)
        with torch.no_grad():
            on = torch.zeros(g.units, dtype=torch.bool)
            on[list(keep[g.point])] = True
            mask.logits.copy_(torch.where(on, 1.0, -1.0))
        masks[g.key] = mask
    handles = _install_gates(net, groups, masks)
    try:
        with torch.no_grad():
            expected = net(x)
    finally:
        for h in handles:
            h.remove()
    pruned = copy.deepcopy(net)
    try:
        _slice(pruned, _sliced_positions(groups, keep, dims))
        with torch.no_grad():
            got = pruned(x)
    except Exception as exc:  # a shape error is the finding, not a crash
        return f"the pruned network fails ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if got.shape != expected.shape:
        return f"the pruned network's output has shape {tuple(got.shape)}, not {tuple(expected.shape)}"
    gap, scale = float((got - expected).abs().max()), float(expected.abs().max())
    tol = LogitTolerance()
    if not gap <= tol.limit(scale):
        return f"removing its channels changes the logits by {gap:.3g} (limit {tol.describe(scale)})"
    return None


def _verify(net: nn.Module, groups: list[Group], example: torch.Tensor, refused: list[str], name: str) -> list[Group]:
    """The groups whose removal reproduces their masks exactly; the others are added to `refused`."""
    if not groups:
        return groups
    gen = torch.Generator().manual_seed(VERIFY_SEED)
    ref = copy.deepcopy(net).eval()
    _randomise(ref, gen)
    _check_runs(ref, example, name)  # other weights may take another path where the real ones did not
    dims = {n: _dims(m) for n, m in ref.named_modules() if isinstance(m, _SLICEABLE)}
    x = torch.randn((2, *example.shape[1:]), generator=gen)
    full = {g.point: list(range(g.units)) for g in groups}
    plan = random_keep(groups, gen)
    if _mismatch(ref, groups, plan, dims, x) is None:
        return groups
    good = []
    for g in groups:  # find the culprits: each group alone, the others at full width
        why = _mismatch(ref, groups, {**full, g.point: plan[g.point]}, dims, x)
        if why is None:
            good.append(g)
        else:
            refused.append(f"{g.root}: {why}")
    if good and _mismatch(ref, good, {g.point: plan[g.point] for g in good}, dims, x) is not None:
        refused.extend(f"{g.root}: exact only alone, not with the other groups" for g in good)
        return []
    return good


# --- the adapter ------------------------------------------------------------------------------


class TracedModel(nn.Module):
    """A network from a model spec, with PDD mask points found by tracing (see the module doc).

    `net` is built at full width by the caller (from the spec); `keep` (None: full width) prunes
    it to a channel plan, so `TracedModel(build(), keep=checkpoint_keep)` rebuilds a pruned
    network exactly as `prune` made it. State-dict keys are the network's own under `net.`.
    """

    def __init__(self, net: nn.Module, *, name: str, num_classes: int, input_hw: tuple[int, int],
                 keep: Mapping[str, Sequence[int]] | None = None, extra: Mapping[str, Any] | None = None,
                 check_output: bool = True) -> None:
        super().__init__()
        self.name = name
        self.num_classes = num_classes
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.extra = dict(extra or {})  # builder arguments and source, recorded by arch_args
        net.eval()  # trace in eval mode: batch-1 BN statistics would fail on 1x1 feature maps
        example = torch.zeros(1, 3, *self.input_hw)
        _check_runs(net, example, name)
        with torch.random.fork_rng(devices=[]):
            groups, refused = _trace_groups(net, example, name)
            groups = _verify(net, groups, example, refused, name)
        self.full_groups = groups
        self.refused = refused
        self._full_dims = {n: _dims(m) for n, m in net.named_modules() if isinstance(m, _SLICEABLE)}
        full = {g.point: list(range(g.units)) for g in groups}
        self.keep = {k: list(v) for k, v in (keep or full).items()}
        _check_keep(self.keep, full, name)
        if keep is not None:
            _slice(net, _sliced_positions(groups, self.keep, self._full_dims))
        self.net = net
        self.groups = _current(groups, self.keep, self._full_dims)
        self.pdd_masks = nn.ModuleDict({g.key: nn.Identity() for g in groups})
        _install_gates(self.net, self.groups, self.pdd_masks)
        self._probes: dict[tuple[int, int], list[tuple[str, int]]] = {}
        if check_output:
            self._check_output()

    def _check_output(self) -> None:
        """Refuse a network whose output is not (N, num_classes) logits in eval and in training
        mode (a tuple of heads, e.g. auxiliary classifiers; another class count because the builder
        ignored num_classes; a feature map)."""
        was = self.net.training
        buffers = {k: b.clone() for k, b in self.net.named_buffers()}  # a training-mode pass moves BN statistics
        try:
            with torch.no_grad():
                self.net.train()
                train_out = self.net(torch.zeros(2, 3, *self.input_hw))
                self.net.eval()
                out = self.net(torch.zeros(1, 3, *self.input_hw))
        finally:
            self.net.train(was)
            with torch.no_grad():
                for k, b in self.net.named_buffers():
                    b.copy_(buffers[k])
        for mode, value in (("", out), (" in training mode", train_out)):
            if not isinstance(value, torch.Tensor):
                raise PddError(f"{self.name} returns {type(value).__name__}{mode}, not a tensor of logits (auxiliary "
                               "heads? e.g. --model-arg aux_logits=false); make forward return (N, classes) logits")
        if tuple(out.shape) != (1, self.num_classes):
            raise PddError(f"{self.name} returns outputs of shape {tuple(out.shape)} for one image; expected (1, "
                           f"{self.num_classes}) logits: does its builder take num_classes?")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    # --- PrunableModel ----------------------------------------------------------------------
    def mask_points(self) -> dict[str, int]:
        return {g.point: g.units for g in self.groups}

    def point_label(self, point: str) -> str:
        """The layer whose output channels define the group, and how many layers share them."""
        group = next(g for g in self.groups if g.point == point)
        others = len({s.module for s in group.slots}) - 1
        return f"{group.root} (+{others} layers)" if others else group.root

    def is_pruned(self) -> bool:
        return any(len(self.keep[g.point]) != g.units for g in self.full_groups)

    def may_vanish(self, point: str) -> bool:
        return False  # a traced group's channels may feed a residual stream or the classifier

    def arch_args(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "keep": self.keep, "input_size": list(self.input_hw), **self.extra}

    def pruned_state(self, local: Mapping[str, Sequence[int]]) -> dict[str, torch.Tensor]:
        net = copy.deepcopy(self.net)
        remove_gates(net)  # the copy's gates are not part of the pruned network
        _slice(net, _sliced_positions(self.groups, local, {n: _dims(m) for n, m in net.named_modules()
                                                            if isinstance(m, _SLICEABLE)}))
        return {f"net.{k}": v for k, v in net.state_dict().items()}

    def _channels(self, counts: Mapping[str, Any]):
        """channels(layer, "in" | "out") when group `point` keeps `counts[point]` units: every
        sliced layer's channel count is its fixed part plus, per group, the open units times the
        channels per unit."""
        modules = dict(self.net.named_modules())
        points = self.mask_points()
        terms: dict[tuple[str, str], list[tuple[str, int]]] = {}
        for g in self.groups:
            for slot in g.slots:
                terms.setdefault((slot.module, slot.dim), []).append((g.point, len(slot.positions) // max(g.units, 1)))

        def channels(name: str, dim: str) -> Any:
            width = _dims(modules[name])[0 if dim == "in" else 1]
            parts = terms.get((name, dim), [])
            fixed = width - sum(per * points[p] for p, per in parts)
            value: Any = fixed
            for point, per in parts:
                value = value + counts[point] * per
            return value

        return channels

    def layer_widths(self, counts: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        channels = self._channels(counts)
        return {f"net.{name}": (channels(name, "in"), channels(name, "out")) for name, module in self.net.named_modules()
                if isinstance(module, (*_CONV, nn.Linear)) and not isinstance(module, nn.modules.conv._ConvTransposeNd)}

    def cost(self, counts: Mapping[str, Any], input_hw: tuple[int, int]) -> Cost:
        """MACs/params when group `point` keeps `counts[point]` units (see `_channels`)."""
        modules = dict(self.net.named_modules())
        channels = self._channels(counts)
        c = Cost()
        sliced_params = 0
        for name, module in modules.items():
            if isinstance(module, nn.modules.conv._ConvTransposeNd):  # never sliced: its MACs are fixed
                c.macs = c.macs + sum(module.weight.numel() * n for used, n in self._probe(input_hw) if used == name)
            if not isinstance(module, _SLICEABLE) or isinstance(module, nn.modules.conv._ConvTransposeNd):
                continue
            sliced_params += sum(p.numel() for p in module.parameters(recurse=False))
            c_out = channels(name, "out")
            if isinstance(module, _BN):
                if module.weight is not None:
                    c.add_params(2 * c_out)
                continue
            if isinstance(module, _CONV) and module.groups > 1:
                per_out = module.in_channels // module.groups  # inputs each output channel reads
            else:
                per_out = channels(name, "in")
            kernel = module.weight[0, 0].numel()
            c.add_params(per_out * c_out * kernel + (c_out if module.bias is not None else 0))
            for _, elements in (u for u in self._probe(input_hw) if u[0] == name):
                c.macs = c.macs + per_out * c_out * kernel * elements
        c.add_params(sum(p.numel() for p in self.parameters() if p.requires_grad) - sliced_params
                     - sum(m.logits.numel() for m in self.pdd_masks.values() if hasattr(m, "logits")))
        return c

    def _probe(self, input_hw: tuple[int, int]) -> list[tuple[str, int]]:
        """(layer, output elements per output channel) for every conv/linear call at `input_hw`."""
        key = (int(input_hw[0]), int(input_hw[1]))
        if key not in self._probes:
            uses: list[tuple[str, int]] = []
            handles = []
            for name, module in self.net.named_modules():
                if isinstance(module, (*_CONV, nn.Linear, nn.modules.conv._ConvTransposeNd)):
                    def hook(mod, inp, out, name=name):
                        if isinstance(mod, nn.modules.conv._ConvTransposeNd):  # fvcore: weight x input positions
                            uses.append((name, inp[0][0, 0].numel()))
                        elif isinstance(mod, _CONV):
                            uses.append((name, out.numel() // (out.shape[0] * out.shape[1])))
                        else:
                            uses.append((name, out.numel() // out.shape[-1]))
                    handles.append(module.register_forward_hook(hook))
            was = self.training
            self.eval()
            try:
                with torch.no_grad():  # on the net's device: a model training on a GPU probes there
                    self.net(torch.zeros(1, 3, *key, device=next(self.net.parameters()).device))
            finally:
                for h in handles:
                    h.remove()
                self.train(was)
            self._probes[key] = uses
        return self._probes[key]


def _check_runs(net: nn.Module, example: torch.Tensor, name: str) -> None:
    """The network must run on an image of its input size, and take the same layers whatever the
    image: tracing follows one path, so data-dependent control flow would leave layers out."""
    paths = []
    gen = torch.Generator().manual_seed(VERIFY_SEED)
    inputs = [example] + [torch.randn(example.shape, generator=gen) * s for s in (1.0, -3.0, 0.1, 10.0)]
    for x in inputs:
        called: list[str] = []
        handles = [m.register_forward_hook(lambda mod, i, o, n=n: called.append(n))
                   for n, m in net.named_modules() if isinstance(m, (*_CONV, nn.Linear))]
        try:
            with torch.no_grad():
                net(x)
        except Exception as exc:  # the user's network: any failure is theirs to see, in one line
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise PddError(f"{name} fails on a {tuple(example.shape)} input: {type(exc).__name__}: {first}; "
                           "does it need another --input-size?") from None
        finally:
            for h in handles:
                h.remove()
        paths.append(called)
    differ = sorted(set().union(*map(set, paths)) - set(paths[0]).intersection(*map(set, paths[1:])))
    if differ or any(p != paths[0] for p in paths):
        raise PddError(f"{name} runs different layers for different images (data-dependent control flow, at "
                       f"{shortlist(differ) if differ else 'the order of its layers'}); tracing follows one path, "
                       "so pdd-edge cannot prune it exactly")


def with_metadata(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """`state` with `model`'s own state-dict metadata (module versions): some modules refuse a
    state dict without it (torchvision's MNASNet checks its version), and checkpoints, saved as
    plain dicts, do not carry it."""
    from collections import OrderedDict

    out = OrderedDict(state)
    meta = OrderedDict(getattr(model.state_dict(), "_metadata", {}))
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            meta.pop(name, None)  # no version: BN then fills in a missing num_batches_tracked (old checkpoints)
    out._metadata = meta  # type: ignore[attr-defined]
    return out


def _check_keep(keep: Mapping[str, Sequence[int]], full: Mapping[str, Sequence[int]], name: str) -> None:
    if set(keep) != set(full):
        missing, extra = sorted(set(full) - set(keep)), sorted(set(keep) - set(full))
        raise PddError(f"the channel plan does not fit {name} (missing {shortlist(missing)}; unexpected "
                       f"{shortlist(extra)}): was the checkpoint made with another version of the model?")
    for point, idx in keep.items():
        width = len(full[point])
        if not idx or list(idx) != sorted(set(idx)) or any(not 0 <= i < width for i in idx):
            raise PddError(f"the channel plan for {point} of {name} must be 1 to {width} sorted distinct indices below {width}")
