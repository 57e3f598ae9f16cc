"""onnxruntime sessions for ONNX image classifiers: the graph's input and output, a checked
session, one batch of logits.

Torch-free (numpy, onnx, onnxruntime; imported inside the functions that need them), so that the
same code measures a model on a workstation and on an edge board. Data sources are used through
their `batches()` method only; the tensors they yield are turned into numpy arrays here.

Every failure of a file or of onnxruntime is a `PddError` with one readable line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pdd_edge.errors import PddError

RGB = 3  # every pdd-edge dataset yields 3-channel RGB images


@dataclass(frozen=True)
class GraphIO:
    """The one image input and the logits output of a classifier graph."""

    input_name: str
    input_shape: tuple[int | None, ...]  # None: a symbolic or unknown dimension
    output_name: str
    num_outputs: int | None  # the class count, when the output's last dimension is static

    @property
    def channels(self) -> int | None:
        return self.input_shape[1]

    @property
    def hw(self) -> tuple[int, int] | None:
        h, w = self.input_shape[2:]
        return (h, w) if h is not None and w is not None else None

    @property
    def dynamic_batch(self) -> bool:
        return self.input_shape[0] is None

    def batch_size(self, requested: int) -> int:
        """`requested`, or 1 for a graph exported with a fixed batch of 1."""
        return requested if self.dynamic_batch else 1


def _dims(value_info) -> tuple[int | None, ...]:
    shape = value_info.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in shape.dim)


def graph_io(model, path: str | Path) -> GraphIO:
    """Describe the classifier's input and output; refuse graphs that are not NCHW float classifiers."""
    import onnx

    initializers = {t.name for t in model.graph.initializer}
    # Old exporters list weights as graph inputs too; only the others are fed by the caller.
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise PddError(f"{path} has {len(inputs)} inputs; pdd-edge runs image classifiers with one NCHW image input")
    inp = inputs[0]
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(inp.type.tensor_type.elem_type)
        raise PddError(f"{path} takes {kind} input {inp.name!r}; pdd-edge feeds normalised float32 images")
    dims = _dims(inp)
    if len(dims) != 4:
        raise PddError(f"{path} input {inp.name!r} has rank {len(dims)}; an NCHW image input has rank 4")
    if dims[0] not in (None, 1):
        raise PddError(f"{path} has a fixed batch of {dims[0]}; pdd-edge runs models with a dynamic batch or a batch of 1")
    out = model.graph.output[0]  # a classifier's first output is its logits
    return GraphIO(inp.name, dims, out.name, _class_count(_dims(out), out.name, path))


def _class_count(dims: tuple[int | None, ...], name: str, path: str | Path) -> int | None:
    """The class count of logits shaped (N, C), or (N, C, 1, 1) as a conv head (SqueezeNet) gives
    them; None when the graph leaves it symbolic (the first run checks the real shape)."""
    if not dims:
        return None  # shape not recorded
    if len(dims) == 2 or (len(dims) == 4 and all(d in (1, None) for d in dims[2:])):
        return dims[1]
    raise PddError(f"{path} output {name!r} has shape {_shape_text(dims)}; pdd-edge expects classifier logits "
                   "(N, classes) or (N, classes, 1, 1)")


def _shape_text(dims) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def as_logits(y: np.ndarray, batch: int, name: str) -> np.ndarray:
    """(N, C) logits from what the graph returned: (N, C, 1, 1) is squeezed; anything else whose
    shape was symbolic in the file is refused now that it is known."""
    if y.ndim == 4 and y.shape[2:] == (1, 1):
        y = y.reshape(y.shape[0], y.shape[1])
    if y.ndim != 2 or y.shape[0] != batch:
        raise PddError(f"output {name!r} has shape {_shape_text(y.shape)} for a batch of {batch}; pdd-edge expects "
                       "classifier logits (N, classes) or (N, classes, 1, 1)")
    return y


def check_graph(model, path: str | Path) -> None:
    """`onnx.checker` on a loaded model, as one readable line (a damaged file can still parse)."""
    import onnx

    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise PddError(f"{path} is not a valid ONNX model: {first_line(exc)}") from None


def session(model, *, threads: int | None = None, what: str = "the model"):
    """An onnxruntime CPU session for a ModelProto, serialized bytes or a path; errors as PddError."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: ORT's warnings about initializers are noise here
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    source = model if isinstance(model, (bytes, str)) else model.SerializeToString()
    try:
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's pybind errors (Fail, InvalidGraph, ...) share no useful base class
        raise PddError(f"onnxruntime cannot load {what}: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (third-party tools put whole graphs in theirs)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_logits(sess, io: GraphIO, x: np.ndarray) -> np.ndarray:
    try:
        y = sess.run([io.output_name], {io.input_name: x})[0]
    except Exception as exc:  # a graph that loads but cannot run on these inputs
        raise PddError(f"onnxruntime failed on a batch of shape {tuple(x.shape)}: {first_line(exc)}") from None
    return as_logits(y, len(x), io.output_name)


def op_counts(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _nodes(graph) -> Iterator:
    """Every node of `graph`, those of its subgraphs (If, Loop, Scan bodies) included."""
    import onnx

    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _nodes(sub)


def drop_unused_opsets(model) -> list[str]:
    """Remove the opset imports of domains no node uses (onnxruntime's quantizer declares nine),
    in place; the default domain stays. Returns the domains removed."""
    used = {node.domain for node in _nodes(model.graph)}
    used |= {node.domain for f in model.functions for node in f.node} | {f.domain for f in model.functions}
    used |= {"", "ai.onnx"}  # the default domain, whatever the graph holds
    dropped = [o.domain for o in model.opset_import if o.domain not in used]
    keep = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return dropped
