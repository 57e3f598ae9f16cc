"""`export`: a pruned (or unpruned) checkpoint to ONNX, proven equal to PyTorch on real images.

Order of work (timm's export): build the graph, attach pdd-edge's metadata, `onnx.checker` with
full shape inference, then run onnxruntime and PyTorch on validation images of the model's
dataset and compare logits. The file is written (atomically) only when all of that passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pdd_edge import checkpoint
from pdd_edge.artifact import RunDir
from pdd_edge.config import CompressConfig
from pdd_edge.data.options import DataConfig, NormOverride, dataset_for
from pdd_edge.errors import FAILURE, PddError
from pdd_edge.fileio import atomic_path
from pdd_edge.onnx import accuracy as onnx_accuracy
from pdd_edge.onnx import parity, runtime
from pdd_edge.onnx.convert import to_onnx
from pdd_edge.onnx.meta import OnnxMeta, write_meta
from pdd_edge.onnx.parity import ParityConfig
from pdd_edge.stages import StageResult

if TYPE_CHECKING:
    from pdd_edge.training.setup import TrainSetup  # noqa: F401 (the stage signature)


@dataclass(frozen=True)
class ExportConfig:
    data: DataConfig = field(default_factory=lambda: DataConfig(name=None))  # None: the checkpoint's dataset
    model: str | None = None  # zoo name, for third-party state dicts only
    norm: NormOverride = field(default_factory=NormOverride)
    parity: ParityConfig = field(default_factory=ParityConfig)


@dataclass(frozen=True)
class ExportResult:
    path: str
    model: str
    pruned: bool
    dataset: str
    opset: int
    nodes: int
    size_bytes: int
    parity_max_abs_diff: float
    parity_images: int
    tolerance: float  # the limit applied: atol + rtol * max|logit| (see pdd_edge/tolerance.py)
    tolerance_rule: str


def opset_version(proto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def export_checkpoint(cfg: ExportConfig, path: str | Path, out: str | Path) -> ExportResult:
    import onnx

    model, info = checkpoint.load(path, model_name=cfg.model)
    if info.masked:
        raise PddError(f"{path} still has PDD masks (a distill-prune checkpoint); remove the masked channels "
                       f"first with `pdd-edge prune {path} --out pruned.pt` and export the pruned checkpoint")
    data, pre = dataset_for(info, cfg.data, cfg.norm)

    proto = to_onnx(model, pre.input_size)
    write_meta(proto, OnnxMeta(
        model=info.model, num_classes=info.num_classes, classes=info.classes or data.classes, preprocess=pre,
        keep=info.keep if info.pruned else None, dataset=info.dataset or data.name,
    ))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise PddError(f"the exported graph fails onnx.checker: {runtime.first_line(exc)}",
                       exit_code=FAILURE) from None

    sess = runtime.session(proto, what=f"the ONNX export of {path}")
    graph = runtime.graph_io(proto, out)

    @torch.no_grad()
    def reference(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x)).numpy()

    batches = onnx_accuracy.normalized_batches(data.val, pre, cfg.parity.batch_size, cfg.parity.images)
    check = parity.compare(reference, sess, graph, batches)
    limit = check.require(cfg.parity.tolerance, candidate="the ONNX export", reference="PyTorch", dataset=data.name)

    with atomic_path(out) as tmp:
        onnx.save(proto, tmp)
    return ExportResult(
        path=str(out), model=info.model, pruned=info.pruned, dataset=data.name, opset=opset_version(proto),
        nodes=len(proto.graph.node), size_bytes=Path(out).stat().st_size,
        parity_max_abs_diff=check.max_abs_diff, parity_images=check.images, tolerance=limit,
        tolerance_rule=cfg.parity.tolerance.describe(check.max_abs_logit),
    )


# --- the pipeline stage ------------------------------------------------------------------------

# The two trained students of a run, each exported under its variant name.
SOURCES = {"baseline": "baseline", "pruned": "finetune"}


def run(run: RunDir, cfg: CompressConfig, setup: TrainSetup) -> StageResult:
    files, metrics = [], {}
    for variant, stage in SOURCES.items():
        res = export_checkpoint(ExportConfig(data=cfg.data), run.best(stage), run.exported(variant))
        metrics[variant] = {"parity_max_abs_diff": res.parity_max_abs_diff, "nodes": res.nodes, "size_bytes": res.size_bytes}
        files.append(run.exported(variant))
    return StageResult(files, metrics)
