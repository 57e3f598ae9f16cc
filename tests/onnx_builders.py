"""Small ONNX graphs built by hand for tests whose answers can be worked out on paper."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tensor_input(name: str, dims: Sequence[int | str | None], elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, list(dims))


def weight(name: str, *shape: int) -> onnx.TensorProto:
    rng = np.random.default_rng(len(name) + sum(shape))
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def make_model(nodes, inputs, outputs, initializers=(), opset: int = 17, ir_version: int | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "test", list(inputs), list(outputs), initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="pdd-edge-tests")
    model.ir_version = ir_version if ir_version is not None else min(helper.VERSION_TABLE[-1][1], 8)
    return model


def conv_model(x_dims, w_shape, *, group: int = 1, strides=(1, 1), pads=(1, 1, 1, 1), bias: bool = False,
               opset: int = 17) -> onnx.ModelProto:
    """X -> Conv(W[, B]) -> Y with the weights as initializers."""
    inits = [weight("W", *w_shape)] + ([weight("B", w_shape[0])] if bias else [])
    node = helper.make_node("Conv", ["X", "W"] + (["B"] if bias else []), ["Y"], group=group,
                            kernel_shape=list(w_shape[2:]), strides=list(strides), pads=list(pads))
    return make_model([node], [tensor_input("X", x_dims)], [tensor_input("Y", [None] * len(x_dims))], inits, opset=opset)


def save(model: onnx.ModelProto, path) -> str:
    onnx.save(model, str(path))
    return str(path)


def linear_classifier(hw: tuple[int, int], classes: int) -> onnx.ModelProto:
    """X[N,3,h,w] -> Flatten -> Gemm -> logits[N,classes]: an image classifier with fixed random weights."""
    h, w = hw
    nodes = [helper.make_node("Flatten", ["X"], ["F"]), helper.make_node("Gemm", ["F", "W"], ["Y"], transB=1)]
    return make_model(nodes, [tensor_input("X", ["N", 3, h, w])], [tensor_input("Y", ["N", classes])],
                      [weight("W", classes, 3 * h * w)])
