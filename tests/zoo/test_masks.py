import pytest
import torch

from pdd_edge import zoo
from pdd_edge.errors import PddError
from pdd_edge.zoo.masked import MaskedNetwork
from pdd_edge.zoo.masks import ChannelMask, binary_gate, deployed_width, kept_channels


def test_binary_gate_is_one_for_nonnegative_logits_and_zero_for_negative():
    m = torch.tensor([-2.0, -1e-6, 0.0, 1e-6, 3.0])
    assert binary_gate(m).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


# d/dm of (approx(m) + 1) / 2 with Bi-Real's approx: (2 + 2m)/2 on [-1, 0), (2 - 2m)/2 on [0, 1), 0 outside.
@pytest.mark.parametrize(
    "m, expected",
    [(-1.5, 0.0), (-1.0, 0.0), (-0.75, 0.25), (-0.5, 0.5), (-0.001, 0.999), (0.0, 1.0),
     (0.25, 0.75), (0.999, 0.001), (1.0, 0.0), (2.0, 0.0)],
)
def test_binary_gate_gradient_follows_bireal_piecewise_quadratic(m, expected):
    logits = torch.tensor([m], dtype=torch.float64, requires_grad=True)
    binary_gate(logits).sum().backward()
    assert logits.grad.item() == pytest.approx(expected, abs=1e-12)


def test_channel_mask_forward_multiplies_each_channel_by_its_gate():
    mask = ChannelMask(3)
    with torch.no_grad():
        mask.logits.copy_(torch.tensor([0.2, -0.1, 0.0]))
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    y = mask(x)
    assert torch.equal(y[:, 0], x[:, 0]) and torch.equal(y[:, 2], x[:, 2])
    assert torch.count_nonzero(y[:, 1]) == 0


def test_channel_mask_gradient_is_upstream_times_activation_times_surrogate_slope():
    mask = ChannelMask(2)
    with torch.no_grad():
        mask.logits.copy_(torch.tensor([-0.5, 0.25]))
    x = torch.tensor([[[[1.0, 2.0]], [[3.0, -1.0]]]])  # N=1, C=2, H=1, W=2
    upstream = torch.tensor([[[[0.5, 1.0]], [[2.0, 4.0]]]])
    (mask(x) * upstream).sum().backward()
    # channel 0: sum(x*u) = 0.5 + 2 = 2.5, slope/2 = 0.5 -> 1.25; channel 1: 6 - 4 = 2, slope/2 = 0.75 -> 1.5
    assert mask.logits.grad.tolist() == pytest.approx([1.25, 1.5])


def test_channel_mask_normal_init_matches_paper_scale():
    torch.manual_seed(0)
    logits = ChannelMask(20_000).logits.detach()
    assert logits.std().item() == pytest.approx(1e-3, rel=0.05)
    assert 0.45 < (logits >= 0).float().mean().item() < 0.55


def test_channel_mask_open_init_opens_every_gate():
    assert bool((ChannelMask(500, init="open").logits >= 0).all())


@pytest.mark.parametrize("name, points", [("resnet20", 18), ("resnet56", 54), ("vgg11", 8), ("vgg16", 13)])
def test_attach_masks_puts_one_mask_after_each_masked_conv(name, points):
    model = zoo.build(name)
    plain_keys = set(model.state_dict())
    masks = MaskedNetwork.attach(model).masks
    assert len(masks) == points
    assert set(model.state_dict()) - plain_keys == {f"{p}.logits" for p in masks}


def test_mask_points_of_resnet_cover_inner_and_output_of_every_block():
    points = MaskedNetwork(zoo.build("resnet20")).points
    assert list(points)[:2] == ["layer1.0.gate_mid", "layer1.0.gate_out"]
    assert points["layer3.2.gate_out"] == 64 and points["layer2.0.gate_mid"] == 32


def test_open_counts_reads_kept_channels_per_layer():
    model = zoo.build("vgg11")
    points = MaskedNetwork.attach(model).points
    logits = {p: torch.full((c,), -1.0) for p, c in points.items()}
    logits["gates.0"][:5] = 1.0
    masked = MaskedNetwork.load(model, logits)
    counts = masked.open_counts()
    assert counts["gates.0"] == 5 and counts["gates.1"] == 0
    assert masked.kept_fraction() == pytest.approx(5 / sum(points.values()))


def test_open_counts_soft_has_gradient_to_logits():
    model = zoo.build("resnet20")
    masked = MaskedNetwork.attach(model, "open")
    total = sum(masked.open_counts(soft=True).values())
    total.backward()
    assert all(m.logits.grad is not None and m.logits.grad.abs().sum() > 0 for m in masked.masks.values())


def test_load_mask_logits_rejects_masks_of_another_architecture():
    model = zoo.build("resnet20")
    other = zoo.build("resnet32")
    theirs = MaskedNetwork.attach(other).masks
    with pytest.raises(PddError, match="do not fit"):
        MaskedNetwork.load(model, {p: m.logits for p, m in theirs.items()})


# --- trained as deployed: the rule `set_multiple` puts on every mask ---------------------------

