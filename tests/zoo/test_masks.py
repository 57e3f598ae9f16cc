import pytest
import torch

from pdd_edge import zoo
from pdd_edge.errors import PddError
from pdd_edge.zoo.masked import MaskedNetwork
from pdd_edge.zoo.masks import ChannelMask, binary_gate


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
