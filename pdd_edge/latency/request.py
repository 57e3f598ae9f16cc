"""What a latency table is asked for, the key it is cached under, and where that cache file lives.

A `TableRequest` names the network, the device and how to time it. Its key (target, model,
input size, batch, threads, onnxruntime version) decides whether a table already made can be
reused: `table_key` spells it, `cache_path` names its file, `cached` reads the file back only
when it was made for that key. `foreign_here` is the one "is this machine the target's device?"
check, for a table measured here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdd_edge.errors import PddError
from pdd_edge.latency.predictor import LatencyPredictor, load


@dataclass(frozen=True)
class TableRequest:
    model: str  # a model spec (zoo name, torchvision:, timm:, file.py:function)
    target: Any  # profiling.targets.Target
    input_hw: tuple[int, int] = (32, 32)
    num_classes: int = 10
    model_args: dict[str, Any] | None = None
    batch_size: int | None = None  # None: the target's primary batch size
    threads: int | None = None  # None: the target's
    warmup: int = 10
    min_runs: int = 50
    min_time_s: float = 0.2  # per layer file and network: they are timed one after another
    seed: int = 0

    @property
    def batch(self) -> int:
        return self.batch_size or self.target.batch_sizes[0]

    def thread_count(self) -> int | None:
        return self.threads if self.threads is not None else self.target.threads


def foreign_here(req: TableRequest) -> tuple[dict[str, Any], list[str]]:
    """(this machine's environment as the runner reports it at `req`'s threads, why this machine is
    not `req.target`'s device: empty when it is): the one check before measuring a table here."""
    from pdd_edge.profiling import provenance, runner

    env = runner.environment(req.target.execution_provider, runner.resolve_threads(req.thread_count()))
    return env, provenance.foreign_reasons(req.target.to_dict(), env)


def table_key(req: TableRequest, threads: int | str, ort_version: str) -> dict[str, Any]:
    target = req.target.to_dict()
    digest = hashlib.sha256(json.dumps({k: v for k, v in target.items() if k != "source"}, sort_keys=True).encode()).hexdigest()
    return {"target": req.target.name, "target_digest": digest[:16], "model": req.model,
            "model_args": dict(req.model_args or {}), "num_classes": req.num_classes,
            "input_size": list(req.input_hw), "batch_size": req.batch, "threads": threads,
            "provider": req.target.execution_provider, "onnxruntime": ort_version,
            "format": 2}  # 2: the thinnest network is measured (record["floor"]); older tables are re-made


def cache_path(key: dict[str, Any]) -> Path:
    """Where the table for `key` lives: $PDD_EDGE_CACHE, else $XDG_CACHE_HOME/pdd-edge, else ~/.cache/pdd-edge."""
    from pdd_edge.zoo.specs import slug

    from pdd_edge.fileio import cache_root

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    h, w = key["input_size"]
    name = (f"{key['target']}-{slug(key['model'])}-{h}x{w}-b{key['batch_size']}-t{key['threads']}"
            f"-ort{key['onnxruntime']}-{digest}.json")
    return cache_root() / "latency" / name


def cached(path: Path, key: dict[str, Any]) -> LatencyPredictor | None:
    """The table at `path` if it was made for `key`; None if there is none, it is for another key,
    or it is damaged (then it is measured again and replaced)."""
    if not path.exists():
        return None
    try:
        table = load(path)
    except PddError:
        return None
    return table if table.key == key else None
