import random

import pytest
import torch

from pdd_edge import zoo
from pdd_edge.zoo.cost import fvcore_counts
from pdd_edge.zoo.masks import attach_masks, load_mask_logits, mask_points, open_counts

FAMILIES = ["resnet20", "resnet32", "vgg11", "vgg13"]


def random_logits(model, rng: random.Random, p_open: float, allow_empty_mid: bool = True):
    logits = {}
    for point, channels in mask_points(model).items():
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
    attach_masks(masked)
    logits = random_logits(masked, rng, p_open)
    load_mask_logits(masked, logits)
    formula = masked.cost(open_counts(masked), (32, 32)).as_ints()
    dense_small = zoo.build(name, keep=keep_from_logits(logits))
    assert formula == fvcore_counts(dense_small, (32, 32))


def test_masked_cost_counts_a_block_without_inner_channels_as_its_branch_bias_only():
    model = zoo.build("resnet20")
    attach_masks(model, "open")
    logits = {p: torch.full((c,), 0.5) for p, c in mask_points(model).items()}
    logits["layer2.1.gate_mid"][:] = -0.5
    load_mask_logits(model, logits)
    full = zoo.build("resnet20").cost(mask_points(zoo.build("resnet20")), (32, 32)).as_ints()
    cost = model.cost(open_counts(model), (32, 32)).as_ints()
    convs = 2 * 32 * 32 * 9 * 16 * 16  # two 32->32 3x3 convs on a 16x16 map
    assert full["macs"] - cost["macs"] == convs
    assert full["params"] - cost["params"] == 2 * (32 * 32 * 9) + 2 * 32 + 2 * 32 - 32


def test_masked_cost_at_larger_input_scales_with_spatial_area():
    model = zoo.build("resnet20")
    c32 = model.cost(mask_points(model), (32, 32)).as_ints()["macs"]
    c64 = model.cost(mask_points(model), (64, 64)).as_ints()["macs"]
    linear = 64 * 10
    assert c64 - linear == 4 * (c32 - linear)
    assert fvcore_counts(model, (64, 64))["macs"] == c64
