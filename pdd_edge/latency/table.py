"""`pdd-edge latency-table`: measure a network's layers on the device and fit its latency model.

On the machine that measures (here, or a board over SSH through the same runner `profile`
uses), in one onnxruntime process and interleaved so that every number sees the same machine:

1. when the target has no `channel_multiple`, the width sweep of `latency/multiple.py`;
2. every distinct layer geometry of the full-width network, alone (one-layer ONNX files), over a
   grid of channel counts: 1/8, 1/4, 1/2, 3/4 and all of each free width, rounded to the
   channel multiple;
3. whole networks, exported and simplified as `compress` deploys them: the full-width one and
   randomly thinned ones (random channels, widths multiples of the channel multiple).

The layer sums of the first half of the thinned networks (and the full one) fit `scale` and
`offset_ms` (least squares; latency/model.py); the other half is the check: their predicted against measured
latency is the model's error, reported and stored with the table.

The table is cached in a file keyed by target, model, input size, batch, threads and
onnxruntime version; a table whose key matches is reused, not re-measured.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pdd_edge.errors import PddError
from pdd_edge.latency.layers import Shape, empty_onnx, input_shape, layer_onnx, probe
from pdd_edge.latency.model import Grid, LatencyModel, load
from pdd_edge.latency.multiple import SWEEP_WIDTHS, measure_multiple

GRID_SHARES = (0.125, 0.25, 0.5, 0.75, 1.0)
FIT_SHARES = (0.8, 0.6, 0.45, 0.3)  # thinned networks the calibration is fitted on (with the full one)
CHECK_SHARES = (0.9, 0.7, 0.5, 0.35)  # thinned networks it is checked on


@dataclass(frozen=True)
class TableRequest:
    model: str  # a model spec (zoo name, torchvision:, timm:, file.py:function)
    target: Any  # profiling.targets.Target
    input_hw: tuple[int, int] = (32, 32)
    num_classes: int = 10
    model_args: dict[str, Any] | None = None
    batch_size: int | None = None  # None: the target's primary batch size
    threads: int | None = None  # None: the target's
    warmup: int = 10
    min_runs: int = 50
    min_time_s: float = 0.2  # per layer file and network: they are timed one after another
    seed: int = 0

    @property
    def batch(self) -> int:
        return self.batch_size or self.target.batch_sizes[0]

    def thread_count(self) -> int | None:
        return self.threads if self.threads is not None else self.target.threads


def table_key(req: TableRequest, threads: int | str, ort_version: str) -> dict[str, Any]:
    target = req.target.to_dict()
    digest = hashlib.sha256(json.dumps({k: v for k, v in target.items() if k != "source"}, sort_keys=True).encode()).hexdigest()
    return {"target": req.target.name, "target_digest": digest[:16], "model": req.model,
            "model_args": dict(req.model_args or {}), "num_classes": req.num_classes,
            "input_size": list(req.input_hw), "batch_size": req.batch, "threads": threads,
            "provider": req.target.execution_provider, "onnxruntime": ort_version,
            "format": 2}  # 2: the thinnest network is measured (record["floor"]); older tables are re-made


def cache_path(key: dict[str, Any]) -> Path:
    """Where the table for `key` lives: $PDD_EDGE_CACHE, else $XDG_CACHE_HOME/pdd-edge, else ~/.cache/pdd-edge."""
    from pdd_edge.zoo.specs import slug

    from pdd_edge.fileio import cache_root

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    h, w = key["input_size"]
    name = (f"{key['target']}-{slug(key['model'])}-{h}x{w}-b{key['batch_size']}-t{key['threads']}"
            f"-ort{key['onnxruntime']}-{digest}.json")
    return cache_root() / "latency" / name


def cached(path: Path, key: dict[str, Any]) -> LatencyModel | None:
    """The table at `path` if it was made for `key`; None if there is none or it is for another key."""
    if not path.exists():
        return None
    table = load(path)
    return table if table.key == key else None


def grid_counts(full: int, multiple: int) -> tuple[int, ...]:
    """The counts a free width is measured at: GRID_SHARES of it, rounded up to the multiple."""
    step = min(multiple, full)
    counts = {min(full, max(step, -(-round(full * s) // step) * step)) for s in GRID_SHARES}
    return tuple(sorted(counts))


def _free_dims(arch) -> dict[str, tuple[bool, bool]]:
    """Per layer: whether its input / output width depends on the masks."""
    full = arch.layer_widths(arch.mask_points())
    empty = arch.layer_widths({p: 0 for p in arch.mask_points()})
    return {n: (int(empty[n][0]) != int(full[n][0]), int(empty[n][1]) != int(full[n][1])) for n in full}


def layer_plan(model, input_hw: tuple[int, int], multiple: int) -> tuple[dict[str, str], dict[str, dict]]:
    """(layer -> grid key, grid key -> {"shape", "counts_in", "counts_out"}) of a full-width network."""
    from pdd_edge.zoo.protocol import prunable

    arch = prunable(model)
    free = _free_dims(arch)
    shapes = probe(model, input_hw, set(free))
    layers: dict[str, str] = {}
    plans: dict[str, dict] = {}
    for name, shape in shapes.items():
        free_in, free_out = free[name]
        if shape.grouped:
            per = shape.full_out // shape.groups
            units = grid_counts(shape.groups, max(1, multiple // per)) if free_out else (shape.groups,)
            counts_in, counts_out = (), tuple(u * per for u in units)
        else:
            counts_in = grid_counts(shape.full_in, multiple) if free_in else (shape.full_in,)
            counts_out = grid_counts(shape.full_out, multiple) if free_out else (shape.full_out,)
        key = f"{shape.key} in{','.join(map(str, counts_in))} out{','.join(map(str, counts_out))}"
        layers[name] = key
        plans.setdefault(key, {"shape": shape, "counts_in": counts_in, "counts_out": counts_out})
    return layers, plans


VANISH = 0.5  # a layer that may be removed (a block's inner layer) is, with chance VANISH * (1 - share)


def thinnest_plan(arch, multiple: int) -> dict[str, list[int]]:
    """The thinnest network the pruned widths allow: every layer that may vanish gone, every other
    one at the channel multiple (its first channels)."""
    return {p: [] if arch.may_vanish(p) else list(range(min(n, multiple))) for p, n in arch.mask_points().items()}


def random_plan(arch, share: float, multiple: int, rng: random.Random) -> dict[str, list[int]]:
    """A thinned channel plan: about `share` of each mask point's channels (between 0.75 and 1.25
    times it, per point), a multiple of the channel multiple, at random positions; some of the
    layers that may vanish are removed, as PDD removes whole blocks of a thin network."""
    keep = {}
    for point, full in arch.mask_points().items():
        if share < 1 and arch.may_vanish(point) and rng.random() < VANISH * (1 - share):
            keep[point] = []
            continue
        step = min(multiple, full)
        want = full * share * rng.uniform(0.75, 1.25)
        n = min(full, max(step, round(want / step) * step))
        keep[point] = sorted(rng.sample(range(full), n)) if share < 1 else list(range(full))
    return keep


def _deployable(model, input_hw: tuple[int, int], path: Path) -> None:
    """The network as `compress` deploys it: exported to ONNX and simplified by onnxsim."""
    import onnx

    from pdd_edge.onnx.convert import simplify_proto, to_onnx

    onnx.save(simplify_proto(to_onnx(model.eval(), input_hw)), str(path))


def make_table(req: TableRequest, out: Path | None = None, remote=None, *, refresh: bool = False,
               progress: Callable[[str], None] = lambda s: None) -> tuple[LatencyModel, Path, bool]:
    """(table, its file, whether it was reused): the cached table for this key, or a new one
    measured here or on `remote` and written atomically to `out` (default: `cache_path`).

    A target that names its device (arch, CPU, cores) is measured only on that device: asked to
    measure here for another machine, it refuses before any work; on a board whose environment
    does not match, it fails and writes nothing.
    """
    from pdd_edge.fileio import check_output, write_json
    from pdd_edge.profiling import provenance, runner

    threads: int | str
    if remote is None:
        env = runner.environment(req.target.execution_provider, runner.resolve_threads(req.thread_count()))
        reasons = provenance.foreign_reasons(req.target.to_dict(), env)
        if reasons:
            raise PddError(f"this machine ({provenance.measured_on(env)}) is not {req.target.name} ({'; '.join(reasons)}): "
                           "measure on the device with --remote USER@HOST")
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
    if not refresh:
        try:
            found = cached(path, key)
        except PddError:  # a damaged cache file is measured again and replaced
            found = None
        if found is not None:
            return found, path, True
    table = build_table(req, key, remote, progress)
    if remote is not None:
        reasons = provenance.foreign_reasons(req.target.to_dict(), table.record["environment"])
        if reasons:
            raise PddError(f"{remote.label} is not {req.target.name} ({'; '.join(reasons)}); nothing written")
    write_json(path, table.to_dict())
    return table, path, False


def build_table(req: TableRequest, key: dict[str, Any], remote=None,
                progress: Callable[[str], None] = lambda s: None) -> LatencyModel:
    """Measure and fit the latency model of `req.model` on `req.target` (here or on `remote`)."""
    import numpy as np
    import onnx
    import torch

    from pdd_edge import zoo
    from pdd_edge.profiling.measure import MeasureSettings, PreparedModel, measure_models
    from pdd_edge.zoo.protocol import prunable

    torch.manual_seed(req.seed)
    rng = random.Random(req.seed)
    model = zoo.build(req.model, num_classes=req.num_classes, args=req.model_args or None, input_size=req.input_hw)
    arch = prunable(model)
    b = req.batch
    settings = MeasureSettings(provider=req.target.execution_provider, threads=req.thread_count(), warmup=req.warmup,
                               min_runs=req.min_runs, min_time_s=req.min_time_s, memory=False, sequential=True)
    with tempfile.TemporaryDirectory(prefix="pdd-edge-latency-") as tmp:
        folder = Path(tmp)
        sweep = None
        multiple = req.target.channel_multiple
        if multiple is None:
            progress(f"measuring a 3x3 conv at widths {SWEEP_WIDTHS[0]}..{SWEEP_WIDTHS[-1]} (the target has no channel_multiple)")
            multiple, sweep = measure_multiple(settings, b, remote)
        layers, plans = layer_plan(model, req.input_hw, multiple)
        jobs: list[PreparedModel] = []
        cells: list[tuple[str, int, int]] = []  # (grid key, i, j) of each layer file
        for gkey, plan in plans.items():
            shape: Shape = plan["shape"]
            rows = [None] if shape.grouped else plan["counts_in"]
            for i, c_in in enumerate(rows):
                for j, c_out in enumerate(plan["counts_out"]):
                    ci = shape.channels(c_out // (shape.full_out // shape.groups))[0] if shape.grouped else c_in
                    path = folder / f"layer{len(jobs)}.onnx"
                    onnx.save(layer_onnx(shape, ci, c_out, seed=len(jobs)), str(path))
                    jobs.append(PreparedModel(path.stem, path, {b: {"input": input_shape(shape, ci, b)}}, {"input": "float32"}))
                    cells.append((gkey, i, j))
        progress(f"{len(layers)} layers, {len(plans)} distinct geometries, {len(jobs)} layer files; "
                 f"exporting {2 + len(FIT_SHARES) + len(CHECK_SHARES)} whole networks (dense, fit, check, thinnest)")
        networks = [("dense", 1.0, arch.keep)]
        for kind, shares in (("fit", FIT_SHARES), ("check", CHECK_SHARES)):
            networks += [(kind, s, random_plan(arch, s, multiple, rng)) for s in shares]
        # The thinnest network measured too: the linear fit extrapolates below it (a ResNet20 floor
        # predicted at -0.03 ms), and a request below what the device can run must be refused.
        networks.append(("floor", 0.0, thinnest_plan(arch, multiple)))
        net_jobs = []
        for n, (kind, share, keep) in enumerate(networks):
            net = zoo.build(req.model, **{**arch.arch_args(), "keep": keep})
            path = folder / f"net{n}.onnx"
            _deployable(net, req.input_hw, path)
            net_jobs.append(PreparedModel(path.stem, path, {b: {"input": [b, 3, *req.input_hw]}}, {"input": "float32"}))
            progress(f"exported network {n + 1}/{len(networks)} ({kind}, about {share:.0%} of the channels)")
        empty = folder / "empty.onnx"
        onnx.save(empty_onnx(), str(empty))
        progress(f"measuring {len(jobs)} layer files and {len(net_jobs)} networks, interleaved, at batch {b}")
        measured = measure_models([*jobs, *net_jobs, PreparedModel("empty", empty, {b: {"input": [b, 1]}},
                                                                  {"input": "float32"})], [b], settings, remote)
    p50 = [m["batches"][0]["latency"]["p50_ms"] for m in measured["models"]]
    # What a session run costs with no work: every layer file pays it once, a network only once
    # in all, so it comes off each layer's time.
    overhead = p50.pop()
    grid_ms: dict[str, dict[tuple[int, int], float]] = {}
    for (gkey, i, j), ms in zip(cells, p50):
        grid_ms.setdefault(gkey, {})[(i, j)] = max(ms - overhead, 0.0)
    grids = {}
    for gkey, plan in plans.items():
        n_rows = 1 if plan["shape"].grouped else len(plan["counts_in"])
        ms = tuple(tuple(grid_ms[gkey][(i, j)] for j in range(len(plan["counts_out"]))) for i in range(n_rows))
        grids[gkey] = Grid(plan["shape"], plan["counts_in"], plan["counts_out"], ms)
    env = measured["environment"]
    sums, points = [], []
    raw = LatencyModel(key, layers, grids, 1.0, 0.0, multiple, {})
    for (kind, share, keep), ms in zip(networks, p50[len(jobs):]):
        counts = {p: len(keep[p]) for p in arch.mask_points()}
        widths = arch.layer_widths(counts)
        s = float(raw.layer_sum(widths))
        sums.append(s)
        points.append({"kind": kind, "share": share, "counts": counts, "layer_sum_ms": s, "layers": raw.present(widths),
                       "measured_ms": ms})
    fit = [i for i, p in enumerate(points) if p["kind"] in ("dense", "fit")]
    y = np.array([points[i]["measured_ms"] for i in fit])
    # Two parameters only: a third, a cost per remaining layer, fitted on five networks, overfitted
    # (a ResNet20 check error of 31 % against 3 % without it).
    (scale, offset), *_ = np.linalg.lstsq(np.array([[sums[i], 1.0] for i in fit]), y, rcond=None)
    for p in points:
        p["predicted_ms"] = float(scale * p["layer_sum_ms"] + offset)
        p["error_pct"] = 100.0 * (p["predicted_ms"] - p["measured_ms"]) / p["measured_ms"]
    checks = [abs(p["error_pct"]) for p in points if p["kind"] == "check"]
    record = {
        "environment": env,
        "remote": measured.get("remote"),
        "sweep": sweep,
        "run_overhead_ms": overhead,
        "dense": {"measured_ms": points[0]["measured_ms"], "predicted_ms": points[0]["predicted_ms"]},
        "floor": next({"measured_ms": p["measured_ms"], "predicted_ms": p["predicted_ms"]} for p in points
                      if p["kind"] == "floor"),
        "networks": points,
        "error": {"check_max_abs_pct": max(checks), "check_mean_abs_pct": sum(checks) / len(checks)},
        "measure": {"warmup": req.warmup, "min_runs": req.min_runs, "min_time_s": req.min_time_s, "statistic": "p50"},
    }
    return LatencyModel(key, layers, grids, float(scale), float(offset), multiple, record)
