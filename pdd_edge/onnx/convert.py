"""A PyTorch network to the ONNX graph pdd-edge deploys: torch.onnx's export, then onnxsim.

Here, not in the `export` and `simplify` stages, because the latency table (`latency/table.py`)
converts networks the same way to measure what `compress` deploys, and sits below the stages.
Torch is imported when a network is converted, so the ONNX files' constants stay readable on an
edge install.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from pdd_edge.errors import PddError
from pdd_edge.onnx.quiet import quiet
from pdd_edge.onnx.runtime import first_line

if TYPE_CHECKING:
    from torch import nn

# Opset 18 is what the torch.export-based exporter emits natively; asking it for 17 makes it
# down-convert, which fails for Pad (used by the index-mapped shortcuts of pruned ResNets).
OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def to_onnx(model: nn.Module, input_hw: tuple[int, int]):
    """Trace `model` to an ONNX ModelProto with a dynamic batch axis, without exporter chatter.

    The torch.export-based exporter (`dynamo=True`) is used, not the TorchScript one: on the
    same pruned ResNet-20 it gives 58 nodes, Conv+BN folded, against 232 from the TorchScript
    exporter, whose lowering of the index-mapped shortcut's channel pad leaves a
    ConstantOfShape/Concat/Reshape/Slice/Transpose/Cast subgraph per block that its constant
    folding cannot fold (a negative-step Slice). The TorchScript exporter is also deprecated.
    """
    import torch

    if importlib.util.find_spec("onnxscript") is None:
        raise PddError("export needs onnxscript (the torch.onnx exporter's backend); "
                       "install the training extra: pip install 'pdd-edge[train]'")
    example = torch.zeros(2, 3, *input_hw)  # batch 2: a batch of 1 could be specialised away
    batch = torch.export.Dim("batch", min=1)
    with quiet("onnxscript", "torch.onnx", "torch.export", "torch._export"):
        program = torch.onnx.export(
            model, (example,), dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), verbose=False, optimize=True,
            external_data=False,
        )
    return program.model_proto


def simplify_proto(model):
    """onnxsim on a ModelProto; its failures (an op it cannot infer, ...) become one line."""
    import onnxsim

    try:
        simplified, _ = onnxsim.simplify(model)
    except Exception as exc:  # onnxsim raises RuntimeError, ValueError and its own types
        raise PddError(f"onnxsim cannot simplify the model: {first_line(exc)}") from None
    return simplified
