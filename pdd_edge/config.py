"""The configuration of a `compress` run (`CompressConfig`, its recipes), and stable config hashes.

Stages read the options they need from `CompressConfig`; each option is validated once, by the
stage config that uses it (see `pipeline.validate`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from pdd_edge.data.options import DataConfig, NormOverride
from pdd_edge.errors import PddError


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "__fspath__"):
        return str(obj)
    return obj


def config_hash(cfg: Any) -> str:
    """Short, stable hash of a config: equal configs give equal hashes across runs and machines."""
    blob = json.dumps(to_jsonable(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# Recipes: the paper's CIFAR schedule, and a short one that fits the built-in `digits` (1,438
# training images) in minutes on 2 CPU cores. Chosen per dataset unless options override them.
RECIPES: dict[str, dict[str, Any]] = {
    # A deep teacher from scratch at batch 64 diverges at lr 0.1 on digits: 0.05 with a one-epoch
    # warm-up trains ResNet56 to ~98.6 % in 10 epochs.
    "quick": {"teacher_epochs": 10, "teacher_lr": 0.05, "teacher_warmup_epochs": 1, "distill_epochs": 15,
              "finetune_epochs": 10, "batch_size": 64, "lr": 0.05, "finetune_lr": 0.05},
    "paper": {"teacher_epochs": 200, "teacher_lr": 0.1, "teacher_warmup_epochs": 0, "distill_epochs": 50,
              "finetune_epochs": 150, "batch_size": 256, "lr": 0.01, "finetune_lr": 0.01},
}


def default_recipe(dataset: str) -> str:
    return "quick" if dataset == "digits" else "paper"


def from_recipe(recipe: str | None, *, student: str, teacher: str, data: DataConfig) -> "CompressConfig":
    """The config of `recipe` (default: the dataset's), before command-line overrides."""
    name = recipe or default_recipe(data.name or "")
    if name not in RECIPES:
        raise PddError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return CompressConfig(student=student, teacher=teacher, data=data, recipe=name, **RECIPES[name])


@dataclass(frozen=True)
class CompressConfig:
    student: str
    teacher: str
    teacher_weights: str | None = None
    teacher_norm: NormOverride = field(default_factory=NormOverride)
    data: DataConfig = field(default_factory=DataConfig)
    targets: tuple[str, ...] = ("local",)
    quantize: bool = True
    target_macs_reduction: float | None = None
    round_to: int = 1
    seed: int = 0
    recipe: str = "quick"
    teacher_epochs: int = 10
    teacher_lr: float = 0.05
    teacher_warmup_epochs: int = 1
    distill_epochs: int = 15
    finetune_epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    finetune_lr: float = 0.05
    weight_decay: float = 5e-3
    alpha: float = 0.6
    temperature: float = 3.0
    calibration_size: int = 256
    profile_min_runs: int = 100
    profile_min_time_s: float = 2.0


def resolve(cfg: CompressConfig, **overrides: Any) -> CompressConfig:
    """`cfg` with None-valued overrides dropped (CLI options not given keep the recipe's value)."""
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
