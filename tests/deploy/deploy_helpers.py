"""Files the deployment tests are built from: small ONNX classifiers built node by node
(Olive's style), for the shapes no zoo model has."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pdd_edge.data import load_dataset
from pdd_edge.onnx_meta import OnnxMeta, write_meta

DIGITS_CLASSES = [str(d) for d in range(10)]


def digits_preprocess():
    return load_dataset("digits").preprocess


def tiny_classifier(path: Path, *, channels: int = 3, hw: tuple[int, int] = (32, 32), classes: int = 10,
                    batch: int | str = "batch", meta: OnnxMeta | None = None, seed: int = 0) -> Path:
    """Conv -> BatchNormalization -> Relu -> GlobalAveragePool -> Flatten -> Gemm (dynamic batch
    unless `batch` is a number)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    width = 8

    def init(name: str, array: np.ndarray):
        return numpy_helper.from_array(array.astype(np.float32), name)

    weights = [
        init("conv_w", rng.normal(0, 0.5, (width, channels, 3, 3))),
        init("conv_b", rng.normal(0, 0.1, width)),
        init("bn_scale", rng.uniform(0.5, 1.5, width)),
        init("bn_bias", rng.normal(0, 0.2, width)),
        init("bn_mean", rng.normal(0, 0.2, width)),
        init("bn_var", rng.uniform(0.5, 1.5, width)),
        init("fc_w", rng.normal(0, 0.5, (classes, width))),
        init("fc_b", rng.normal(0, 0.1, classes)),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, channels, *hw])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])], weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    if meta is not None:
        write_meta(model, meta)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path
