"""`--model-arg mask_placement=stage`: one shared mask per layer group (`layerS`) of a CIFAR ResNet.

Exactness (pruned = masked), fewer index maps in the pruned network and in its ONNX graph, the
costs, the latency table's widths, and checkpoints that rebuild the placement."""

from __future__ import annotations

import pytest
import torch

from pdd_edge import checkpoint
from pdd_edge import zoo
from pdd_edge.data.preprocess import Preprocess
from pdd_edge.errors import PddError
from pdd_edge.nn.pruning import masked_reference, max_logit_gap, plan_from_masks, prune
from pdd_edge.zoo.cost import fvcore_counts
from pdd_edge.zoo.masked import MaskedNetwork

SHARED = {"mask_placement": "stage"}


def masked(seed: int, placement: str = "stage", share_open: float = 0.6) -> MaskedNetwork:
    g = torch.Generator().manual_seed(seed)
    model = zoo.build("resnet20", args={"mask_placement": placement})
    for m in model.modules():  # non-trivial BN so that closed channels matter
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    points = MaskedNetwork.attach(model).points
    net = MaskedNetwork.load(model, {p: torch.rand(n, generator=g) - (1 - share_open) for p, n in points.items()})
    model.eval()
    return net


def test_stage_placement_has_one_output_mask_per_layer_group():
    points = zoo.build("resnet20", args=SHARED).mask_points()
    assert [p for p in points if not p.endswith("gate_mid")] == ["stage_gates.0", "stage_gates.1", "stage_gates.2"]
    assert len(points) == 9 + 3
    assert zoo.build("resnet20").mask_points().keys() != points.keys()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stage_placement_prunes_exactly_with_index_maps_only_where_a_layer_group_begins(seed):
    net = masked(seed)
    plan = plan_from_masks(net, 1)
    pruned = prune(net, "resnet20", plan)
    reference = masked_reference(net, plan)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    assert max_logit_gap(reference.net, pruned, x) <= 1e-4
    assert fvcore_counts(pruned, (32, 32)) == reference.cost((32, 32)).as_ints()
    mapped = [n for n, m in pruned.named_modules() if n.endswith("shortcut") and m.index is not None]
    assert set(mapped) <= {"layer1.0.shortcut", "layer2.0.shortcut", "layer3.0.shortcut"}
    assert {"layer2.0.shortcut", "layer3.0.shortcut"} <= set(mapped)  # a width change needs its map
    # every block of a layer group keeps the same channels
    assert {len(plan.keep["stage_gates.1"])} == {pruned.get_submodule(f"layer2.{b}").c_out for b in range(3)}


def test_stage_placement_exports_fewer_gathers_than_block_placement():
    pytest.importorskip("onnxscript")
    from pdd_edge.onnx.convert import to_onnx

    def gathers(placement: str) -> int:
        net = masked(3, placement)
        pruned = prune(net, "resnet20", plan_from_masks(net, 1))
        return sum(n.op_type == "Gather" for n in to_onnx(pruned, (32, 32)).graph.node)

    shared, block = gathers("stage"), gathers("block")
    assert shared <= 3 < block


def test_stage_placement_checkpoint_rebuilds_with_its_placement(tmp_path):
    net = masked(4)
    pruned = prune(net, "resnet20", plan_from_masks(net, 1))
    path = tmp_path / "p.pt"
    pre = Preprocess(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(32, 32))
    checkpoint.save(path, checkpoint.checkpoint_dict(pruned, model_name="resnet20", preprocess=pre, dataset="digits"))
    again, info = checkpoint.load(path)
    assert again.placement == "stage" and again.keep == pruned.keep
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(again.eval()(x), pruned.eval()(x))


def test_stage_placement_layer_widths_follow_the_shared_counts():
    model = zoo.build("resnet20", args=SHARED)
    counts = {p: 8 for p in model.mask_points()}
    widths = model.layer_widths(counts)
    assert widths["layer2.1.conv2"] == (8, 8) and widths["linear"] == (8, 10)


def test_unknown_mask_placement_is_refused():
    with pytest.raises(PddError, match="mask_placement must be one of block, stage"):
        zoo.build("resnet20", args={"mask_placement": "layer"})