@pytest.mark.parametrize(
    "n_open, width, multiple, may_vanish, nearest, expected",
    [(7, 16, 16, True, True, 0), (8, 16, 16, True, True, 16), (7, 16, 16, False, True, 16),
     (23, 32, 16, True, True, 16), (24, 32, 16, True, True, 32), (20, 24, 16, True, True, 16),
     (24, 24, 16, True, True, 24), (17, 32, 16, True, False, 32), (1, 32, 16, True, False, 16),
     (0, 32, 16, True, False, 0), (0, 32, 16, False, False, 16), (0, 5, 1, False, True, 1),
     (3, 5, 1, True, True, 3)],
)
def test_kept_channels_keeps_the_deployed_width_of_strongest_mask_values(n_open, width, multiple, may_vanish,
                                                                        nearest, expected):
    g = torch.Generator().manual_seed(n_open * 100 + width)
    values = torch.rand(width, generator=g) + 0.01
    logits = torch.cat([values[:n_open], -values[n_open:]])[torch.randperm(width, generator=g)]
    kept = kept_channels(logits, multiple, may_vanish, nearest)
    assert int(kept.sum()) == expected == deployed_width(n_open, width, multiple, may_vanish, nearest)
    # the kept channels are the strongest: every kept value is above every dropped one
    if 0 < expected < width:
        assert logits[kept].min() > logits[~kept].max()


def test_kept_channels_breaks_ties_toward_the_lower_index():
    logits = torch.tensor([0.5, 0.1, 0.1, 0.1, -0.2, -0.2])  # 4 open: nearest multiple of 2 is 4, of 4 is 4
    assert kept_channels(logits, 4, True).tolist() == [True, True, True, True, False, False]
    logits = torch.tensor([0.5, 0.1, 0.1, -0.2, -0.2, -0.2])  # 3 open -> 4: the first closed one of the tie
    assert kept_channels(logits, 4, True).tolist() == [True, True, True, True, False, False]
    logits = torch.tensor([0.5, 0.1, 0.1, 0.1, 0.1, -0.2])  # 5 open -> 4: the last of the tie is dropped
    assert kept_channels(logits, 4, True).tolist() == [True, True, True, True, False, False]


def test_mask_with_a_multiple_trains_raw_gates_and_evaluates_the_deployed_set():
    mask = ChannelMask(4)
    with torch.no_grad():
        mask.logits.copy_(torch.tensor([0.5, 0.25, 0.75, -0.5]))  # 3 open -> 4 at a multiple of 2 (ties up)
    mask.rule = (2, True)
    x = torch.ones(1, 4, 1, 1)
    assert mask.train()(x).flatten().tolist() == [1.0, 1.0, 1.0, 0.0]  # raw gates
    assert mask.eval()(x).flatten().tolist() == [1.0, 1.0, 1.0, 1.0]  # what prune deploys: the closed one reopened
    mask(x).sum().backward()
    # the deployed value keeps every mask value's Bi-Real slope (2 - 2m)/2 for m >= 0, (2 + 2m)/2 below
    assert mask.logits.grad.tolist() == pytest.approx([0.5, 0.75, 0.25, 0.5])
    with torch.no_grad():
        mask.logits.copy_(torch.tensor([0.5, -0.25, -0.75, -0.5]))  # 1 open -> 0 at a multiple of 4 (may vanish)
    mask.rule = (4, True)
    assert mask.eval()(x).flatten().tolist() == [0.0, 0.0, 0.0, 0.0]


def test_fixed_mask_keeps_its_deployed_set_whatever_its_values_do_and_saves_it_as_plus_minus_one():
    mask = ChannelMask(6)
    with torch.no_grad():
        mask.logits.copy_(torch.tensor([0.3, -0.1, 0.2, 0.05, 0.4, -0.6]))  # 4 open -> 4 at a multiple of 4
    mask.rule = (4, True)
    deployed = mask.kept().clone()
    mask.fix()
    x = torch.ones(1, 6, 1, 1)
    mask.train()(x).sum().backward()
    assert mask.logits.grad is not None and mask.logits.grad.abs().sum() == 0  # in the graph, never pushed
    with torch.no_grad():
        mask.logits.copy_(torch.tensor([-0.3, 0.9, 0.2, 0.05, 0.4, 0.6]))  # values drift (weight decay, momentum)
    assert torch.equal(mask.kept(), deployed)
    assert mask.train()(x).flatten().tolist() == deployed.float().tolist() == mask.eval()(x).flatten().tolist()
    assert mask.values().tolist() == [1.0, -1.0, 1.0, 1.0, 1.0, -1.0]
    fresh = ChannelMask(6)
    with torch.no_grad():
        fresh.logits.copy_(mask.values())
    fresh.rule = (4, True)
    assert torch.equal(fresh.kept(), deployed)  # a checkpoint of it loads as the same set


def test_set_multiple_makes_counts_and_cost_those_of_the_deployed_widths():
    model = zoo.build("resnet20")
    masked = MaskedNetwork.attach(model, "normal")
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for mask in masked.masks.values():
            mask.logits.copy_(torch.randn(mask.logits.shape, generator=g))
    raw = masked.open_counts()
    assert masked.multiple is None
    masked.set_multiple(16)
    assert masked.multiple == 16
    deployed = masked.open_counts()
    for point, width in masked.points.items():
        assert deployed[point] == deployed_width(raw[point], width, 16, model.may_vanish(point))
    model.eval()  # evaluation passes the deployed widths; training steps the raw gates
    assert {p: int(v) for p, v in masked.open_counts(soft=True).items()} == deployed
    model.train()
    assert {p: int(v) for p, v in masked.open_counts(soft=True).items()} == raw
    assert masked.cost((32, 32)).as_ints() == model.cost(deployed, (32, 32)).as_ints()
