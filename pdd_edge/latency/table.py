"""`pdd-edge latency-table`: measure a network's layers on the device and fit its latency predictor.

On the machine that measures (here, or a board over SSH through the same runner `profile`
uses), in one onnxruntime process and interleaved so that every number sees the same machine:

1. when the target has no `channel_multiple`, the width sweep of `latency/multiple.py`;
2. every distinct layer geometry of the full-width network, alone (one-layer ONNX files), over a
   grid of channel counts: 1/8, 1/4, 1/2, 3/4 and all of each free width, rounded to the
   channel multiple (`latency/plan.py`);
3. whole networks, exported and simplified as `compress` deploys them: the full-width one and
   randomly thinned ones (random channels, widths multiples of the channel multiple).

The layer sums of the first half of the thinned networks (and the full one) fit `scale` and
`offset_ms` (`latency/fit.py`); the other half is the check: their predicted against measured
latency is the model's error, reported and stored with the table.

The table is cached in a file keyed by target, model, input size, batch, threads and
onnxruntime version (`latency/request.py`); a table whose key matches is reused, not re-measured.
Here: `make_table` (the cached table or a new one, written) and `build_table` (plan, time, fit).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

from pdd_edge.errors import PddError
from pdd_edge.latency.fit import fitted
from pdd_edge.latency.measure import time_plan
from pdd_edge.latency.multiple import SWEEP_WIDTHS, measure_multiple
from pdd_edge.latency.plan import layer_plan, network_plans
from pdd_edge.latency.predictor import LatencyPredictor, load
from pdd_edge.latency.request import TableRequest, cache_path, cached, foreign_here, table_key

Progress = Callable[[str], None]


def make_table(req: TableRequest, out: Path | None = None, remote=None, *, refresh: bool = False,
               progress: Progress = lambda s: None) -> tuple[LatencyPredictor, Path, bool]:
    """(table, its file, whether it was reused): the cached table for this key, or a new one
    measured here or on `remote` and written atomically to `out` (default: `cache_path`).

    A target that names its device (arch, CPU, cores) is measured only on that device: asked to
    measure here for another machine, it refuses before any work; on a board whose environment
    does not match, it fails and writes nothing.
    """
    from pdd_edge.fileio import check_output, write_json
    from pdd_edge.profiling import provenance

    threads: int | str
    if remote is None:
        env, reasons = foreign_here(req)
        if reasons:
            raise PddError(f"this machine ({provenance.measured_on(env)}) is not {req.target.name} "
                           f"({'; '.join(reasons)}): measure on the device with --remote USER@HOST")
        threads, version = env["intra_op_threads"], env["onnxruntime"]
    else:
        threads, version = req.thread_count() or "all", remote.onnxruntime_version()
    key = table_key(req, threads, version)
    path = Path(out) if out is not None else cache_path(key)
    if out is not None:
        check_output(path)
        if path.exists():
            try:
                load(path)
            except PddError:
                raise PddError(f"--out {path} exists and is not a latency table; remove it or choose another --out") from None
    found = None if refresh else cached(path, key)
    if found is not None:
        return found, path, True
    table = build_table(req, key, remote, progress)
    if remote is not None:
        reasons = provenance.foreign_reasons(req.target.to_dict(), table.record["environment"])
        if reasons:
            raise PddError(f"{remote.label} is not {req.target.name} ({'; '.join(reasons)}); nothing written")
    write_json(path, table.to_dict())
    return table, path, False


def build_table(req: TableRequest, key: dict[str, Any], remote=None, progress: Progress = lambda s: None) -> LatencyPredictor:
    """Measure and fit the latency predictor of `req.model` on `req.target` (here or on `remote`)."""
    import torch

    from pdd_edge import zoo
    from pdd_edge.profiling.measure import MeasureSettings
    from pdd_edge.zoo.protocol import prunable

    torch.manual_seed(req.seed)
    model = zoo.build(req.model, num_classes=req.num_classes, args=req.model_args or None, input_size=req.input_hw)
    arch = prunable(model)
    settings = MeasureSettings(provider=req.target.execution_provider, threads=req.thread_count(), warmup=req.warmup,
                               min_runs=req.min_runs, min_time_s=req.min_time_s, memory=False, sequential=True)
    sweep = None
    multiple = req.target.channel_multiple
    if multiple is None:
        progress(f"measuring a 3x3 conv at widths {SWEEP_WIDTHS[0]}..{SWEEP_WIDTHS[-1]} (the target has no channel_multiple)")
        multiple, sweep = measure_multiple(settings, req.batch, remote)
    layers, plans = layer_plan(model, req.input_hw, multiple)
    networks = network_plans(arch, multiple, random.Random(req.seed))

    def build(keep: dict[str, list[int]]):
        return zoo.build(req.model, **{**arch.arch_args(), "keep": keep})

    timings = time_plan(layers, plans, networks, build, req.input_hw, req.batch, settings, remote, progress)
    return fitted(key, layers, plans, arch, networks, timings, multiple, sweep=sweep,
                  measure={"warmup": req.warmup, "min_runs": req.min_runs, "min_time_s": req.min_time_s,
                           "statistic": "p50"})
