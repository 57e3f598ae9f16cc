"""latency/table.py: the layer plan a table measures, its channel counts, and the plans it checks the fit on."""

from __future__ import annotations

import random

import pytest

from pdd_edge import zoo
from pdd_edge.latency import layers
from pdd_edge.latency.plan import grid_counts, random_plan


def test_grid_counts_are_shares_rounded_up_to_the_channel_multiple():
    assert grid_counts(64, 1) == (8, 16, 32, 48, 64)
    assert grid_counts(64, 16) == (16, 32, 48, 64)
    assert grid_counts(16, 16) == (16,)
    assert grid_counts(10, 16) == (10,)  # a layer narrower than the multiple keeps its width


@pytest.mark.parametrize("name", ["resnet20", "vgg11", "torchvision:mobilenet_v2"])
def test_layer_widths_and_probed_geometry_give_the_cost_formula_macs(name):
    """The latency table sees exactly the layers the MACs formula counts, with the same widths."""
    model = zoo.build(name, input_size=(32, 32))
    rng = random.Random(0)
    counts = {p: rng.randint(1, n) for p, n in model.mask_points().items()}
    widths = model.layer_widths(counts)
    shapes = layers.layer_geometry(model, (32, 32), set(widths))
    macs = 0
    for layer, (c_in, c_out) in widths.items():
        s = shapes[layer]
        if s.op == "linear":
            macs += c_in * c_out * s.rows
        else:
            per_out = s.full_in // s.groups if s.grouped else c_in
            macs += per_out * c_out * s.kernel[0] * s.kernel[1] * s.out_hw[0] * s.out_hw[1]
    assert macs == int(model.cost(counts, (32, 32)).macs)


def test_thinnest_plan_removes_every_vanishing_layer_and_keeps_the_multiple_elsewhere():
    from pdd_edge.latency.plan import thinnest_plan

    model = zoo.build("resnet20")
    plan = thinnest_plan(model, 16)
    assert all(v == [] if model.may_vanish(p) else v == list(range(16)) for p, v in plan.items())
    assert set(plan) == set(model.mask_points())


def test_random_plans_keep_multiples_of_the_channel_multiple_and_may_remove_blocks():
    model = zoo.build("resnet20")
    plan = random_plan(model, 0.5, 8, random.Random(1))
    assert all(len(v) % 8 == 0 and (len(v) >= 8 or model.may_vanish(p)) for p, v in plan.items())
    assert plan != random_plan(model, 0.5, 8, random.Random(2))
    thin = [random_plan(model, 0.3, 8, random.Random(k)) for k in range(5)]
    assert any(not v for p in thin for v in p.values())  # some inner layers removed: calibrated too
    assert all(v for p in thin for k, v in p.items() if not model.may_vanish(k))
