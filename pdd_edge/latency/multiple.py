"""Which widths a device runs fast: the measurement behind `channel_multiple`.

One 3x3 convolution (c -> c channels, stride 1) is timed at every width of a range, all widths
interleaved in one onnxruntime process. A width is *dominated* when a wider one in the range
runs at least as fast: keeping it buys fewer channels for no time saved, which is what a width
falling off the vectorised kernels looks like (onnxruntime's NCHWc convolutions need the
channels in blocks of 8 with AVX2, 16 with AVX-512). The channel multiple is the smallest m of
`MULTIPLES` none of whose multiples in the range is dominated.

`here(target)` gives a target's multiple when pruning for it on this machine: the declared
`channel_multiple`, else one measured here (a few seconds, cached per machine, onnxruntime
version, threads and batch), so the `local` target's widths fit this CPU's kernels too.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from pdd_edge.errors import PddError
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


def measure_multiple(settings, batch: int, remote=None) -> tuple[int, list[dict[str, Any]]]:
    """(the recommended multiple, 1 when none up to 32 is clean; the sweep's rows), measured with
    `settings` (profiling.measure.MeasureSettings) here or on `remote`."""
    from pdd_edge.profiling.measure import measure_models

    with tempfile.TemporaryDirectory(prefix="pdd-edge-multiple-") as tmp:
        measured = measure_models(write_sweep(Path(tmp), batch), [batch], settings, remote)
    rows = sweep_rows(SWEEP_WIDTHS, [m["batches"][0]["latency"]["p50_ms"] for m in measured["models"]], batch)
    return recommend(rows) or 1, rows


def here(target, progress: Callable[[str], None] = lambda s: None) -> int | None:
    """`target`'s channel multiple for pruning on this machine: its declared one; else, when this
    machine is the target's device, one measured here (cached); else None (another device: no
    width can be judged from here)."""
    if target.channel_multiple is not None:
        return target.channel_multiple
    from pdd_edge.fileio import cache_root, read_json, write_json
    from pdd_edge.profiling import provenance, runner
    from pdd_edge.profiling.measure import MeasureSettings

    threads = runner.resolve_threads(target.threads)
    env = runner.environment(target.execution_provider, threads)
    if provenance.foreign_reasons(target.to_dict(), env):
        return None
    batch = target.batch_sizes[0]
    key = {"target": {k: v for k, v in target.to_dict().items() if k != "source"}, "cpu": env.get("cpu_model"),
           "machine": env.get("machine"), "onnxruntime": env["onnxruntime"], "threads": env["intra_op_threads"],
           "batch": batch, "widths": [SWEEP_WIDTHS[0], SWEEP_WIDTHS[-1]]}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_root() / "latency" / f"multiple-{target.name}-b{batch}-t{env['intra_op_threads']}-{digest}.json"
    if path.is_file():
        try:
            found = read_json(path, "channel multiple record")
            if found.get("key") == key and isinstance(found.get("multiple"), int) and found["multiple"] >= 1:
                return found["multiple"]
        except (PddError, AttributeError):  # a damaged cache file (not JSON, not an object) is measured again
            pass
    progress(f"measuring which channel widths {target.name} runs fast (a 3x3 conv at widths "
             f"{SWEEP_WIDTHS[0]}..{SWEEP_WIDTHS[-1]}; cached for this machine)")
    settings = MeasureSettings(provider=target.execution_provider, threads=target.threads, warmup=5, min_runs=30,
                               min_time_s=0.1, memory=False, sequential=True)
    multiple, rows = measure_multiple(settings, batch)
    write_json(path, {"key": key, "multiple": multiple, "sweep": rows, "environment": env})
    return multiple
