"""Exactness of physical pruning: the pruned network computes what the masked network computes."""

import functools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdd_edge import zoo
from pdd_edge.errors import PddError
from pdd_edge.nn.pruning import masked_reference, max_logit_gap, plan_from_masks, prune
from pdd_edge.zoo.cost import fvcore_counts
from pdd_edge.zoo.masked import MaskedNetwork
from tests.latency.synthetic import synthetic_table

TOL = 1e-4


@functools.lru_cache(maxsize=None)
def trained_looking(name: str) -> dict:
    """State of a zoo model with non-trivial BN statistics and affine parameters (seeded)."""
    g = torch.Generator().manual_seed(0)
    model = zoo.build(name)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(0.5 + torch.randn(n, generator=g) * 0.1)  # keeps deep residual streams O(1)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
    if name.startswith("vgg"):  # default-initialised classifiers give logits ~0.05: scale them to O(1)
        model.classifier[6].weight.data.mul_(30)
    return model.state_dict()


def masked_model(name: str, logits_fn) -> torch.nn.Module:
    model = zoo.build(name)
    model.load_state_dict(trained_looking(name))
    points = MaskedNetwork.attach(model).points
    MaskedNetwork.load(model, {p: logits_fn(p, c) for p, c in points.items()})
    return model.eval()


def check_exact(model: torch.nn.Module, name: str, round_to: int = 1):
    masked = MaskedNetwork(model)
    plan = plan_from_masks(masked, round_to)
    pruned = prune(masked, name, plan)
    reference = masked_reference(masked, plan)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert max_logit_gap(reference.net, pruned, x) <= TOL
    assert fvcore_counts(pruned, (32, 32)) == reference.cost((32, 32)).as_ints()
    return plan, pruned


@pytest.mark.parametrize("name", list(zoo.MODELS))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p_open=st.floats(0.0, 1.0), seed=st.integers(0, 2**16), round_to=st.sampled_from([1, 1, 4, 8]))
def test_prune_matches_masked_model_for_any_mask_pattern(name, p_open, seed, round_to):
    g = torch.Generator().manual_seed(seed)

    def logits(point, channels):
        return torch.where(torch.rand(channels, generator=g) < p_open, 1.0, -1.0) * torch.rand(channels, generator=g)

    model = masked_model(name, logits)
    plan, pruned = check_exact(model, name, round_to)
    for point, kept in plan.local.items():
        if round_to > 1 and kept:
            assert len(kept) % round_to == 0 or len(kept) == MaskedNetwork(model).points[point]


def test_prune_block_with_all_inner_channels_closed_keeps_only_its_identity_path():
    model = masked_model("resnet20", lambda p, c: torch.full((c,), -0.3 if p == "layer2.1.gate_mid" else 0.3))
    _, pruned = check_exact(model, "resnet20")
    block = pruned.layer2[1]
    assert block.c_mid == 0 and not hasattr(block, "conv1") and block.branch_bias.shape == (32,)


def test_prune_residual_stream_with_different_channels_per_block_uses_an_index_map():
    def logits(point, channels):
        t = torch.full((channels,), 0.3)
        if point == "layer1.0.gate_out":
            t[:8] = -0.3  # block 0 keeps channels 8..15
        if point == "layer1.1.gate_out":
            t[4:12] = -0.3  # block 1 keeps 0..3 and 12..15
        return t

    model = masked_model("resnet20", logits)
    plan, pruned = check_exact(model, "resnet20")
    # Block 1's identity input is block 0's output (8..15); its output is 0..3,12..15: channels
    # 12..15 come from input positions 4..7, channels 0..3 have no input (the zero channel, 8).
    assert pruned.layer1[1].shortcut.index.tolist() == [8, 8, 8, 8, 4, 5, 6, 7]


def test_prune_layer_with_every_channel_closed_keeps_strongest_and_says_so():
    def logits(point, channels):
        t = torch.full((channels,), 0.3)
        if point == "layer3.0.gate_out":
            t = -torch.rand(channels, generator=torch.Generator().manual_seed(0)) - 0.1
            t[37] = -0.01  # the largest mask value
        return t

    model = masked_model("resnet20", logits)
    plan, pruned = check_exact(model, "resnet20")
    assert plan.local["layer3.0.gate_out"] == [37] and plan.reopened["layer3.0.gate_out"] == 1
    assert any("layer3.0.gate_out" in n and "largest mask value" in n for n in plan.notes)


