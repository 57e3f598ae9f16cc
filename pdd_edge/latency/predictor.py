"""The latency predictor: a network's latency on one device from its layers' channel counts.

A latency table (written by `latency/table.py`, one JSON file) holds, for every distinct layer
geometry of a network, the median latency measured on the device over a grid of (input, output)
channel counts, and a calibration `scale`, `offset_ms` fitted on whole networks measured there:

    latency(widths) = scale * sum over layers of grid_l(c_in_l, c_out_l) + offset_ms

`grid_l` interpolates bilinearly between the measured counts, with a layer of 0 channels costing
0 (a removed block). A grouped convolution loses whole groups, so its grid is one-dimensional in
its output channels. The counts may be 0-d tensors (sums of straight-through mask gates): the
prediction then carries a gradient to every mask, which is what the latency budget of `distill`
needs. The offset holds what no layer table sees: the other ops (additions, pooling, the
shortcuts' index maps), the session's own overhead, and the layout conversions the layers
measured alone pay but a network pays only at its ends.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from pdd_edge.errors import PddError
from pdd_edge.latency.layers import Shape

FORMAT = "pdd-edge latency table"
VERSION = 1


def _value(x: Any) -> float:
    return float(x.detach()) if hasattr(x, "detach") else float(x)


def _segment(points: Sequence[int], x: Any) -> tuple[int, Any]:
    """(i, t): `x` lies at `points[i] + t * (points[i+1] - points[i])`; linear beyond the ends."""
    v = _value(x)
    i = min(max(bisect.bisect_right(points, v) - 1, 0), len(points) - 2)
    return i, (x - points[i]) / (points[i + 1] - points[i])


@dataclass(frozen=True)
class Grid:
    """Measured latencies (ms) of one layer geometry over channel counts."""

    shape: Shape
    counts_in: tuple[int, ...]  # for a grouped conv: () (its input follows its output)
    counts_out: tuple[int, ...]  # for a grouped conv: output channels, whole groups
    ms: tuple[tuple[float, ...], ...]  # ms[i][j] at (counts_in[i], counts_out[j]); grouped: ms[0][j]

    def __call__(self, c_in: Any, c_out: Any) -> Any:
        if _value(c_out) <= 0 or (not self.shape.grouped and _value(c_in) <= 0):
            return 0.0  # the layer is gone
        # A count of 0 costs 0: prepended as a virtual grid point, so that a count between 0 and
        # the first measured one is interpolated towards "no layer".
        outs = (0, *self.counts_out)
        j, u = _segment(outs, c_out)
        if self.shape.grouped or len(self.counts_in) == 0:
            row = (0.0, *self.ms[0])
            return row[j] + u * (row[j + 1] - row[j])
        ins = (0, *self.counts_in)
        i, t = _segment(ins, c_in)
        table = ((0.0,) * len(outs), *((0.0, *r) for r in self.ms))
        low = table[i][j] + u * (table[i][j + 1] - table[i][j])
        high = table[i + 1][j] + u * (table[i + 1][j + 1] - table[i + 1][j])
        return low + t * (high - low)

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape.to_dict(), "counts_in": list(self.counts_in), "counts_out": list(self.counts_out),
                "ms": [list(r) for r in self.ms]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Grid":
        return cls(Shape.from_dict(d["shape"]), tuple(d["counts_in"]), tuple(d["counts_out"]),
                   tuple(tuple(float(v) for v in r) for r in d["ms"]))


@dataclass(frozen=True)
class LatencyPredictor:
    key: dict[str, Any]  # what the table is for: target, model, input size, batch, threads, onnxruntime
    layers: dict[str, str]  # layer (module path) -> grid key
    grids: dict[str, Grid]
    scale: float
    offset_ms: float
    channel_multiple: int
    record: dict[str, Any]  # everything else the table file holds: environment, calibration, check

    def layer_sum(self, widths: Mapping[str, tuple[Any, Any]]) -> Any:
        missing = sorted(set(self.layers) - set(widths))
        extra = sorted(set(widths) - set(self.layers))
        if missing or extra:
            first = (missing or extra)[0]
            raise PddError(f"the latency table was made for another network (layer {first!r} "
                           f"{'missing' if missing else 'unknown'}): make one for this model with `pdd-edge latency-table`")
        total: Any = 0.0
        for name, grid in self.layers.items():
            total = total + self.grids[grid](*widths[name])
        return total

    def present(self, widths: Mapping[str, tuple[Any, Any]]) -> int:
        """Layers that remain (both widths above 0), recorded per calibration network."""
        return sum(1 for c_in, c_out in widths.values() if _value(c_in) > 0 and _value(c_out) > 0)

    def predict(self, widths: Mapping[str, tuple[Any, Any]]) -> Any:
        """Predicted median latency (ms) at the table's batch size and threads."""
        return self.scale * self.layer_sum(widths) + self.offset_ms

    def predict_counts(self, arch: Any, counts: Mapping[str, Any] | None = None) -> Any:
        """`predict` for a PrunableModel whose mask points pass `counts` (default: every channel)."""
        return self.predict(arch.layer_widths(arch.mask_points() if counts is None else counts))

    @property
    def dense_ms(self) -> float:
        """The full-width network's median latency as measured when the table was made."""
        return float(self.record["dense"]["measured_ms"])

    def describe(self) -> str:
        k = self.key
        return (f"{k['model']} at {k['input_size'][0]}x{k['input_size'][1]} on {k['target']}, batch {k['batch_size']}, "
                f"{k['threads']} threads, onnxruntime {k['onnxruntime']}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "key": self.key, "channel_multiple": self.channel_multiple,
                "scale": self.scale, "offset_ms": self.offset_ms, "layers": self.layers,
                "grids": {k: g.to_dict() for k, g in self.grids.items()}, **self.record}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LatencyPredictor":
        own = {"format", "version", "key", "channel_multiple", "scale", "offset_ms", "layers", "grids"}
        return cls(key=d["key"], layers=dict(d["layers"]), grids={k: Grid.from_dict(g) for k, g in d["grids"].items()},
                   scale=float(d["scale"]), offset_ms=float(d["offset_ms"]), channel_multiple=int(d["channel_multiple"]),
                   record={k: v for k, v in d.items() if k not in own})


def load(path: str | Path) -> LatencyPredictor:
    """A latency table file; anything else is one readable line."""
    path = Path(path)
    if not path.is_file():
        raise PddError(f"latency table not found: {path} (make one with `pdd-edge latency-table`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PddError(f"{path} is not a latency table (cannot read it as JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PddError(f"{path} is not a latency table written by `pdd-edge latency-table`")
    if data.get("version") != VERSION:
        raise PddError(f"{path} is a version {data.get('version')} latency table; this pdd-edge reads version "
                       f"{VERSION}: make it again with `pdd-edge latency-table`")
    try:
        return LatencyPredictor.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise PddError(f"{path} is a damaged latency table ({type(exc).__name__}: {exc}); make it again") from None
