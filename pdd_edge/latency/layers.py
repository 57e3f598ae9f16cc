"""The layers a latency table measures: their geometry, found by running the network once, and
a one-layer ONNX file for any channel count.

`layer_geometry` runs the full-width network on one image with forward hooks on every 2-D convolution
and linear layer and records what fixes a layer's cost apart from its channel counts: kernel,
stride, padding, dilation, grouping and the input's spatial size (or, for a linear layer, the
rows it is applied to). Layers with the same geometry share one `Shape`, so a ResNet's repeated
blocks are measured once.

How many channels each layer has for given open counts is the model's own knowledge
(`PrunableModel.layer_widths`); this module only needs the full widths.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pdd_edge.errors import PddError
from pdd_edge.onnx.convert import OPSET  # a layer file must run wherever the model does


@dataclass(frozen=True)
class Shape:
    """Everything but the channel counts that decides one layer's latency."""

    op: str  # "conv" or "linear"
    full_in: int
    full_out: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    dilation: tuple[int, int] = (1, 1)
    in_hw: tuple[int, int] = (1, 1)
    groups: int = 1  # at full width; a grouped conv loses whole groups, so it has one free count
    rows: int = 1  # linear: rows per sample (1 for a classifier on pooled features)

    @property
    def grouped(self) -> bool:
        return self.op == "conv" and self.groups > 1

    @property
    def out_hw(self) -> tuple[int, int]:
        (h, w), (kh, kw), (sh, sw), (dh, dw), (t, l, b, r) = self.in_hw, self.kernel, self.stride, self.dilation, self.pads
        return (h + t + b - dh * (kh - 1) - 1) // sh + 1, (w + l + r - dw * (kw - 1) - 1) // sw + 1

    @property
    def key(self) -> str:
        if self.op == "linear":
            return f"linear {self.full_in}x{self.full_out} rows{self.rows}"
        k, s, d = self.kernel, self.stride, self.dilation
        return (f"conv{k[0]}x{k[1]} s{s[0]}x{s[1]} d{d[0]}x{d[1]} p{','.join(map(str, self.pads))} "
                f"{self.in_hw[0]}x{self.in_hw[1]} {self.full_in}->{self.full_out} g{self.groups}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Shape":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def channels(self, units: int) -> tuple[int, int]:
        """(in, out) channels of a grouped conv that keeps `units` of its groups."""
        return units * (self.full_in // self.groups), units * (self.full_out // self.groups)


def _pads(module, in_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    kh, kw = module.kernel_size
    dh, dw = module.dilation
    if module.padding == "valid":
        return (0, 0, 0, 0)
    if module.padding == "same":  # PyTorch: total dilation * (k - 1), the extra one at the end
        th, tw = dh * (kh - 1), dw * (kw - 1)
        return (th // 2, tw // 2, th - th // 2, tw - tw // 2)
    ph, pw = module.padding
    return (ph, pw, ph, pw)


def layer_geometry(model, input_hw: tuple[int, int], names: set[str]) -> dict[str, Shape]:
    """Geometry of every conv/linear layer in `names`, from one forward pass of `model`."""
    import torch
    from torch import nn

    found: dict[str, Shape] = {}
    handles = []
    modules = dict(model.named_modules())
    missing = sorted(n for n in names if n not in modules)
    if missing:
        raise PddError(f"the model has no layer {missing[0]!r}; this is a pdd-edge bug, please report it")
    for name in names:
        module = modules[name]

        def hook(mod, inp, out, name=name):
            x = inp[0]
            if isinstance(mod, nn.Conv2d):
                hw = (int(x.shape[-2]), int(x.shape[-1]))
                shape = Shape("conv", mod.in_channels, mod.out_channels, tuple(mod.kernel_size), tuple(mod.stride),
                              _pads(mod, hw), tuple(mod.dilation), hw, mod.groups)
            else:
                shape = Shape("linear", mod.in_features, mod.out_features, rows=x.numel() // (x.shape[0] * x.shape[-1]))
            if found.setdefault(name, shape) != shape:
                raise PddError(f"layer {name} runs twice with different input sizes; the latency table "
                               "supports a layer called once per forward pass")

        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            raise PddError(f"layer {name} is a {type(module).__name__}; the latency table measures 2-D "
                           "convolutions and linear layers")
        handles.append(module.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_hw))
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    unused = sorted(names - set(found))
    if unused:
        raise PddError(f"layer {unused[0]} does not run at input size {input_hw[0]}x{input_hw[1]}")
    return found


def layer_onnx(shape: Shape, c_in: int, c_out: int, seed: int = 0):
    """A one-layer ModelProto (conv with bias, or Gemm) with `c_in` -> `c_out` channels and a
    dynamic batch axis: what the deployed graph runs for this layer once BN is folded."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    if shape.op == "linear":
        x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", c_in])
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", c_out])
        w = numpy_helper.from_array(rng.standard_normal((c_out, c_in), dtype=np.float32) * 0.1, "w")
        b = numpy_helper.from_array(np.zeros(c_out, np.float32), "b")
        node = helper.make_node("Gemm", ["input", "w", "b"], ["output"], transB=1)
    else:
        groups = shape.groups if not shape.grouped else c_out // (shape.full_out // shape.groups)
        kh, kw = shape.kernel
        x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", c_in, *shape.in_hw])
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", c_out, *shape.out_hw])
        w = numpy_helper.from_array(rng.standard_normal((c_out, c_in // groups, kh, kw), dtype=np.float32) * 0.1, "w")
        b = numpy_helper.from_array(np.zeros(c_out, np.float32), "b")
        node = helper.make_node("Conv", ["input", "w", "b"], ["output"], kernel_shape=list(shape.kernel),
                                strides=list(shape.stride), pads=list(shape.pads), dilations=list(shape.dilation),
                                group=groups)
    return _model(helper.make_graph([node], "layer", [x], [y], initializer=[w, b]))


def empty_onnx():
    """An Identity model: the cost of one session run with nothing to compute."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1])
    return _model(helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "empty", [x], [y]))


def _model(graph):
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def input_shape(shape: Shape, c_in: int, batch: int) -> list[int]:
    if shape.op == "linear":
        return [batch * shape.rows, c_in]
    return [batch, c_in, *shape.in_hw]
