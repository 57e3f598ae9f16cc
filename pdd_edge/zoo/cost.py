"""Multiply-accumulates and parameters of a network from its channel counts.

Convention (shared with fvcore, the paper's thop figures and our ONNX counter): MACs are the
multiply-accumulates of convolution and fully-connected layers only; BN, ReLU, pooling and
additions are not counted. Params are all learnable weights and biases (BN running statistics
excluded).

`fvcore_counts` is the independent check of the formula: fvcore's count of a built model,
restricted to the same convention.

Counts may be ints or 0-d tensors (sums of straight-through mask gates): then the result is a
tensor whose gradient reaches the masks, which is what the MACs budget term of `distill` needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn


@dataclass
class Cost:
    macs: Any = 0  # int, or a 0-d tensor when counts are soft
    params: Any = 0

    def conv(self, c_in: Any, c_out: Any, kernel: int, out_hw: tuple[int, int], bias: bool = False) -> None:
        area = out_hw[0] * out_hw[1]
        self.macs = self.macs + c_in * c_out * kernel * kernel * area
        self.params = self.params + c_in * c_out * kernel * kernel + (c_out if bias else 0)

    def linear(self, c_in: Any, c_out: Any) -> None:
        self.macs = self.macs + c_in * c_out
        self.params = self.params + c_in * c_out + c_out

    def batchnorm(self, channels: Any) -> None:
        self.params = self.params + 2 * channels

    def add_params(self, n: Any) -> None:
        self.params = self.params + n

    def as_ints(self) -> dict[str, int]:
        return {"macs": int(self.macs), "params": int(self.params)}


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def fvcore_counts(model: "nn.Module", input_hw: tuple[int, int], in_channels: int = 3) -> dict[str, int]:
    """fvcore's count of a PyTorch model, restricted to our MACs convention.

    fvcore counts one multiply-accumulate per "flop" for conv and linear layers (the paper's thop
    convention); by default it also adds BN, pooling and upsampling. We register only the conv and
    matrix-product handles so its number means "MACs of conv and linear layers", the same quantity
    the masked-network formula and the ONNX counter report.
    """
    import logging
    import warnings

    import torch

    with warnings.catch_warnings():  # fvcore's import touches the deprecated torch.jit.script
        warnings.simplefilter("ignore")
        from fvcore.nn import parameter_count
        from fvcore.nn.jit_analysis import JitModelAnalysis
        from fvcore.nn.jit_handles import addmm_flop_jit, conv_flop_jit, linear_flop_jit, matmul_flop_jit

    was_training = model.training
    model.eval()
    x = torch.zeros(1, in_channels, *input_hw)
    analysis = JitModelAnalysis(model, (x,)).set_op_handle(
        "aten::_convolution", conv_flop_jit,
        "aten::addmm", addmm_flop_jit,
        "aten::linear", linear_flop_jit,
        "aten::matmul", matmul_flop_jit,
        "aten::mm", matmul_flop_jit,
    )
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            macs = int(analysis.total())
    finally:
        logger.setLevel(level)
        model.train(was_training)
    return {"macs": macs, "params": int(parameter_count(model)[""])}
