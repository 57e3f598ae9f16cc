"""Any CNN: the pruned network computes what the masked network computes, and the cost formula
counts what fvcore counts in the pruned network, for random mask patterns (property tests)."""

import functools
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdd_edge import zoo
from pdd_edge.errors import PddError
from pdd_edge.nn.pruning import logit_gap, masked_reference, plan_from_masks, prune
from pdd_edge.zoo.cost import fvcore_counts
from pdd_edge.zoo.masked import MaskedNetwork
from pdd_edge.zoo.traced.verify import randomise

HW = (32, 32)
USER = f"{Path(__file__).with_name('user_models.py')}:branchy"
TIMM = "timm:mobilenetv3_small_050"
MODELS = [
    "torchvision:resnet18", "torchvision:resnet50", "torchvision:mobilenet_v2", "torchvision:mobilenet_v3_small",
    "torchvision:efficientnet_b0", "torchvision:densenet121", "torchvision:regnet_x_400mf",
    "torchvision:squeezenet1_0", TIMM, USER,
]


@functools.lru_cache(maxsize=None)
def weights(spec: str) -> dict:
    """Seeded random weights and BN statistics: no channel is neutral, logits are O(1)."""
    model = zoo.build(spec, num_classes=10, input_size=HW)
    randomise(model.net, torch.Generator().manual_seed(0))
    return model.state_dict()


def masked(spec: str, logits_fn) -> torch.nn.Module:
    if spec.startswith("timm:"):
        pytest.importorskip("timm")
    model = zoo.build(spec, num_classes=10, input_size=HW)
    model.load_state_dict(weights(spec))
    points = MaskedNetwork.attach(model).points
    MaskedNetwork.load(model, {p: logits_fn(p, c) for p, c in points.items()})
    return model.eval()


def check_exact(model, spec: str, round_to: int = 1):
    net = MaskedNetwork(model)
    plan = plan_from_masks(net, round_to)
    pruned = prune(net, spec, plan)
    reference = masked_reference(net, plan)
    x = torch.randn(3, 3, *HW, generator=torch.Generator().manual_seed(1))
    gap, scale = logit_gap(reference.net, pruned, x)
    assert scale > 1e-2, "logits too small for the comparison to mean anything"
    assert gap <= 1e-4
    assert fvcore_counts(pruned, HW) == reference.cost(HW).as_ints()
    return plan, pruned


@pytest.mark.parametrize("spec", MODELS)
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(p_open=st.floats(0.05, 1.0), seed=st.integers(0, 2**16), round_to=st.sampled_from([1, 4]))
def test_pruned_traced_model_equals_masked_model_for_any_mask_pattern(spec, p_open, seed, round_to):
    g = torch.Generator().manual_seed(seed)

    def logits(point, channels):
        return torch.where(torch.rand(channels, generator=g) < p_open, 1.0, -1.0) * (torch.rand(channels, generator=g) + 0.01)

    model = masked(spec, logits)
    plan, pruned = check_exact(model, spec, round_to)
    full = MaskedNetwork(model).points
    for point, kept in plan.local.items():
        assert 1 <= len(kept) <= full[point]
        if round_to > 1:
            assert len(kept) % round_to == 0 or len(kept) == full[point]
    assert pruned.keep == plan.keep and pruned.is_pruned() == (plan.keep != {p: list(range(n)) for p, n in full.items()})


def test_traced_groups_cover_the_structures_of_a_user_model():
    model = zoo.build(USER, input_size=HW)
    assert model.refused == []

    def group_with(module, dim):
        return next(g for g in model.groups if any((s.module, s.dim) == (module, dim) for s in g.slots))

    def members(group):
        return {(s.module, s.dim) for s in group.slots}

    # the residual stream: the stem, the residual branch's last conv and every reader of the add
    assert members(group_with("stem.0", "out")) == {("stem.0", "out"), ("stem.1", "out"), ("res.3", "out"),
                                                   ("res.4", "out"), ("res.0", "in"), ("left.0", "in"), ("right.0", "in")}
    # the depthwise conv's channels go with the 1x1 conv that feeds it, then into the concatenation
    assert {("right.3", "in"), ("right.3", "out"), ("mix.0", "in")} <= members(group_with("right.0", "out"))
    assert ("mix.0", "in") in members(group_with("left.0", "out"))  # the other half of the concatenation
    # the grouped conv (4 groups of 16) loses whole groups: its mask has 4 units
    grouped = [g for g in model.groups if any(s.module == "mix.3" for s in g.slots)]
    assert [g.units for g in grouped] == [4]
    # flatten into the linear layer: each channel of mix is 4 inputs of the head
    head = next(s for s in grouped[0].slots if s.module == "head")
    assert len(head.positions) == 4 * 64


def test_grouped_convolution_loses_whole_groups():
    model = masked(USER, lambda p, c: torch.tensor([0.5, -0.5, 0.5, -0.5]) if c == 4 else torch.full((c,), 0.5))
    _, pruned = check_exact(model, USER)
    conv = pruned.net.mix[3]
    assert (conv.groups, conv.in_channels, conv.out_channels) == (2, 32, 32)


