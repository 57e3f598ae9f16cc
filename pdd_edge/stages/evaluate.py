"""`evaluate`: top-1/top-5 of a checkpoint (pdd-edge's own, or third-party weights of a zoo model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pdd_edge import checkpoint as ckpt_io
from pdd_edge.stages.common import DataConfig, NormOverride, check_classes, resolve_preprocess
from pdd_edge.training.evaluate import evaluate


def evaluate_checkpoint(path: str | Path, data_cfg: DataConfig, *, model_name: str | None = None,
                        norm: NormOverride = NormOverride(), batch_size: int = 500) -> dict[str, Any]:
    model, info = ckpt_io.load(path, model_name=model_name)  # before the data: fail fast on a bad file
    data = data_cfg.load()
    check_classes(info, data, "model")
    pre = resolve_preprocess(data, info, norm)
    metrics = evaluate(model, data.val, pre, batch_size=batch_size)
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
