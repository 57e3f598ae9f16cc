"""`evaluate`: top-1/top-5 of a checkpoint (pdd-edge's own, or third-party weights of a zoo model),
or of an ONNX classifier, measured on the ONNX file itself with onnxruntime.

As a pipeline stage it measures every deployable file of the run (`RunDir.deployable`) and writes
`accuracy.json`; the report reads accuracy from there, never from PyTorch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TYPE_CHECKING

from pdd_edge.artifact import RunDir
from pdd_edge.config import CompressConfig
from pdd_edge.data.options import DataConfig, NormOverride, dataset_for
from pdd_edge.errors import PddError
from pdd_edge.fileio import write_json
from pdd_edge.onnx import accuracy as onnx_accuracy
from pdd_edge.onnx.source import open_onnx
from pdd_edge.stages import StageResult

if TYPE_CHECKING:
    from pdd_edge.training.setup import TrainSetup  # noqa: F401 (the stage signature)


def is_onnx(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".onnx"


def check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PddError(f"--batch-size must be a positive integer, got {batch_size}")


def evaluate_checkpoint(path: str | Path, data_cfg: DataConfig, *, model_name: str | None = None,
                        norm: NormOverride = NormOverride(), batch_size: int = 500,
                        device: Any = None) -> dict[str, Any]:
    """Top-1/top-5 of a PyTorch checkpoint, on `device` (a torch.device; default CPU), in float32."""
    # Imported here: evaluate_onnx runs on edge installs, which have no torch.
    from pdd_edge import checkpoint
    from pdd_edge.training.accuracy import evaluate

    check_batch_size(batch_size)
    model, info = checkpoint.load(path, model_name=model_name)
    data, pre = dataset_for(info, data_cfg, norm)
    metrics = evaluate(model.to(device or "cpu"), data.val, pre, batch_size=batch_size)
    return {
        "path": str(path),
        "model": info.model,
        "format": "pytorch",
        "masked": info.masked,
        "pruned": info.pruned,
        "dataset": data.name,
        "num_classes": info.num_classes,
        "preprocess": pre.to_dict(),
        **metrics,
    }


def evaluate_onnx(path: str | Path, data_cfg: DataConfig, *, norm: NormOverride = NormOverride(),
                  batch_size: int = 500) -> dict[str, Any]:
    check_batch_size(batch_size)
    src = open_onnx(path, data_cfg, norm)
    metrics = onnx_accuracy.score(src.session(), src.io, src.val_batches(batch_size))
    return {
        "path": str(path),
        "model": src.meta.model or "ONNX model",
        "format": "onnx",
        "masked": False,
        "pruned": src.meta.keep is not None,
        "quantization": src.meta.quantization,
        "dataset": src.data.name,
        "num_classes": src.data.num_classes,
        "preprocess": src.preprocess.to_dict(),
        "preprocess_source": src.preprocess_source,
        **metrics,
    }


# --- the pipeline stage ------------------------------------------------------------------------

ACCURACY_SCHEMA = "pdd-edge.accuracy/1"


def run(run: RunDir, cfg: CompressConfig, setup: TrainSetup) -> StageResult:
    results = {name: evaluate_onnx(path, cfg.data) | {"file": run.rel(path)} for name, path in run.deployable(cfg.quantize).items()}
    write_json(run.accuracy(), {"schema": ACCURACY_SCHEMA, "dataset": cfg.data.name, "variants": results})
    return StageResult([run.accuracy()], {name: {"top1": r["top1"], "top5": r["top5"], "count": r["count"]}
                                          for name, r in results.items()})

