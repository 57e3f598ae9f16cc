"""Which widths a device runs fast: the measurement behind `channel_multiple`.

One 3x3 convolution (c -> c channels, stride 1) is timed at every width of a range, all widths
interleaved in one onnxruntime process. A width is *dominated* when a wider one in the range
runs at least as fast: keeping it buys fewer channels for no time saved, which is what a width
falling off the vectorised kernels looks like (onnxruntime's NCHWc convolutions need the
channels in blocks of 8 with AVX2, 16 with AVX-512). The channel multiple is the smallest m of
`MULTIPLES` none of whose multiples in the range is dominated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pdd_edge.latency.layers import Shape, input_shape, layer_onnx

MULTIPLES = (1, 2, 4, 8, 16, 32)
SWEEP_WIDTHS = tuple(range(8, 65))
SWEEP_HW = 16


def sweep_shape(c: int, hw: int = SWEEP_HW) -> Shape:
    return Shape("conv", c, c, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (hw, hw))


def write_sweep(folder: Path, batch: int, widths: Sequence[int] = SWEEP_WIDTHS, hw: int = SWEEP_HW) -> list:
    """One conv file per width, as `PreparedModel`s for `measure_models`."""
    import onnx

    from pdd_edge.profiling.measure import PreparedModel

    models = []
    for c in widths:
        shape = sweep_shape(c, hw)
        path = folder / f"sweep{c}.onnx"
        onnx.save(layer_onnx(shape, c, c), str(path))
        models.append(PreparedModel(f"sweep{c}", path, {batch: {"input": input_shape(shape, c, batch)}},
                                    {"input": "float32"}))
    return models


def sweep_rows(widths: Sequence[int], p50_ms: Sequence[float], batch: int, hw: int = SWEEP_HW) -> list[dict[str, Any]]:
    """Per width: its median latency, MACs per microsecond and the first wider width at least as fast."""
    rows = [{"width": c, "p50_ms": ms, "macs_per_us": batch * c * c * 9 * hw * hw / (ms * 1e3)}
            for c, ms in zip(widths, p50_ms)]
    for i, r in enumerate(rows):
        wider = [w for w in rows[i + 1:] if w["p50_ms"] <= r["p50_ms"]]
        r["dominated_by"] = wider[0]["width"] if wider else None
    return rows


def recommend(rows: Sequence[dict[str, Any]]) -> int | None:
    """The smallest multiple whose widths are all undominated (None: none up to 32)."""
    free = {r["width"] for r in rows if r["dominated_by"] is None}
    widths = [r["width"] for r in rows]
    return next((m for m in MULTIPLES if all(c in free for c in widths if c % m == 0)), None)
