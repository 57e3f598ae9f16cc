"""The stages of `pdd-edge compress`, one module each, all with the same entry point:

    run(run: RunDir, cfg: CompressConfig, setup: TrainSetup) -> StageResult

`run` reads the files earlier stages wrote (paths from `RunDir`), writes its own, and returns
them with its metrics; `setup` (training/setup.py) says where training stages compute, and
non-training stages ignore it; `pipeline.py` records both in the manifest. Stages exchange files, never
live objects. The function a stage's `run` calls on those files (e.g. `distill.distill`,
`prune.prune_checkpoint`) is also what the standalone command of the same name calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pdd_edge.artifact import RunDir
    from pdd_edge.training.loop import FitResult


@dataclass(frozen=True)
class StageResult:
    files: list[Path]  # every file the stage wrote, recorded in the manifest
    metrics: dict[str, Any] = field(default_factory=dict)


def training_result(run: "RunDir", stage: str, result: "FitResult") -> StageResult:
    """What a training stage (baseline, distill, finetune) records: its best checkpoint and history."""
    return StageResult([run.best(stage), run.history(stage)], result.summary())
