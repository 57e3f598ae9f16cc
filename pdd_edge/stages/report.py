"""`report`: per target, `report-<target>.json` and `.md` with PNG plots (see `report.build`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pdd_edge.artifact import RunDir
from pdd_edge.config import CompressConfig
from pdd_edge.profiling.targets import load_target
from pdd_edge.report.build import write_reports
from pdd_edge.stages import StageResult

if TYPE_CHECKING:
    from pdd_edge.training.setup import TrainSetup  # noqa: F401 (the stage signature)


def run(run: RunDir, cfg: CompressConfig, setup: TrainSetup) -> StageResult:
    files = write_reports(run, [load_target(t).name for t in cfg.targets])
    return StageResult(files, {"reports": [run.rel(f) for f in files if f.suffix == ".md"]})
