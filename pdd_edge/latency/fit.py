"""From measured times to a latency predictor: the layer grids, the calibration and its check.

The layer sums of the full-width network and the first half of the thinned ones fit `scale` and
`offset_ms` (least squares; latency/predictor.py); the other half is the check: their predicted
against measured latency is the predictor's error, reported and stored with the table.
"""

from __future__ import annotations

from typing import Any

from pdd_edge.latency.measure import Timings
from pdd_edge.latency.predictor import Grid, LatencyPredictor


def grids(plans: dict[str, dict], timings: Timings) -> dict[str, Grid]:
    """Each layer geometry's grid of measured milliseconds."""
    found = {}
    for gkey, plan in plans.items():
        n_rows = 1 if plan["shape"].grouped else len(plan["counts_in"])
        cells = timings.cells[gkey]
        ms = tuple(tuple(cells[(i, j)] for j in range(len(plan["counts_out"]))) for i in range(n_rows))
        found[gkey] = Grid(plan["shape"], plan["counts_in"], plan["counts_out"], ms)
    return found


def calibrate(raw: LatencyPredictor, arch, networks: list, measured_ms: list[float]) -> tuple[float, float, list[dict]]:
    """(scale, offset_ms, one point per network: its layer sum, measured and predicted ms and the
    error), fitted on the "dense" and "fit" networks of `networks` with the grids of `raw`."""
    import numpy as np

    points = []
    for (kind, share, keep), ms in zip(networks, measured_ms):
        counts = {p: len(keep[p]) for p in arch.mask_points()}
        widths = arch.layer_widths(counts)
        points.append({"kind": kind, "share": share, "counts": counts, "layer_sum_ms": float(raw.layer_sum(widths)),
                       "layers": raw.present(widths), "measured_ms": ms})
    fit = [p for p in points if p["kind"] in ("dense", "fit")]
    y = np.array([p["measured_ms"] for p in fit])
    # Two parameters only: a third, a cost per remaining layer, fitted on five networks, overfitted
    # (a ResNet20 check error of 31 % against 3 % without it).
    (scale, offset), *_ = np.linalg.lstsq(np.array([[p["layer_sum_ms"], 1.0] for p in fit]), y, rcond=None)
    for p in points:
        p["predicted_ms"] = float(scale * p["layer_sum_ms"] + offset)
        p["error_pct"] = 100.0 * (p["predicted_ms"] - p["measured_ms"]) / p["measured_ms"]
    return float(scale), float(offset), points


def fitted(key: dict[str, Any], layers: dict[str, str], plans: dict[str, dict], arch, networks: list,
           timings: Timings, multiple: int, *, sweep: list | None, measure: dict[str, Any]) -> LatencyPredictor:
    """The latency predictor of `timings`: its grids, its calibration and the record of how it was
    made (environment, the width sweep if one ran, every network's point, the check's error and
    `measure`, the timing settings)."""
    layer_grids = grids(plans, timings)
    raw = LatencyPredictor(key, layers, layer_grids, 1.0, 0.0, multiple, {})
    scale, offset, points = calibrate(raw, arch, networks, timings.networks)
    checks = [abs(p["error_pct"]) for p in points if p["kind"] == "check"]
    record = {
        "environment": timings.environment,
        "remote": timings.remote,
        "sweep": sweep,
        "run_overhead_ms": timings.overhead_ms,
        "dense": {"measured_ms": points[0]["measured_ms"], "predicted_ms": points[0]["predicted_ms"]},
        "floor": next({"measured_ms": p["measured_ms"], "predicted_ms": p["predicted_ms"]} for p in points
                      if p["kind"] == "floor"),
        "networks": points,
        "error": {"check_max_abs_pct": max(checks), "check_mean_abs_pct": sum(checks) / len(checks)},
        "measure": measure,
    }
    return LatencyPredictor(key, layers, layer_grids, scale, offset, multiple, record)
