"""A latency table computed, not measured: MACs times a constant, exact on and between its grid points."""

from __future__ import annotations

from pdd_edge.latency.plan import layer_plan
from pdd_edge.latency.predictor import Grid, LatencyPredictor


def synthetic_table(model, input_hw=(32, 32), channel_multiple=8, ns_per_mac=1e-6, offset_ms=0.05) -> LatencyPredictor:
    """A latency predictor whose grids hold MACs x ns_per_mac (no measurement): exact for any counts
    on the grid, and bilinear (hence exact) in between for ungrouped layers."""
    names, plans = layer_plan(model, input_hw, channel_multiple)
    grids = {}
    for key, p in plans.items():
        s = p["shape"]
        area = s.out_hw[0] * s.out_hw[1] * s.kernel[0] * s.kernel[1] if s.op == "conv" else s.rows

        def cost(ci, co):
            return ci * co * area * ns_per_mac / (s.groups if not s.grouped else co // (s.full_out // s.groups))

        if s.grouped:
            ms = ((*[cost(s.channels(co // (s.full_out // s.groups))[0], co) for co in p["counts_out"]],),)
        else:
            ms = tuple(tuple(cost(ci, co) for co in p["counts_out"]) for ci in p["counts_in"])
        grids[key] = Grid(s, p["counts_in"], p["counts_out"], ms)
    key = {"target": "synthetic", "model": "resnet20", "input_size": list(input_hw), "batch_size": 1, "threads": 1,
           "onnxruntime": "test"}
    return LatencyPredictor(key, names, grids, 1.0, offset_ms, channel_multiple,
                        {"dense": {"measured_ms": 1.0}, "error": {"check_max_abs_pct": 0.0}})
