"""What a latency table measures of a network: its layer grids and its whole networks.

Every distinct layer geometry of the full-width network is timed alone over a grid of channel
counts (GRID_SHARES of each free width, rounded to the channel multiple). Whole networks are
timed as `compress` deploys them: the full-width one, randomly thinned ones to fit the
calibration on (FIT_SHARES) and to check it on (CHECK_SHARES), and the thinnest one the pruned
widths allow.
"""

from __future__ import annotations

import random

from pdd_edge.latency.layers import layer_geometry

GRID_SHARES = (0.125, 0.25, 0.5, 0.75, 1.0)
FIT_SHARES = (0.8, 0.6, 0.45, 0.3)  # thinned networks the calibration is fitted on (with the full one)
CHECK_SHARES = (0.9, 0.7, 0.5, 0.35)  # thinned networks it is checked on
VANISH = 0.5  # a layer that may be removed (a block's inner layer) is, with chance VANISH * (1 - share)


def grid_counts(full: int, multiple: int) -> tuple[int, ...]:
    """The counts a free width is measured at: GRID_SHARES of it, rounded up to the multiple."""
    step = min(multiple, full)
    counts = {min(full, max(step, -(-round(full * s) // step) * step)) for s in GRID_SHARES}
    return tuple(sorted(counts))


def _free_dims(arch) -> dict[str, tuple[bool, bool]]:
    """Per layer: whether its input / output width depends on the masks."""
    full = arch.layer_widths(arch.mask_points())
    empty = arch.layer_widths({p: 0 for p in arch.mask_points()})
    return {n: (int(empty[n][0]) != int(full[n][0]), int(empty[n][1]) != int(full[n][1])) for n in full}


def layer_plan(model, input_hw: tuple[int, int], multiple: int) -> tuple[dict[str, str], dict[str, dict]]:
    """(layer -> grid key, grid key -> {"shape", "counts_in", "counts_out"}) of a full-width network."""
    from pdd_edge.zoo.protocol import prunable

    arch = prunable(model)
    free = _free_dims(arch)
    shapes = layer_geometry(model, input_hw, set(free))
    layers: dict[str, str] = {}
    plans: dict[str, dict] = {}
    for name, shape in shapes.items():
        free_in, free_out = free[name]
        if shape.grouped:
            per = shape.full_out // shape.groups
            units = grid_counts(shape.groups, max(1, multiple // per)) if free_out else (shape.groups,)
            counts_in, counts_out = (), tuple(u * per for u in units)
        else:
            counts_in = grid_counts(shape.full_in, multiple) if free_in else (shape.full_in,)
            counts_out = grid_counts(shape.full_out, multiple) if free_out else (shape.full_out,)
        key = f"{shape.key} in{','.join(map(str, counts_in))} out{','.join(map(str, counts_out))}"
        layers[name] = key
        plans.setdefault(key, {"shape": shape, "counts_in": counts_in, "counts_out": counts_out})
    return layers, plans


def thinnest_plan(arch, multiple: int) -> dict[str, list[int]]:
    """The thinnest network the pruned widths allow: every layer that may vanish gone, every other
    one at the channel multiple (its first channels)."""
    return {p: [] if arch.may_vanish(p) else list(range(min(n, multiple))) for p, n in arch.mask_points().items()}


def random_plan(arch, share: float, multiple: int, rng: random.Random) -> dict[str, list[int]]:
    """A thinned channel plan: about `share` of each mask point's channels (between 0.75 and 1.25
    times it, per point), a multiple of the channel multiple, at random positions; some of the
    layers that may vanish are removed, as PDD removes whole blocks of a thin network."""
    keep = {}
    for point, full in arch.mask_points().items():
        if share < 1 and arch.may_vanish(point) and rng.random() < VANISH * (1 - share):
            keep[point] = []
            continue
        step = min(multiple, full)
        want = full * share * rng.uniform(0.75, 1.25)
        n = min(full, max(step, round(want / step) * step))
        keep[point] = sorted(rng.sample(range(full), n)) if share < 1 else list(range(full))
    return keep


def network_plans(arch, multiple: int, rng: random.Random) -> list[tuple[str, float, dict[str, list[int]]]]:
    """(kind, share of the channels, channel plan) of every whole network to measure: the dense
    one, the fit and check ones, and the thinnest ("floor")."""
    networks = [("dense", 1.0, arch.keep)]
    for kind, shares in (("fit", FIT_SHARES), ("check", CHECK_SHARES)):
        networks += [(kind, s, random_plan(arch, s, multiple, rng)) for s in shares]
    # The thinnest network measured too: the linear fit extrapolates below it (a ResNet20 floor
    # predicted at -0.03 ms), and a request below what the device can run must be refused.
    networks.append(("floor", 0.0, thinnest_plan(arch, multiple)))
    return networks
