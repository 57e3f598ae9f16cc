"""Timing what a latency table's plan names: one ONNX file per layer grid cell, one per whole
network (exported and simplified as `compress` deploys it) and an empty graph, all in one
onnxruntime process, here or on a board, so that every number sees the same machine (a latency
table times each file alone: `MeasureSettings(sequential=True)`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pdd_edge.latency.layers import Shape, empty_onnx, input_shape, layer_onnx

Cell = tuple[str, int, int]  # (grid key, row i, column j) of one layer file


@dataclass(frozen=True)
class Timings:
    """Median latencies (ms) of one measurement: each layer grid cell's with the session's own
    overhead taken off, each whole network's as measured."""

    cells: dict[str, dict[tuple[int, int], float]]  # grid key -> (i, j) -> ms
    networks: list[float]  # in the order of the plan's networks
    overhead_ms: float  # an empty graph's: what a session run costs with no work
    environment: dict[str, Any]
    remote: dict[str, Any] | None


def _layer_jobs(plans: dict[str, dict], folder: Path, batch: int) -> tuple[list, list[Cell]]:
    """One layer file per cell of every grid, as `PreparedModel`s, with the cell each one times."""
    import onnx

    from pdd_edge.profiling.measure import PreparedModel

    jobs: list[PreparedModel] = []
    cells: list[Cell] = []
    for gkey, plan in plans.items():
        shape: Shape = plan["shape"]
        rows = [None] if shape.grouped else plan["counts_in"]
        for i, c_in in enumerate(rows):
            for j, c_out in enumerate(plan["counts_out"]):
                ci = shape.channels(c_out // (shape.full_out // shape.groups))[0] if shape.grouped else c_in
                path = folder / f"layer{len(jobs)}.onnx"
                onnx.save(layer_onnx(shape, ci, c_out, seed=len(jobs)), str(path))
                jobs.append(PreparedModel(path.stem, path, {batch: {"input": input_shape(shape, ci, batch)}},
                                          {"input": "float32"}))
                cells.append((gkey, i, j))
    return jobs, cells


def _network_jobs(build: Callable[[dict], Any], networks: list, input_hw: tuple[int, int], folder: Path, batch: int,
                  progress: Callable[[str], None]) -> list:
    """One file per whole network (`build(keep)` makes it), as `compress` deploys it: exported to
    ONNX and simplified by onnxsim."""
    import onnx

    from pdd_edge.onnx.convert import simplify_proto, to_onnx
    from pdd_edge.profiling.measure import PreparedModel

    jobs = []
    for n, (kind, share, keep) in enumerate(networks):
        path = folder / f"net{n}.onnx"
        onnx.save(simplify_proto(to_onnx(build(keep).eval(), input_hw)), str(path))
        jobs.append(PreparedModel(path.stem, path, {batch: {"input": [batch, 3, *input_hw]}}, {"input": "float32"}))
        progress(f"exported network {n + 1}/{len(networks)} ({kind}, about {share:.0%} of the channels)")
    return jobs


def time_plan(layers: dict[str, str], plans: dict[str, dict], networks: list, build: Callable[[dict], Any],
              input_hw: tuple[int, int], batch: int, settings, remote=None,
              progress: Callable[[str], None] = lambda s: None) -> Timings:
    """Write every layer file of `plans` (the grids of `layers`) and every network of `networks`
    (`build(keep)` makes one), and time them all at `batch` with `settings`
    (profiling.measure.MeasureSettings), here or on `remote`."""
    import onnx

    from pdd_edge.profiling.measure import PreparedModel, measure_models

    with tempfile.TemporaryDirectory(prefix="pdd-edge-latency-") as tmp:
        folder = Path(tmp)
        jobs, cells = _layer_jobs(plans, folder, batch)
        progress(f"{len(layers)} layers, {len(plans)} distinct geometries, {len(jobs)} layer files; "
                 f"exporting {len(networks)} whole networks (dense, fit, check, thinnest)")
        net_jobs = _network_jobs(build, networks, input_hw, folder, batch, progress)
        empty = folder / "empty.onnx"
        onnx.save(empty_onnx(), str(empty))
        how = "each file alone" if getattr(settings, "sequential", False) else "interleaved"
        progress(f"measuring {len(jobs)} layer files and {len(net_jobs)} networks, {how}, at batch {batch}")
        measured = measure_models([*jobs, *net_jobs, PreparedModel("empty", empty, {batch: {"input": [batch, 1]}},
                                                                  {"input": "float32"})], [batch], settings, remote)
    p50 = [m["batches"][0]["latency"]["p50_ms"] for m in measured["models"]]
    # What a session run costs with no work: every layer file pays it once, a network only once
    # in all, so it comes off each layer's time.
    overhead = p50.pop()
    grid_ms: dict[str, dict[tuple[int, int], float]] = {}
    for (gkey, i, j), ms in zip(cells, p50):
        grid_ms.setdefault(gkey, {})[(i, j)] = max(ms - overhead, 0.0)
    return Timings(grid_ms, p50[len(jobs):], overhead, measured["environment"], measured.get("remote"))
