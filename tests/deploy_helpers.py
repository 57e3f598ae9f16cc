"""Models and files the deployment tests are built from: checkpoints of random (pruned) zoo
models saved exactly as the training stages save them, and small ONNX classifiers built node
by node (Olive's style), for the shapes no zoo model has."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from pdd_edge import checkpoint
from pdd_edge import zoo
from pdd_edge.data import load_dataset
from pdd_edge.onnx.meta import OnnxMeta, write_meta

DIGITS_CLASSES = [str(d) for d in range(10)]


def digits_preprocess():
    return load_dataset("digits").preprocess


def random_keep(name: str, seed: int) -> dict[str, list[int]]:
    """A random channel plan: every mask point keeps a random, non-empty subset of its channels.

    For ResNets, each block's output keeps its own subset (so consecutive blocks of one stage
    keep different residual channels and every shortcut needs an index map), and two blocks,
    one of them a downsampling block, lose all their inner channels.
    """
    g = torch.Generator().manual_seed(seed)
    keep = {}
    for point, channels in zoo.full_keep(name).items():
        n = int(torch.randint(1, len(channels) + 1, (1,), generator=g))
        keep[point] = sorted(int(c) for c in torch.randperm(len(channels), generator=g)[:n])
    if zoo.entry(name).family == "resnet":
        keep["layer1.1.gate_mid"] = []
        keep["layer3.0.gate_mid"] = []
    return keep


def randomize_norm_layers(model: nn.Module, seed: int) -> nn.Module:
    """Give BatchNorm layers (and constant branches) non-trivial values, so folding them shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
        for name, p in model.named_parameters():
            if name.endswith("branch_bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


def save_checkpoint(model: nn.Module, name: str, path: Path, dataset: str = "digits") -> Path:
    ckpt = checkpoint.checkpoint_dict(model, model_name=name, preprocess=digits_preprocess(), classes=DIGITS_CLASSES,
                                   dataset=dataset, record={"stage": "test"})
    return checkpoint.save(path, ckpt)


def zoo_checkpoint(name: str, pruned: bool, path: Path, seed: int = 0) -> tuple[Path, dict | None]:
    torch.manual_seed(seed)
    keep = random_keep(name, seed) if pruned else None
    model = randomize_norm_layers(zoo.build(name, num_classes=10, keep=keep), seed)
    return save_checkpoint(model, name, path), keep


def masked_checkpoint(path: Path) -> Path:
    """A distill-prune checkpoint: PDD masks still attached, nothing pruned yet."""
    from pdd_edge.zoo.masked import MaskedNetwork

    model = zoo.build("resnet20", 10)
    MaskedNetwork.attach(model)
    return save_checkpoint(model, "resnet20", path)


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


def perturb_last_bias(model, delta: float):
    """A copy of `model` whose final layer's bias is shifted: a stand-in for a tool that broke it."""
    from onnx import numpy_helper

    broken = type(model)()
    broken.CopyFrom(model)
    bias_name = broken.graph.node[-1].input[2]  # Gemm(x, W, b)
    for i, t in enumerate(broken.graph.initializer):
        if t.name == bias_name:
            broken.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) + delta, t.name))
    return broken


DIGITS_META = OnnxMeta(dataset="digits", preprocess=digits_preprocess())