def test_output_layer_keeps_its_width():
    model = zoo.build("torchvision:squeezenet1_0", num_classes=10, input_size=HW)
    # squeezenet's classifier is a conv: no group may contain its output channels
    assert not any(s.module == "classifier.1" and s.dim == "out" for g in model.groups for s in g.slots)


def test_untraceable_model_is_refused_naming_the_failing_operation():
    with pytest.raises(PddError, match=r"cannot trace torchvision:shufflenet_v2_x0_5 .*reshape after layer"):
        zoo.build("torchvision:shufflenet_v2_x0_5", num_classes=10, input_size=HW)


def test_group_that_cannot_be_pruned_exactly_is_left_unmasked_and_listed():
    model = zoo.build("torchvision:convnext_tiny", num_classes=10, input_size=HW)
    assert any("LayerNorm" in r for r in model.refused)
    assert not any(s.module.endswith("block.2") for g in model.groups for s in g.slots)  # the LayerNorms


def test_traced_cost_is_differentiable_in_the_soft_open_counts():
    model = masked("torchvision:mobilenet_v2", lambda p, c: torch.linspace(-1, 1, c))
    macs = model.cost(MaskedNetwork(model).open_counts(soft=True), HW).macs
    macs.backward()
    grads = [m.logits.grad for m in model.pdd_masks.values()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_macs_ceiling_lands_under_the_target_for_a_traced_model():
    model = masked("torchvision:resnet18", lambda p, c: torch.rand(c, generator=torch.Generator().manual_seed(3)) + 0.1)
    net = MaskedNetwork(model)
    dense = net.dense_cost(HW)["macs"]
    plan = plan_from_masks(net, max_macs=int(0.5 * dense), input_hw=HW)
    macs = model.cost({p: len(v) for p, v in plan.local.items()}, HW).as_ints()["macs"]
    assert 0.47 * dense <= macs <= 0.5 * dense


def test_model_with_auxiliary_heads_in_training_mode_is_refused_with_the_way_out():
    with pytest.raises(PddError, match=r"returns GoogLeNetOutputs in training mode.*aux_logits=false"):
        zoo.build("torchvision:googlenet", num_classes=10, input_size=HW)
    assert zoo.build("torchvision:googlenet", num_classes=10, input_size=HW, args={"aux_logits": False}).mask_points()


def test_model_that_cannot_run_at_the_input_size_says_so():
    with pytest.raises(PddError, match=r"torchvision:alexnet fails on a \(1, 3, 32, 32\) input.*another --input-size"):
        zoo.build("torchvision:alexnet", num_classes=10, input_size=HW)


def test_dependency_analysis_that_runs_too_long_is_stopped_with_a_message(monkeypatch):
    from pdd_edge.zoo.traced import trace

    monkeypatch.setattr(trace, "TRACE_SECONDS", 1e-4)
    with pytest.raises(PddError, match=r"dependency analysis of torchvision:resnet18 did not finish in 0.0001 s"):
        zoo.build("torchvision:resnet18", num_classes=10, input_size=HW)


def test_module_that_checks_its_state_dict_version_reloads_after_pruning(tmp_path):
    # torchvision's MNASNet refuses a state dict without its version metadata; checkpoints are plain dicts
    from pdd_edge.data.preprocess import Preprocess
    from pdd_edge import checkpoint

    model = masked("torchvision:mnasnet0_5", lambda p, c: torch.where(torch.arange(c) % 2 == 0, 1.0, -1.0))
    _, pruned = check_exact(model, "torchvision:mnasnet0_5")
    pre = Preprocess(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=HW)
    checkpoint.save(tmp_path / "m.pt", checkpoint.checkpoint_dict(pruned, model_name="torchvision:mnasnet0_5", preprocess=pre))
    loaded, info = checkpoint.load(tmp_path / "m.pt")
    x = torch.randn(2, 3, *HW)
    assert info.pruned and torch.equal(loaded(x), pruned(x))


def test_data_dependent_control_flow_is_refused_naming_the_layers():
    spec = f"{Path(__file__).with_name('user_models.py')}:data_dependent"
    with pytest.raises(PddError, match=r"runs different layers for different images \(data-dependent control flow, at 'b', 'c'\)"):
        zoo.build(spec, num_classes=10, input_size=HW)


def test_transposed_convolution_is_left_fixed_and_counted():
    model = masked(f"{Path(__file__).with_name('user_models.py')}:with_transposed", lambda p, c: torch.linspace(-1, 1, c))
    assert any("ConvTranspose2d" in r for r in model.refused)
    check_exact(model, f"{Path(__file__).with_name('user_models.py')}:with_transposed")


def test_building_a_traced_model_leaves_its_batchnorm_statistics_untouched():
    import torchvision

    torch.manual_seed(0)
    fresh = torchvision.models.resnet18(num_classes=10)
    model = zoo.build("torchvision:resnet18", num_classes=10, input_size=HW)
    for (name, a), (_, b) in zip(fresh.named_buffers(), model.net.named_buffers()):
        assert torch.equal(a, b), name
