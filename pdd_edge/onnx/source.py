"""An ONNX model opened together with the dataset it is measured on (simplify, quantize, evaluate)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdd_edge.data.dataset import Dataset
from pdd_edge.data.options import DataConfig, NormOverride
from pdd_edge.data.preprocess import Preprocess
from pdd_edge.onnx import accuracy as onnx_accuracy
from pdd_edge.onnx import runtime
from pdd_edge.onnx.meta import OnnxMeta, load_onnx, read_meta
from pdd_edge.onnx.runtime import GraphIO


@dataclass
class OnnxInput:
    path: Path
    model: Any  # onnx.ModelProto
    meta: OnnxMeta
    io: GraphIO
    data: Dataset
    preprocess: Preprocess
    preprocess_source: str  # where mean/std came from, reported next to the numbers

    def val_batches(self, batch_size: int, limit: int | None = None):
        return onnx_accuracy.normalized_batches(self.data.val, self.preprocess, self.io.batch_size(batch_size), limit)

    def train_batches(self, batch_size: int, limit: int):
        """The first `limit` images of one fixed shuffle of the training split (all classes mixed)."""
        return onnx_accuracy.normalized_batches(self.data.train, self.preprocess, self.io.batch_size(batch_size), limit,
                                            shuffle=True)

    def session(self, threads: int | None = None):
        return runtime.session(self.model, threads=threads, what=str(self.path))


def open_onnx(path: str | Path, data: DataConfig, norm: NormOverride) -> OnnxInput:
    """Load, check and describe `path`, and the dataset it is fed with; every misfit is a PddError."""
    p = Path(path)
    model = load_onnx(p)
    runtime.check_graph(model, p)
    meta = read_meta(model)
    io = runtime.graph_io(model, p)
    recorded_hw = io.hw or (meta.preprocess.input_size if meta.preprocess is not None else None)
    dataset = data.for_model(meta.dataset, recorded_hw, str(p)).load()
    pre, source = onnx_accuracy.resolve_preprocess(meta, io, dataset, mean=norm.mean, std=norm.std, path=p)
    return OnnxInput(p, model, meta, io, dataset, pre, source)
