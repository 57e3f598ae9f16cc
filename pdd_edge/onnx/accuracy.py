"""Accuracy of an ONNX classifier measured on the file itself, over a dataset's images.

Torch-free (numpy; data sources are used through their `batches()` method only).

What the model expects comes from, in this order: the graph itself (input name, channel count,
a static height and width, a static class count), pdd-edge's metadata (`onnx.meta`), the
command line (`--mean/--std`), and the dataset's default normalisation for a model that says
nothing. Every mismatch with the dataset is a `PddError` that names the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np

from pdd_edge.data.options import check_class_names
from pdd_edge.data.preprocess import Preprocess, size_option
from pdd_edge.errors import PddError
from pdd_edge.onnx.meta import OnnxMeta
from pdd_edge.onnx.runtime import RGB, GraphIO, run_logits

if TYPE_CHECKING:
    from pdd_edge.data.dataset import Dataset, Source


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
        raise PddError(f"{path} expects {h}x{w} inputs but {dataset.name} gives "
                       f"{dataset.input_hw[0]}x{dataset.input_hw[1]}; pass --input-size {size_option(pre.input_size)}")
    if io.num_outputs is not None and io.num_outputs != dataset.num_classes:
        raise PddError(f"{path} predicts {io.num_outputs} classes but {dataset.name} has {dataset.num_classes}; "
                       "use a model trained on this dataset")
    check_class_names(meta.classes, dataset, str(path))
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


def numpy_topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> int:
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())


def cross_entropy_sum(logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].sum())


def score(sess, io: GraphIO, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Top-1/top-5 in percent and mean cross-entropy, with the same keys as the PyTorch evaluation."""
    top1 = top5 = 0
    loss = 0.0
    n = 0
    for x, y in batches:
        logits = run_logits(sess, io, x)
        top1 += numpy_topk_correct(logits, y, 1)
        top5 += numpy_topk_correct(logits, y, 5)
        loss += cross_entropy_sum(logits, y)
        n += len(y)
    if n == 0:
        return {"top1": float("nan"), "top5": float("nan"), "loss": float("nan"), "count": 0}
    return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "loss": loss / n, "count": n}
