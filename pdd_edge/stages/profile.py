"""`profile`: the run's deployable variants timed on each target, interleaved in one process.

`profile_variants` is also what `pdd-edge report --target T` calls for a target the run has not
been profiled for. Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, TYPE_CHECKING

from pdd_edge.artifact import RunDir
from pdd_edge.config import CompressConfig
from pdd_edge.fileio import write_json
from pdd_edge.profiling.profile import ProfileRequest, profile_models
from pdd_edge.profiling.targets import load_target
from pdd_edge.stages import StageResult

if TYPE_CHECKING:
    from pdd_edge.training.setup import TrainSetup  # noqa: F401 (the stage signature)

SCHEMA = "pdd-edge.variants-profile/1"


def request(target: str, *, min_runs: int, min_time_s: float) -> ProfileRequest:
    """How every variant is timed on `target` (the options are validated on construction)."""
    return ProfileRequest(target=load_target(target), min_runs=min_runs, min_time_s=min_time_s)


def profile_variants(files: Mapping[str, Path], req: ProfileRequest, remote=None) -> dict:
    """{"schema", "target", "environment", "variants": {name: profile record (pdd-edge.profile/1)}}.

    All variants are timed round-robin in one session of the measuring machine (see
    `profiling.measure.measure_models`), so drift of the machine favours none of them.
    """
    records = profile_models({k: Path(v) for k, v in files.items()}, req, remote)
    first = next(iter(records.values()))
    return {"schema": SCHEMA, "target": req.target.to_dict(), "environment": first["environment"],
            "device_check": first["device_check"], "remote": first["settings"]["remote"], "variants": records}


def run(run: RunDir, cfg: CompressConfig, setup: TrainSetup) -> StageResult:
    files, metrics = [], {}
    for target in cfg.targets:
        req = request(target, min_runs=cfg.profile_min_runs, min_time_s=cfg.profile_min_time_s)
        record = profile_variants(run.deployable(cfg.quantize), req)
        out = write_json(run.profile(req.target.name), record)
        files.append(out)
        metrics[req.target.name] = {v: m["summary"] for v, m in record["variants"].items()}
    return StageResult(files, metrics)
