"""`simplify`: onnxsim (constant folding, BatchNormalization folded into Conv, dead nodes removed),
then the simplified graph is checked against the original with onnxruntime on real images.

onnxsim folds a BatchNormalization into the Conv that feeds it; one that cannot be folded (its
input is not a Conv's only use) stays and is counted in the result, so the report never claims
a fold that did not happen. pdd-edge's metadata is carried over; onnxsim's own provenance keys
are dropped, they describe the tool rather than the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pdd_edge.artifact import RunDir
from pdd_edge.config import CompressConfig
from pdd_edge.data.options import DataConfig, NormOverride
from pdd_edge.fileio import atomic_path
from pdd_edge.onnx import parity, runtime
from pdd_edge.onnx.convert import simplify_proto
from pdd_edge.onnx.meta import copy_meta
from pdd_edge.onnx.parity import ParityConfig
from pdd_edge.onnx.source import open_onnx
from pdd_edge.stages import StageResult
from pdd_edge.stages.export import SOURCES

if TYPE_CHECKING:
    from pdd_edge.training.setup import TrainSetup  # noqa: F401 (the stage signature)

BATCHNORM = "BatchNormalization"


@dataclass(frozen=True)
class SimplifyConfig:
    data: DataConfig = field(default_factory=lambda: DataConfig(name=None))  # None: the model's dataset
    norm: NormOverride = field(default_factory=NormOverride)
    parity: ParityConfig = field(default_factory=ParityConfig)


@dataclass(frozen=True)
class SimplifyResult:
    path: str
    dataset: str
    nodes_before: int
    nodes_after: int
    batchnorm_before: int
    batchnorm_after: int
    size_before: int
    size_after: int
    parity_max_abs_diff: float
    parity_images: int
    tolerance: float  # the limit applied: atol + rtol * max|logit| (see pdd_edge/tolerance.py)
    tolerance_rule: str


def simplify_model(cfg: SimplifyConfig, model_path: str | Path, out: str | Path) -> SimplifyResult:
    import onnx

    src = open_onnx(model_path, cfg.data, cfg.norm)
    simplified = simplify_proto(src.model)
    copy_meta(src.model, simplified)

    before, after = runtime.op_counts(src.model), runtime.op_counts(simplified)
    reference = src.session()
    graph = runtime.graph_io(simplified, out)
    candidate = runtime.session(simplified, what=f"the simplified {model_path}")
    check = parity.compare(lambda x: runtime.run_logits(reference, src.io, x), candidate, graph,
                             src.val_batches(cfg.parity.batch_size, cfg.parity.images))
    limit = check.require(cfg.parity.tolerance, candidate="the simplified model", reference=str(model_path),
                  dataset=src.data.name)

    with atomic_path(out) as tmp:
        onnx.save(simplified, tmp)
    return SimplifyResult(
        path=str(out), dataset=src.data.name, nodes_before=sum(before.values()), nodes_after=sum(after.values()),
        batchnorm_before=before.get(BATCHNORM, 0), batchnorm_after=after.get(BATCHNORM, 0),
        size_before=src.path.stat().st_size, size_after=Path(out).stat().st_size,
        parity_max_abs_diff=check.max_abs_diff, parity_images=check.images, tolerance=limit,
        tolerance_rule=cfg.parity.tolerance.describe(check.max_abs_logit),
    )


# --- the pipeline stage ------------------------------------------------------------------------

def run(run: RunDir, cfg: CompressConfig, setup: TrainSetup) -> StageResult:
    files, metrics = [], {}
    for variant in SOURCES:
        res = simplify_model(SimplifyConfig(data=cfg.data), run.exported(variant), run.simplified(variant))
        metrics[variant] = {k: v for k, v in vars(res).items() if k != "path"}
        files.append(run.simplified(variant))
    return StageResult(files, metrics)
