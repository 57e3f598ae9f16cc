"""fvcore's count of a PyTorch model, restricted to our MACs convention.

fvcore counts one multiply-accumulate per "flop" for conv and linear layers (the paper's thop
convention); by default it also adds BN, pooling and upsampling. We register only the conv and
matrix-product handles so its number means "MACs of conv and linear layers", the same quantity
the masked-network formula and the ONNX counter report.
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn


def fvcore_counts(model: nn.Module, input_hw: tuple[int, int], in_channels: int = 3) -> dict[str, int]:
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
