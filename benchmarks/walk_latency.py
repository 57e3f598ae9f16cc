"""Walk scenario: `stages/latency.py:run` of a `compress --target-speedup 1.5` run folder (resnet20
on digits), measuring its latency table here into an empty cache.

The latency stage runs first of a run's stages, so the folder holds only its manifest. Two things
keep the measurement short, and neither changes the path the walk follows: the device is a target
file of its own that declares its `channel_multiple` (16) and one thread, so no width sweep runs
and the key is this machine's; and the stage's table request is timed with 5 runs, no minimum time
(the request is rewritten by a wrapper here, outside pdd_edge, which the walk does not see).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

TARGET = 'name = "walk"\nthreads = 1\nchannel_multiple = 16\n'


def scenario():
    from pdd_edge.artifact import RunDir
    from pdd_edge.config import CompressConfig
    from pdd_edge.data.options import DataConfig
    from pdd_edge.stages import latency

    tmp = Path(tempfile.mkdtemp(prefix="walk-latency-"))
    os.environ["PDD_EDGE_CACHE"] = str(tmp / "cache")  # measured, not reused from an earlier walk
    (tmp / "walk.toml").write_text(TARGET)
    cfg = CompressConfig(student="resnet20", teacher="resnet20", data=DataConfig("digits"),
                         targets=(str(tmp / "walk.toml"),), target_speedup=1.5)
    run = RunDir.create(tmp / "run", {"student": cfg.student}, resume=False)
    ask = latency.request

    def quick(*args, **kwargs):
        return dataclasses.replace(ask(*args, **kwargs), warmup=2, min_runs=5, min_time_s=0.0)

    latency.request = quick
    return "stages/latency.py:run (resnet20, digits, --target-speedup 1.5, table measured here)", \
        lambda: latency.run(run, cfg, None)
