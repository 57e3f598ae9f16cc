import random

import pytest
import torch

from pdd_edge import zoo
from pdd_edge.zoo.cost import fvcore_counts
from pdd_edge.zoo.masked import MaskedNetwork

FAMILIES = ["resnet20", "resnet32", "vgg11", "vgg13"]


def random_logits(model, rng: random.Random, p_open: float, allow_empty_mid: bool = True):
    logits = {}
    for point, channels in model.mask_points().items():
        open_ = [rng.random() < p_open for _ in range(channels)]
        must_keep_one = not (allow_empty_mid and point.endswith("gate_mid"))
        if must_keep_one and not any(open_):
            open_[rng.randrange(channels)] = True
        logits[point] = torch.tensor([0.5 if o else -0.5 for o in open_])
    return logits


def keep_from_logits(logits):
    return {p: [i for i, v in enumerate(t.tolist()) if v >= 0] for p, t in logits.items()}


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("p_open", [0.2, 0.5, 0.9])
def test_masked_cost_equals_fvcore_count_of_equivalent_dense_smaller_model(name, p_open):
    rng = random.Random(hash((name, p_open)) & 0xFFFF)
    masked = zoo.build(name)
    MaskedNetwork.attach(masked)
    logits = random_logits(masked, rng, p_open)
    counts = MaskedNetwork.load(masked, logits).open_counts()
    formula = masked.cost(counts, (32, 32)).as_ints()
    dense_small = zoo.build(name, keep=keep_from_logits(logits))
    assert formula == fvcore_counts(dense_small, (32, 32))


def test_masked_cost_counts_a_block_without_inner_channels_as_its_branch_bias_only():
    model = zoo.build("resnet20")
    points = MaskedNetwork.attach(model, "open").points
    logits = {p: torch.full((c,), 0.5) for p, c in points.items()}
    logits["layer2.1.gate_mid"][:] = -0.5
    counts = MaskedNetwork.load(model, logits).open_counts()
    full = zoo.build("resnet20").cost(points, (32, 32)).as_ints()
    cost = model.cost(counts, (32, 32)).as_ints()
    convs = 2 * 32 * 32 * 9 * 16 * 16  # two 32->32 3x3 convs on a 16x16 map
    assert full["macs"] - cost["macs"] == convs
    assert full["params"] - cost["params"] == 2 * (32 * 32 * 9) + 2 * 32 + 2 * 32 - 32


def test_masked_cost_at_larger_input_scales_with_spatial_area():
    model = zoo.build("resnet20")
    c32 = model.cost(model.mask_points(), (32, 32)).as_ints()["macs"]
    c64 = model.cost(model.mask_points(), (64, 64)).as_ints()["macs"]
    linear = 64 * 10
    assert c64 - linear == 4 * (c32 - linear)
    assert fvcore_counts(model, (64, 64))["macs"] == c64
