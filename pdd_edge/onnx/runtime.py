"""Running an ONNX image classifier with onnxruntime over a dataset: the artifact's own numbers.

Torch-free (numpy, onnx, onnxruntime; imported inside the functions that need them), so that the
same code measures a model on a workstation and on an edge board. Data sources are used through
their `batches()` method only; the tensors they yield are turned into numpy arrays here.

What the model expects comes from, in this order: the graph itself (input name, channel count,
a static height and width, a static class count), pdd-edge's metadata (`onnx_meta`), the
command line (`--mean/--std`), and the dataset's default normalisation for a model that says
nothing. Every mismatch with the dataset is a `PddError` that names the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from pdd_edge.errors import FAILURE, PddError
from pdd_edge.onnx_meta import OnnxMeta
from pdd_edge.preprocess import Preprocess

if TYPE_CHECKING:
    from pdd_edge.data.base import Dataset, Source

RGB = 3  # every pdd-edge dataset yields 3-channel RGB images
# Largest absolute logit difference accepted between an artifact and the model it was made from
# (FP32 export and simplification; an INT8 model is judged by its accuracy instead).
PARITY_TOLERANCE = 1e-4


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
    out_dims = _dims(out)
    return GraphIO(inp.name, dims, out.name, out_dims[-1] if out_dims else None)


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


def resolve_preprocess(meta: OnnxMeta, io: GraphIO, dataset: "Dataset", *, mean: Sequence[float] | None = None,
                       std: Sequence[float] | None = None, path: str | Path = "the model") -> tuple[Preprocess, str]:
    """The preprocessing to feed `dataset` to this model, and where its mean/std came from.

    Input size: the graph's static height and width, else the metadata's, else the dataset's.
    It must equal the dataset's image size: pdd-edge never resizes behind the user's back.
    """
    if meta.preprocess is not None:
        base, source = meta.preprocess, "model metadata"
    else:
        base, source = dataset.preprocess, f"{dataset.name} default (the model has no preprocessing metadata)"
    if mean is not None or std is not None:
        source = "command line" if mean is not None and std is not None else f"command line and {source}"
    hw = io.hw or base.input_size
    pre = base.with_overrides(mean=mean, std=std, input_size=hw)
    if io.channels is not None and io.channels != RGB:
        raise PddError(f"{path} expects {io.channels}-channel input but {dataset.name} gives 3-channel RGB images")
    if pre.input_size != dataset.input_hw:
        h, w = pre.input_size
        fix = f"pass --input-size {h}" if h == w else "pdd-edge datasets are square; re-export the model for a square input"
        raise PddError(f"{path} expects {h}x{w} inputs but {dataset.name} gives "
                       f"{dataset.input_hw[0]}x{dataset.input_hw[1]}; {fix}")
    if io.num_outputs is not None and io.num_outputs != dataset.num_classes:
        raise PddError(f"{path} predicts {io.num_outputs} classes but {dataset.name} has {dataset.num_classes}; "
                       "use a model trained on this dataset")
    return pre, source


def normalized_batches(source: "Source", pre: Preprocess, batch_size: int, limit: int | None = None, *,
                       shuffle: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Float32 `(x - mean) / std` NCHW batches and int64 labels, without augmentation.

    In the source's order, or (`shuffle`) in one fixed seeded order: the first `limit` images of
    a shuffled training split mix all classes, which is what a calibration sample needs.
    """
    mean = np.asarray(pre.mean, dtype=np.float32).reshape(1, RGB, 1, 1)
    std = np.asarray(pre.std, dtype=np.float32).reshape(1, RGB, 1, 1)
    seen = 0
    for x, y in source.batches(batch_size, shuffle=shuffle, augment=None, seed=0, epoch=0):
        if limit is not None and seen >= limit:
            return
        x, y = np.asarray(x), np.asarray(y)
        if limit is not None:
            x, y = x[: limit - seen], y[: limit - seen]
        seen += len(y)
        yield np.ascontiguousarray((x - mean) / std, dtype=np.float32), y.astype(np.int64)


def run_logits(sess, io: GraphIO, x: np.ndarray) -> np.ndarray:
    try:
        return sess.run([io.output_name], {io.input_name: x})[0]
    except Exception as exc:  # a graph that loads but cannot run on these inputs
        raise PddError(f"onnxruntime failed on a batch of shape {tuple(x.shape)}: {first_line(exc)}") from None


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> int:
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())


def cross_entropy_sum(logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].sum())


def accuracy(sess, io: GraphIO, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Top-1/top-5 in percent and mean cross-entropy, with the same keys as the PyTorch evaluation."""
    top1 = top5 = 0
    loss = 0.0
    n = 0
    for x, y in batches:
        logits = run_logits(sess, io, x)
        top1 += topk_correct(logits, y, 1)
        top5 += topk_correct(logits, y, 5)
        loss += cross_entropy_sum(logits, y)
        n += len(y)
    if n == 0:
        return {"top1": float("nan"), "top5": float("nan"), "loss": float("nan"), "count": 0}
    return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "loss": loss / n, "count": n}


def max_abs_diff(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Largest absolute logit difference; NaN or a shape mismatch counts as infinitely far."""
    if reference.shape != candidate.shape:
        return float("inf")
    diff = float(np.max(np.abs(reference.astype(np.float64) - candidate.astype(np.float64)), initial=0.0))
    return diff if np.isfinite(diff) else float("inf")


@dataclass(frozen=True)
class ParityConfig:
    """How an FP32 artifact is compared with its source: on the first `images` validation images."""

    images: int = 512
    batch_size: int = 64  # not the traced batch of 2, and the last batch is smaller: the dynamic axis is exercised
    tolerance: float = PARITY_TOLERANCE

    def __post_init__(self) -> None:
        if self.images < 1:
            raise PddError(f"parity needs at least 1 validation image, got {self.images}")


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float  # largest absolute logit difference
    images: int
    max_abs_logit: float  # scale of the reference logits, to read the difference against

    def require(self, tolerance: float, *, candidate: str, reference: str, dataset: str) -> None:
        """A negative verdict (exit code 1) when the difference is over `tolerance` or not a number."""
        if not self.max_abs_diff <= tolerance:
            raise PddError(f"{candidate} differs from {reference} by up to {self.max_abs_diff:.3g} in the logits "
                           f"(largest |logit| {self.max_abs_logit:.3g}) on {self.images} {dataset} validation "
                           f"images (limit {tolerance:g}); nothing written", exit_code=FAILURE)


def parity(reference: Callable[[np.ndarray], np.ndarray], sess, io: GraphIO,
           batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> Parity:
    """Compare `reference(x)` with the session's logits on every batch."""
    worst, scale, n = 0.0, 0.0, 0
    for x, _ in batches:
        expected = reference(x)
        worst = max(worst, max_abs_diff(expected, run_logits(sess, io, x)))
        scale = max(scale, float(np.max(np.abs(expected), initial=0.0)))
        n += len(x)
    if n == 0:
        raise PddError("no images to compare the models on: the dataset's validation split is empty")
    return Parity(worst, n, scale)


def op_counts(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
