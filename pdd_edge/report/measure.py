"""Profile a run's deployable variants on one target, interleaved in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from pdd_edge.profiling.profile import ProfileRequest, profile_models
from pdd_edge.profiling.targets import load_target

SCHEMA = "pdd-edge.variants-profile/1"


def profile_variants(files: Mapping[str, Path], target: str, *, min_runs: int = 100, min_time_s: float = 2.0,
                     remote=None) -> dict:
    """{"schema", "target", "environment", "variants": {name: profile record (pdd-edge.profile/1)}}.

    All variants are timed round-robin in one session of the measuring machine (see
    `profiling.measure.measure_models`), so drift of the machine favours none of them.
    """
    t = load_target(target)
    req = ProfileRequest(model=Path(), target=t, min_runs=min_runs, min_time_s=min_time_s)
    records = profile_models({k: Path(v) for k, v in files.items()}, req, remote)
    first = next(iter(records.values()))
    return {"schema": SCHEMA, "target": t.to_dict(), "environment": first["environment"],
            "remote": first["settings"]["remote"], "variants": records}
