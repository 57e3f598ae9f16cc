"""Trust, but verify: the network runs the same layers for any image, and a seeded check with
randomised weights compares the masked and the pruned network, so a group whose removal does not
reproduce its mask is refused instead of mis-pruned."""

from __future__ import annotations

import copy
import math
from typing import Mapping, Sequence

import torch
from torch import nn

from pdd_edge.errors import PddError, shortlist
from pdd_edge.zoo.masks import ChannelMask
from pdd_edge.zoo.traced.gates import install_gates
from pdd_edge.zoo.traced.groups import Group
from pdd_edge.zoo.traced.layers import BN, CONV, sliceable_dims
from pdd_edge.zoo.traced.slicing import slice_layers, sliced_positions

VERIFY_SEED = 20240601  # the exactness check is seeded: the same model always gets the same groups


def check_runs(net: nn.Module, example: torch.Tensor, name: str) -> None:
    """The network must run on an image of its input size, and take the same layers whatever the
    image: tracing follows one path, so data-dependent control flow would leave layers out."""
    paths = []
    gen = torch.Generator().manual_seed(VERIFY_SEED)
    inputs = [example] + [torch.randn(example.shape, generator=gen) * s for s in (1.0, -3.0, 0.1, 10.0)]
    for x in inputs:
        called: list[str] = []
        handles = [m.register_forward_hook(lambda mod, i, o, n=n: called.append(n))
                   for n, m in net.named_modules() if isinstance(m, (*CONV, nn.Linear))]
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


def randomise(net: nn.Module, gen: torch.Generator) -> None:
    """Weights and BN statistics that leave no channel neutral (zero-initialised BN gammas, as in
    timm's residual blocks, would hide a mis-pruned channel)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (*CONV, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / math.sqrt(fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, BN) and m.running_var is not None:
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
              widths: Mapping[str, tuple[int, int]], x: torch.Tensor) -> str | None:
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
    handles = install_gates(net, groups, masks)
    try:
        with torch.no_grad():
            expected = net(x)
    finally:
        for h in handles:
            h.remove()
    pruned = copy.deepcopy(net)
    try:
        slice_layers(pruned, sliced_positions(groups, keep, widths))
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


def verify_groups(net: nn.Module, groups: list[Group], example: torch.Tensor, refused: list[str], name: str) -> list[Group]:
    """The groups whose removal reproduces their masks exactly; the others are added to `refused`."""
    if not groups:
        return groups
    gen = torch.Generator().manual_seed(VERIFY_SEED)
    ref = copy.deepcopy(net).eval()
    randomise(ref, gen)
    check_runs(ref, example, name)  # other weights may take another path where the real ones did not
    widths = sliceable_dims(ref)
    x = torch.randn((2, *example.shape[1:]), generator=gen)
    full = {g.point: list(range(g.units)) for g in groups}
    plan = random_keep(groups, gen)
    if _mismatch(ref, groups, plan, widths, x) is None:
        return groups
    good = []
    for g in groups:  # find the culprits: each group alone, the others at full width
        why = _mismatch(ref, groups, {**full, g.point: plan[g.point]}, widths, x)
        if why is None:
            good.append(g)
        else:
            refused.append(f"{g.root}: {why}")
    if good and _mismatch(ref, good, {g.point: plan[g.point] for g in good}, widths, x) is not None:
        refused.extend(f"{g.root}: exact only alone, not with the other groups" for g in good)
        return []
    return good
