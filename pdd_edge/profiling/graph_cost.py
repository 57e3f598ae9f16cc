"""Multiply-accumulates (MACs) and parameters counted from an ONNX graph.

Convention, the same as `pdd_edge.zoo.cost` and fvcore's convolution + linear count: MACs are
the multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul (and of their integer and
QLinear forms in quantized models); BatchNormalization, activations, pooling, additions and
all other ops count zero.

    Conv           prod(Y.shape) * prod(W.shape[1:])   = N*C_out*H_out*W_out * (C_in/groups)*kH*kW
    ConvTranspose  prod(X.shape) * prod(W.shape[1:])   = N*C_in*H_in*W_in * (C_out/groups)*kH*kW
    Gemm           prod(Y.shape) * K, K = A.shape[0] if transA else A.shape[1]
    MatMul         prod(Y.shape) * A.shape[-1]          (numpy broadcasting, batched or 1-D)

Params are the elements of the *constant* inputs of those layers (weights and biases): tensors
that are initializers, outputs of Constant nodes, or computed from constants only (a
DequantizeLinear of an int8 initializer, a Transpose of a weight). Each tensor counts once,
even when layers share it. A weight fed at run time as a graph input is an input, not a
parameter. BatchNormalization scale/bias are not counted: in a simplified export BN is folded
into the preceding convolution, whose bias then carries it.

Shapes come from `onnx.shape_inference` after the graph inputs' dynamic dimensions are
replaced by the concrete sizes being profiled. Where it gives up (e.g. a Pad whose pads are
computed by a chain of Concat/Reshape/Slice, as torch exports `F.pad`), the missing shapes are
read from one onnxruntime run on zero inputs with those tensors exposed as outputs: the
shapes the runtime really produces. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from pdd_edge.errors import PddError

# op type -> (MAC rule, indices of the inputs that are weights or biases)
COUNTED_OPS: dict[str, tuple[str, tuple[int, ...]]] = {
    "Conv": ("conv", (1, 2)),
    "ConvInteger": ("conv", (1,)),
    "QLinearConv": ("qconv", (3, 8)),
    "ConvTranspose": ("conv_transpose", (1, 2)),
    "Gemm": ("gemm", (0, 1, 2)),
    "MatMul": ("matmul", (0, 1)),
    "MatMulInteger": ("matmul", (0, 1)),
    "QLinearMatMul": ("matmul", (0, 3)),
}
# Nodes with subgraphs: layers inside them are not counted, and the report says so.
CONTROL_FLOW = {"If", "Loop", "Scan"}
# Ops that produce a fresh value on every run even from constant inputs.
NON_DETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}


@dataclass(frozen=True)
class LayerCost:
    name: str
    op_type: str
    macs: int
    params: int


@dataclass
class GraphCost:
    macs: int = 0
    params: int = 0
    layers: list[LayerCost] = field(default_factory=list)
    uncounted: list[str] = field(default_factory=list)  # "node (op): why" for layers we could not size
    shape_source: str = "onnx"  # "onnx+onnxruntime" when some shapes came from a run

    def by_op(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for layer in self.layers:
            row = table.setdefault(layer.op_type, {"count": 0, "macs": 0, "params": 0})
            row["count"] += 1
            row["macs"] += layer.macs
            row["params"] += layer.params
        return table


def count_cost(model, input_shapes: Mapping[str, Sequence[int]]) -> GraphCost:
    """MACs and params of `model` run on inputs of `input_shapes` (name -> concrete shape)."""
    shapes = infer_shapes(model, input_shapes)
    cost = GraphCost()
    layers = [n for n in model.graph.node if _is_counted(n)]
    missing = sorted({name for n in layers for name in (*n.input, *n.output[:1]) if name and shapes.get(name) is None})
    if missing:
        shapes.update(runtime_shapes(model, input_shapes, missing))
        cost.shape_source = "onnx+onnxruntime"
    constants = constant_tensors(model.graph)
    counted_params: set[str] = set()
    for node in model.graph.node:
        label = node.name or f"{node.op_type} -> {node.output[0] if node.output else '?'}"
        if node.op_type in CONTROL_FLOW:
            cost.uncounted.append(f"{label} ({node.op_type}): layers inside subgraphs are not counted")
            continue
        if not _is_counted(node):
            continue
        rule, weight_inputs = COUNTED_OPS[node.op_type]
        macs = _macs(rule, node, shapes)
        if macs is None:
            cost.uncounted.append(f"{label} ({node.op_type}): shape could not be inferred")
            continue
        params = 0
        for i in weight_inputs:
            name = node.input[i] if i < len(node.input) else ""
            if name and name in constants and name not in counted_params and shapes.get(name) is not None:
                counted_params.add(name)
                params += math.prod(shapes[name])
        cost.layers.append(LayerCost(label, node.op_type, macs, params))
        cost.macs += macs
        cost.params += params
    return cost


def _is_counted(node) -> bool:
    return node.op_type in COUNTED_OPS and node.domain in ("", "ai.onnx")


def _macs(rule: str, node, shapes: Mapping[str, list[int] | None]) -> int | None:
    def shape(i: int, outputs: bool = False) -> list[int] | None:
        names = node.output if outputs else node.input
        return shapes.get(names[i]) if i < len(names) and names[i] else None

    y = shape(0, outputs=True)
    if rule in ("conv", "qconv"):
        w = shape(3 if rule == "qconv" else 1)
        return None if y is None or w is None else math.prod(y) * math.prod(w[1:])
    if rule == "conv_transpose":
        x, w = shape(0), shape(1)
        return None if x is None or w is None else math.prod(x) * math.prod(w[1:])
    a = shape(0)
    if y is None or a is None:
        return None
    if rule == "gemm":
        trans_a = any(attr.name == "transA" and attr.i for attr in node.attribute)
        return math.prod(y) * (a[0] if trans_a else a[1])
    return math.prod(y) * a[-1]  # matmul: every output element is a dot product of length K


def infer_shapes(model, input_shapes: Mapping[str, Sequence[int]]) -> dict[str, list[int] | None]:
    """Concrete shape of every tensor (None where unknown) with the inputs fixed to `input_shapes`."""
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:
        if value.name in input_shapes:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, input_shapes[value.name]):
                dim.Clear()
                dim.dim_value = int(size)
    # Intermediate value_info recorded by the exporter may carry symbolic sizes: drop it so
    # inference recomputes every shape from the now concrete inputs.
    del fixed.graph.value_info[:]
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, strict_mode=False, data_prop=True)
    except Exception as exc:  # InferenceError, ValidationError: a graph onnx cannot type
        raise PddError(f"ONNX shape inference failed ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    shapes: dict[str, list[int] | None] = {}
    graph = inferred.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if value.type.HasField("tensor_type"):
            shapes[value.name] = _static_dims(value.type.tensor_type)
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _static_dims(tensor_type) -> list[int] | None:
    if not tensor_type.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    return None if any(d is None for d in dims) else dims  # type: ignore[return-value]


def runtime_shapes(model, input_shapes: Mapping[str, Sequence[int]], names: Sequence[str]) -> dict[str, list[int]]:
    """Shapes of `names` from one onnxruntime run on zero inputs; {} if the model cannot run
    (its layers are then reported as uncounted, never guessed)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    outputs = {o.name for o in exposed.graph.output}
    # An output without a type is fine: onnxruntime types it from the node that produces it.
    exposed.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in outputs)
    feeds = {}
    for value in model.graph.input:
        if value.name in input_shapes:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
            feeds[value.name] = np.zeros(input_shapes[value.name], dtype=dtype)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor by name
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(exposed.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
        values = session.run(list(names), feeds)
    except Exception:  # noqa: BLE001 - any failure leaves the shapes unknown, reported per layer
        return {}
    return {n: list(v.shape) for n, v in zip(names, values)}


def constant_tensors(graph) -> set[str]:
    """Names of tensors whose value is fixed in the file: initializers, Constant outputs, and
    outputs of deterministic nodes whose inputs are all constant (graph nodes are topologically
    sorted, so one pass suffices)."""
    constants = {init.name for init in graph.initializer}
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type == "Constant" or (
            inputs and node.op_type not in NON_DETERMINISTIC | CONTROL_FLOW and all(n in constants for n in inputs)
        ):
            constants.update(node.output)
    return constants