def test_prune_vgg_layer_with_every_channel_closed_keeps_one_channel():
    model = masked_model("vgg11", lambda p, c: torch.full((c,), -0.2 if p == "gates.3" else 0.2))
    plan, pruned = check_exact(model, "vgg11")
    assert len(plan.keep["gates.3"]) == 1 and pruned.features[11].out_channels == 1  # 4th conv


def test_prune_round_to_reopens_strongest_closed_channels():
    def logits(point, channels):
        t = torch.full((channels,), -0.5)
        t[:5] = 0.5  # five open: rounds up to 8
        t[10], t[11], t[12] = -0.01, -0.02, -0.03  # the three strongest closed ones
        return t

    model = masked_model("vgg11", logits)
    plan, _ = check_exact(model, "vgg11", round_to=8)
    assert plan.local["gates.0"] == [0, 1, 2, 3, 4, 10, 11, 12]
    assert plan.reopened_total == 3 * len(MaskedNetwork(model).points)


def test_prune_twice_composes_channel_plans_against_full_width():
    first = masked_model("resnet20", lambda p, c: torch.where(torch.arange(c) % 2 == 0, 0.5, -0.5))
    plan1, pruned1 = check_exact(first, "resnet20")
    points = MaskedNetwork.attach(pruned1).points
    MaskedNetwork.load(pruned1, {p: torch.where(torch.arange(c) < c // 2, 0.5, -0.5) for p, c in points.items()})
    plan2, _ = check_exact(pruned1.eval(), "resnet20")
    assert plan2.keep["layer3.2.gate_out"] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30]


def test_plan_from_masks_without_masks_is_an_error():
    with pytest.raises(PddError, match="no masks"):
        plan_from_masks(MaskedNetwork(zoo.build("resnet20")))


@pytest.mark.parametrize("name, round_to", [("resnet20", 1), ("resnet20", 4), ("vgg11", 1)])
def test_macs_ceiling_closes_the_weakest_open_channels_and_stays_exact(name, round_to):
    g = torch.Generator().manual_seed(3)
    model = masked_model(name, lambda p, c: torch.rand(c, generator=g) + 0.01)  # every channel open, distinct values
    masked = MaskedNetwork(model)
    dense = int(model.cost(masked.points, (32, 32)).macs)
    ceiling = dense // 2
    plan = plan_from_masks(masked, round_to, max_macs=ceiling, input_hw=(32, 32))
    counts = {p: len(idx) for p, idx in plan.local.items() if p in masked.points}
    after = int(model.cost(counts, (32, 32)).macs)
    assert after <= ceiling and plan.closed_total > 0
    assert all(len(idx) % round_to == 0 or len(idx) == masked.points[p] for p, idx in counts.items() for idx in [plan.local[p]])
    for point, idx in plan.local.items():  # the closed channels are the ones with the smallest mask values
        logits = model.get_submodule(point).logits.detach()
        closed = [i for i in range(logits.numel()) if i not in idx]
        if closed and idx:
            assert float(logits[closed].max()) <= float(logits[idx].min()) + 1e-9 or round_to > 1
    check = masked_reference(masked, plan)
    pruned = prune(masked, name, plan)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert max_logit_gap(check.net, pruned, x) <= TOL


def test_macs_ceiling_already_met_closes_nothing():
    model = masked_model("resnet20", lambda p, c: torch.full((c,), 0.5))
    masked = MaskedNetwork(model)
    dense = int(model.cost(masked.points, (32, 32)).macs)
    plan = plan_from_masks(masked, 1, max_macs=dense, input_hw=(32, 32))
    assert plan.closed_total == 0 and plan.notes == []


def test_prune_latency_target_lands_on_the_nearest_width_plan():
    model = zoo.build("resnet20")
    table = synthetic_table(model)
    masked = MaskedNetwork.attach(model, "open")
    dense = table.predict(model.layer_widths(model.mask_points()))

    def predicted(round_to: int, target: float) -> tuple[float, float]:
        plan = plan_from_masks(masked, round_to=round_to, latency=(table, target))
        counts = {p: len(plan.local[p]) for p in model.mask_points()}
        assert all(n % round_to == 0 for n in counts.values() if n) and plan.closed_total > 0
        # one group fewer or more closed: neither is nearer the target than the plan prune chose
        return table.predict(model.layer_widths(counts)), plan

    # targets within prune's reach of the (all open) masks: at most 10 % of the dense latency below
    for target in (0.91 * dense, 0.94 * dense, 0.97 * dense):
        got, plan = predicted(8, target)
        assert abs(got - target) <= 0.06 * dense  # within one 8-channel step of this network
        assert "predicted latency target" in plan.notes[-1] and plan.latency_limit is None
        if got > target:  # it stopped above the target because the next group would land further below
            assert any(n.startswith("stopped") for n in plan.notes)


def test_prune_latency_target_far_below_the_masks_closes_at_most_a_tenth_and_records_the_miss():
    # No cliff after training: masks that missed the request by half the latency are not made up
    # for by closing half the network in one step with nothing but a fine-tune to recover.
    from pdd_edge.nn.pruning import MAX_UNRECOVERED_LATENCY

    model = zoo.build("resnet20")
    table = synthetic_table(model)
    masked = MaskedNetwork.attach(model, "open")
    dense = table.predict(model.layer_widths(model.mask_points()))
    plan = plan_from_masks(masked, round_to=8, latency=(table, 0.45 * dense))
    got = table.predict(model.layer_widths({p: len(plan.local[p]) for p in model.mask_points()}))
    stop = (1 - MAX_UNRECOVERED_LATENCY) * dense
    assert stop - 0.06 * dense <= got <= stop + 0.06 * dense and plan.closed_total > 0
    assert plan.latency_limit == {"requested_ms": pytest.approx(0.45 * dense), "masks_predicted_ms": pytest.approx(dense),
                                  "stopped_at_ms": pytest.approx(stop), "max_unrecovered_share": MAX_UNRECOVERED_LATENCY}
    assert any("so the target is missed; distill longer or ask for less" in n for n in plan.notes)


@pytest.mark.parametrize("name, multiple", [("resnet20", 16), ("resnet20", 4), ("vgg11", 8), ("resnet32", 1)])
def test_masks_trained_at_a_multiple_prune_to_the_network_they_computed_exactly(name, multiple):
    g = torch.Generator().manual_seed(7)
    model = masked_model(name, lambda p, c: torch.randn(c, generator=g))
    masked = MaskedNetwork(model).set_multiple(multiple)
    raw = {p: int((m.logits >= 0).sum()) for p, m in masked.masks.items()}
    plan = plan_from_masks(masked, multiple)
    pruned = prune(masked, name, plan)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    # the masked network as it trained, not an adjusted copy of it
    assert max_logit_gap(model, pruned, x) <= TOL
    assert fvcore_counts(pruned, (32, 32)) == masked.cost((32, 32)).as_ints()
    for point, kept in plan.local.items():
        if point in masked.points:
            assert len(kept) == masked.open_counts()[point]
            assert len(kept) - raw[point] == plan.reopened.get(point, 0) - plan.closed.get(point, 0)
    if multiple > 1:
        assert plan.reopened_total > 0 and plan.closed_total > 0  # the draw needs both roundings


def test_masks_faster_than_a_latency_target_reopen_their_strongest_channels_only_when_asked():
    model = zoo.build("resnet20")
    table = synthetic_table(model)
    g = torch.Generator().manual_seed(5)
    masked = MaskedNetwork.attach(model, "normal")
    with torch.no_grad():
        for mask in masked.masks.values():
            mask.logits.copy_(torch.randn(mask.logits.shape, generator=g) - 0.8)  # most channels closed
    dense = table.predict(model.layer_widths(model.mask_points()))

    def latency_of(plan):
        return table.predict(model.layer_widths({p: len(plan.local[p]) for p in model.mask_points()}))

    target = 0.8 * dense
    kept = plan_from_masks(masked, round_to=16, latency=(table, target))
    assert latency_of(kept) < 0.7 * dense and kept.reopened_total < 16 * 8  # prune keeps a faster network
    plan = plan_from_masks(masked, round_to=16, latency=(table, target), reopen=True)
    got = latency_of(plan)
    assert plan.reopened_total > kept.reopened_total and any(n.startswith("re-opened") for n in plan.notes)
    assert all(len(k) % 16 == 0 for k in plan.local.values())
    # nearest the target: opening one more 16-channel group anywhere lands no nearer
    for point, width in masked.points.items():
        if len(plan.local[point]) + 16 <= width:
            more = {p: len(plan.local[p]) + (16 if p == point else 0) for p in model.mask_points()}
            assert abs(table.predict(model.layer_widths(more)) - target) >= abs(got - target) or got >= target
    assert abs(got - target) < 0.1 * target
