"""Group discovery: Torch-Pruning's dependency graph read as slots, under a time limit, and a
one-line diagnosis when its tracer fails."""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Mapping

import torch
from torch import nn

from pdd_edge.errors import PddError
from pdd_edge.zoo.traced.groups import Group, Slot
from pdd_edge.zoo.traced.layers import BN, CONV, SLICEABLE, TRANSPOSED
from pdd_edge.zoo.traced.units import merge_units

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


def trace_groups(net: nn.Module, example: torch.Tensor, spec_name: str) -> tuple[list[Group], list[str]]:
    """Groups of `net` at full width from Torch-Pruning's dependency graph, plus refusals."""
    names = {m: n for n, m in net.named_modules()}
    dg, raw = _dependency_groups(net, example, names, spec_name)
    refused: list[str] = []
    slots_of: list[list[Slot]] = []
    for group in raw:
        slots, problem = _read_group(dg, group, names)
        if problem is not None:
            refused.append(f"{_root_name(group, names)}: {problem}")
        slots_of.append(slots if problem is None else [])
    roots = [_root_name(group, names) for group in raw]
    widths = [len(group[0].idxs) for group in raw]
    return merge_units(net, roots, slots_of, widths, refused), refused


def _dependency_groups(net: nn.Module, example: torch.Tensor, names: Mapping[nn.Module, str], spec_name: str):
    """Torch-Pruning's dependency graph of `net` and its groups, the output layers left out; a
    failure or a search past TRACE_SECONDS is a PddError in one line."""
    import torch_pruning as tp

    try:
        with warnings.catch_warnings(), _time_limit(TRACE_SECONDS):
            warnings.simplefilter("ignore")
            dg = tp.DependencyGraph().build_dependency(net, example_inputs=example, verbose=False)
            outputs = _output_layers(dg)
            raw = list(dg.get_all_groups(ignored_layers=outputs, root_module_types=(*CONV, nn.Linear)))
    except _TraceTimeout:
        raise PddError(f"Torch-Pruning's dependency analysis of {spec_name} did not finish in {TRACE_SECONDS:g} s "
                       "(its group search grows exponentially on some graphs); pdd-edge cannot prune this model "
                       "(PDD_EDGE_TRACE_SECONDS raises the limit)") from None
    except Exception as exc:  # Torch-Pruning's tracer fails in many shapes; the user needs one line
        raise PddError(f"cannot trace {spec_name} to find its channel groups: {_failing_op(exc, names)}; "
                       "pdd-edge prunes networks that Torch-Pruning's DependencyGraph can trace") from None
    return dg, raw


def _output_layers(dg) -> list[nn.Module]:
    """Conv/linear layers whose output reaches the model's output with no such layer between."""
    found: list[nn.Module] = []
    seen: set[int] = set()
    stack = [n for n in dg.module2node.values() if not n.outputs]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.module, (*CONV, nn.Linear)):
            found.append(node.module)
            continue
        stack.extend(node.inputs)
    return found


def _read_group(dg, group, names: Mapping[nn.Module, str]) -> tuple[list[Slot], str | None]:
    """One Torch-Pruning group as slots, or why pdd-edge cannot remove it exactly."""
    width = len(group[0].idxs)
    slots: dict[tuple[str, str], Slot] = {}
    for item in group:
        module, handler = item.dep.target.module, item.dep.handler
        if isinstance(module, nn.Module) and module.__class__.__module__.startswith("torch_pruning"):
            continue  # Torch-Pruning's stand-ins for add/cat/split/reshape: nothing to slice
        if not isinstance(module, SLICEABLE) or isinstance(module, TRANSPOSED):
            what = names.get(module, type(module).__name__) if isinstance(module, nn.Module) else "a bare parameter"
            return [], f"{what} ({type(module).__name__}) cannot be sliced by pdd-edge"
        dim = "out" if dg.is_out_channel_pruning_fn(handler) or isinstance(module, BN) else "in"
        dims = [dim]
        if dim == "out" and isinstance(module, CONV) and module.groups == module.out_channels > 1:
            # Torch-Pruning's depthwise handler removes input and output channel together
            if module.in_channels != module.out_channels:
                return [], f"{names[module]} is a depthwise convolution with a channel multiplier"
            dims.append("in")
        for d in dims:
            slot = slots.setdefault((names[module], d), Slot(names[module], d, [], []))
            slot.positions.extend(int(i) for i in item.idxs)
            slot.units.extend(int(r) for r in item.root_idxs)
    for slot in slots.values():
        if sorted(set(slot.units)) != list(range(width)):
            return [], (f"{slot.module} sees only some of its channels (a split or slice): the cost of a "
                        "mask pattern would depend on which channels close, not how many")
    return list(slots.values()), None


def _root_name(group, names: Mapping[nn.Module, str]) -> str:
    module = group[0].dep.target.module
    return names.get(module, type(module).__name__)


# --- failure diagnosis -------------------------------------------------------------------------


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
