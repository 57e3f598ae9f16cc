"""MAC and param counts from ONNX graphs: hand-built graphs with answers worked out on paper,
and zoo models whose count must equal the PyTorch-side count (and fvcore's)."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tests.onnx_builders import conv_model, make_model, tensor_input, weight

from pdd_edge.profiling.graph_cost import count_cost


def test_count_cost_grouped_conv_divides_input_channels_by_groups():
    # 8 -> 16 channels in 2 groups of 4 input channels, 3x3, 10x10 output, with bias.
    model = conv_model([1, 8, 10, 10], (16, 4, 3, 3), group=2, bias=True)

    cost = count_cost(model, {"X": [1, 8, 10, 10]})

    assert cost.macs == 16 * 10 * 10 * 4 * 3 * 3
    assert cost.params == 16 * 4 * 3 * 3 + 16
    assert cost.uncounted == []


def test_count_cost_depthwise_conv_counts_one_input_channel_per_output():
    model = conv_model([1, 8, 10, 10], (8, 1, 3, 3), group=8, strides=(2, 2))

    cost = count_cost(model, {"X": [1, 8, 10, 10]})

    assert cost.macs == 8 * 5 * 5 * 1 * 3 * 3
    assert cost.params == 8 * 9


def test_count_cost_conv_scales_with_batch_and_spatial_size_when_input_is_symbolic():
    model = conv_model(["N", 3, "H", "W"], (4, 3, 3, 3))

    cost = count_cost(model, {"X": [2, 3, 6, 5]})

    assert cost.macs == 2 * 4 * 6 * 5 * 3 * 3 * 3


def test_count_cost_accepts_opset_11():
    model = conv_model([1, 3, 8, 8], (4, 3, 3, 3), opset=11)

    cost = count_cost(model, {"X": [1, 3, 8, 8]})

    assert cost.macs == 4 * 8 * 8 * 27
    assert cost.params == 4 * 27


@pytest.mark.parametrize("group, w_shape", [(1, (4, 6, 3, 3)), (2, (4, 3, 3, 3))])
def test_count_cost_conv_transpose_counts_per_input_element(group, w_shape):
    # ConvTranspose weight is [C_in, C_out/groups, kH, kW]; each input element meets C_out/g*kH*kW weights.
    node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"], group=group, strides=[2, 2], kernel_shape=[3, 3])
    model = make_model([node], [tensor_input("X", [1, 4, 5, 5])], [tensor_input("Y", [None] * 4)], [weight("W", *w_shape)])

    cost = count_cost(model, {"X": [1, 4, 5, 5]})

    assert cost.macs == 4 * 5 * 5 * w_shape[1] * 9
    assert cost.params == 4 * w_shape[1] * 9


def test_count_cost_gemm_with_trans_b_and_symbolic_batch():
    node = helper.make_node("Gemm", ["A", "B", "C"], ["Y"], transB=1)
    model = make_model([node], [tensor_input("A", ["batch", 20])], [tensor_input("Y", ["batch", 10])],
                       [weight("B", 10, 20), weight("C", 10)])

    cost = count_cost(model, {"A": [3, 20]})

    assert cost.macs == 3 * 20 * 10
    assert cost.params == 10 * 20 + 10


def test_count_cost_gemm_with_trans_a_takes_k_from_first_dim():
    node = helper.make_node("Gemm", ["A", "B"], ["Y"], transA=1)
    model = make_model([node], [tensor_input("A", [20, 4])], [tensor_input("Y", [4, 10])], [weight("B", 20, 10)])

    cost = count_cost(model, {"A": [20, 4]})

    assert cost.macs == 4 * 10 * 20


def test_count_cost_matmul_with_constant_weight():
    node = helper.make_node("MatMul", ["A", "B"], ["Y"])
    model = make_model([node], [tensor_input("A", [2, 5])], [tensor_input("Y", [2, 7])], [weight("B", 5, 7)])

    cost = count_cost(model, {"A": [2, 5]})

    assert (cost.macs, cost.params) == (2 * 7 * 5, 35)


def test_count_cost_batched_matmul_broadcasts_and_counts_no_params_between_activations():
    node = helper.make_node("MatMul", ["A", "B"], ["Y"])
    model = make_model([node], [tensor_input("A", [3, 4, 2, 5]), tensor_input("B", [4, 5, 6])],
                       [tensor_input("Y", [None] * 4)])

    cost = count_cost(model, {"A": [3, 4, 2, 5], "B": [4, 5, 6]})

    assert cost.macs == 3 * 4 * 2 * 6 * 5
    assert cost.params == 0


def test_count_cost_counts_weights_produced_by_constant_nodes():
    nodes = [
        helper.make_node("Constant", [], ["W"], value=weight("w", 4, 3, 3, 3)),
        helper.make_node("Constant", [], ["B"], value=weight("b", 4)),
        helper.make_node("Conv", ["X", "W", "B"], ["Y"], kernel_shape=[3, 3]),
    ]
    model = make_model(nodes, [tensor_input("X", [1, 3, 7, 7])], [tensor_input("Y", [None] * 4)])

    cost = count_cost(model, {"X": [1, 3, 7, 7]})

    assert cost.macs == 4 * 5 * 5 * 27
    assert cost.params == 4 * 27 + 4


def test_count_cost_counts_weights_listed_as_graph_inputs_with_initializers():
    # IR version 3 style: every initializer is also a graph input.
    node = helper.make_node("Conv", ["X", "W"], ["Y"], kernel_shape=[1, 1])
    model = make_model([node], [tensor_input("X", [1, 3, 4, 4]), tensor_input("W", [5, 3, 1, 1])],
                       [tensor_input("Y", [None] * 4)], [weight("W", 5, 3, 1, 1)], opset=7, ir_version=3)

    cost = count_cost(model, {"X": [1, 3, 4, 4]})

    assert (cost.macs, cost.params) == (5 * 16 * 3, 15)


def test_count_cost_counts_dequantized_weight_once_when_shared():
    q = numpy_helper.from_array(__import__("numpy").ones((4, 4), dtype="int8"), "Wq")
    scale = numpy_helper.from_array(__import__("numpy").array(0.1, dtype="float32"), "s")
    nodes = [
        helper.make_node("DequantizeLinear", ["Wq", "s"], ["W"]),
        helper.make_node("MatMul", ["A", "W"], ["H"]),
        helper.make_node("MatMul", ["H", "W"], ["Y"]),
    ]
    model = make_model(nodes, [tensor_input("A", [1, 4])], [tensor_input("Y", [1, 4])], [q, scale])

    cost = count_cost(model, {"A": [1, 4]})

    assert cost.macs == 2 * 16
    assert cost.params == 16


def test_count_cost_reports_layers_inside_control_flow_as_uncounted():
    branch = helper.make_graph([helper.make_node("Identity", ["X"], ["Z"])], "branch", [], [tensor_input("Z", [1])])
    nodes = [helper.make_node("If", ["cond"], ["Y"], then_branch=branch, else_branch=branch, name="choose")]
    model = make_model(nodes, [tensor_input("cond", [], TensorProto.BOOL), tensor_input("X", [1])],
                       [tensor_input("Y", [1])])

    cost = count_cost(model, {"cond": [], "X": [1]})

    assert cost.macs == 0
    assert cost.uncounted and "choose (If)" in cost.uncounted[0]


def _torch_cost(model) -> dict[str, int]:
    return model.cost(model.mask_points(), (32, 32)).as_ints()


def _exported_params(model) -> int:
    """Conv and linear weights, plus one bias per conv output channel: every zoo conv is
    followed by BN, which the export folds into that conv's bias (its own bias, if it has one,
    is absorbed). BN's 2 affine params per channel and ResNet's branch_bias are not weights of
    a conv or linear layer, so the ONNX count does not include them."""
    from torch import nn

    convs = sum(m.weight.numel() + m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))
    linears = sum(m.weight.numel() + m.bias.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return convs + linears


@pytest.mark.parametrize("name", ["resnet20", "vgg11", "resnet20-pruned"])
def test_count_cost_matches_pytorch_count_on_exported_zoo_models(zoo_onnx, name):
    path, torch_model = zoo_onnx[name]

    cost = count_cost(onnx.load(str(path)), {"input": [1, 3, 32, 32]})

    expected = _torch_cost(torch_model)
    assert cost.uncounted == []
    assert cost.macs == expected["macs"]
    assert cost.params == _exported_params(torch_model)


def test_count_cost_macs_equal_fvcore_conv_and_linear_count(zoo_onnx):
    import torch
    from fvcore.nn import FlopCountAnalysis

    path, torch_model = zoo_onnx["resnet20-pruned"]
    flops = FlopCountAnalysis(torch_model.eval(), torch.zeros(1, 3, 32, 32))
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = flops.by_operator()
    fvcore_macs = sum(by_op.get(op, 0) for op in ("conv", "linear", "addmm", "matmul", "bmm"))

    cost = count_cost(onnx.load(str(path)), {"input": [1, 3, 32, 32]})

    assert cost.macs == fvcore_macs  # the issue allows 0.5 %; the two conventions agree exactly


def test_count_cost_counts_quantized_operator_forms_like_their_float_ops():
    import numpy as np

    def const(name, value, dtype):
        return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)

    inits = [const("xs", 0.1, "float32"), const("xz", 0, "uint8"), const("Wq", np.ones((4, 3, 3, 3)), "uint8"),
             const("ws", 0.1, "float32"), const("wz", 0, "uint8"), const("ys", 0.1, "float32"), const("yz", 0, "uint8"),
             const("Bq", np.zeros(4), "int32"), const("Mq", np.ones((4 * 6 * 6, 5)), "uint8")]
    nodes = [
        helper.make_node("QLinearConv", ["X", "xs", "xz", "Wq", "ws", "wz", "ys", "yz", "Bq"], ["Y"], kernel_shape=[3, 3]),
        helper.make_node("Reshape", ["Y", "flat"], ["F"]),
        helper.make_node("MatMulInteger", ["F", "Mq"], ["Z"]),
    ]
    inits.append(const("flat", [1, -1], "int64"))
    model = make_model(nodes, [tensor_input("X", [1, 3, 8, 8], TensorProto.UINT8)],
                       [tensor_input("Z", [1, 5], TensorProto.INT32)], inits)

    cost = count_cost(model, {"X": [1, 3, 8, 8]})

    assert cost.by_op()["QLinearConv"] == {"count": 1, "macs": 4 * 6 * 6 * 27, "params": 4 * 27 + 4}
    assert cost.by_op()["MatMulInteger"] == {"count": 1, "macs": 144 * 5, "params": 144 * 5}
