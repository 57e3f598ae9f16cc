"""`pdd-edge profile`: everything about one ONNX model on one target, as a versioned record.

The record (schema `pdd-edge.profile/1`, every key documented in docs/profile.md) joins what
the file says (size, MACs and params counted from the graph) with what a run on the target
measured (latency, throughput and peak memory per batch size, and the environment).
Torch-free.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pdd_edge
from pdd_edge.fileio import file_sha256
from pdd_edge.onnx.meta import load_onnx, read_meta
from pdd_edge.profiling import provenance
from pdd_edge.profiling.graph_cost import count_cost
from pdd_edge.profiling.inputs import model_inputs, resolve_shapes, shape_hint
from pdd_edge.profiling.measure import MeasureSettings, check_batch_sizes, measure_models, prepare_model
from pdd_edge.profiling.targets import Target, check_threads

SCHEMA = "pdd-edge.profile/1"
MIB = 2**20
MACS_CONVENTION = "multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul (BN, activations, pooling, adds: 0)"


@dataclass(frozen=True)
class ProfileRequest:
    """How to profile (the models are given separately); None fields fall back to the target's values."""

    target: Target
    batch_sizes: tuple[int, ...] | None = None
    threads: int | None = None
    input_shape: tuple[int, ...] | None = None
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (input name, sample shape): per-input hints
    warmup: int = MeasureSettings.warmup
    min_runs: int = MeasureSettings.min_runs
    min_time_s: float = MeasureSettings.min_time_s
    memory: bool = True

    def __post_init__(self) -> None:
        check_threads(self.threads, self.target)
        self.settings()  # the timing options are checked here, before any model is loaded

    def settings(self) -> MeasureSettings:
        return MeasureSettings(provider=self.target.execution_provider,
                               threads=self.threads if self.threads is not None else self.target.threads,
                               warmup=self.warmup, min_runs=self.min_runs, min_time_s=self.min_time_s,
                               memory=self.memory)


def profile_model(model: Path, req: ProfileRequest, remote=None) -> dict:
    """The profile record of `model`; measured on `remote` (a RemoteHost) when given.

    Everything that can be wrong with the inputs (file, shapes, batch sizes, settings) is
    checked before the first timed run.
    """
    return profile_models({"model": model}, req, remote)["model"]


@dataclass
class _Static:
    """What the file itself says: inputs, resolved shapes and the cost counted from the graph."""

    path: Path
    model: object
    meta: object
    inputs: list
    hint: object
    prepared: object
    cost: object
    cost_batch: int


def _static(name: str, path: Path, req: ProfileRequest, batch_sizes: tuple[int, ...]) -> _Static:
    model = load_onnx(path)
    meta = read_meta(model)
    inputs = model_inputs(model)
    hint = shape_hint(req.input_shape, req.target.input_shape, req.target.name,
                      meta.preprocess.input_size if meta.preprocess else None)
    per_input = dict(req.input_shapes)
    prepared = prepare_model(name, path, inputs, batch_sizes, hint, per_input)
    # MACs per single inference at batch 1 (the model's own batch size if it is fixed).
    first = inputs[0].dims[0] if inputs[0].dims else None
    cost_batch = first if isinstance(first, int) else 1
    cost = count_cost(model, resolve_shapes(inputs, cost_batch, hint, per_input))
    return _Static(Path(path), model, meta, inputs, hint, prepared, cost, cost_batch)


def profile_models(models: dict[str, Path], req: ProfileRequest, remote=None) -> dict[str, dict]:
    """One profile record per model, all measured in one run with the
    models interleaved (see `measure_models`), so that machine drift favours none of them."""
    batch_sizes = check_batch_sizes(req.batch_sizes or req.target.batch_sizes)
    settings = req.settings()
    static = {name: _static(name, Path(path), req, batch_sizes) for name, path in models.items()}
    measured = measure_models([s.prepared for s in static.values()], batch_sizes, settings, remote)
    by_name = {m["name"]: m for m in measured["models"]}
    return {name: _record(st, by_name[name], measured, req, batch_sizes, settings) for name, st in static.items()}


def _record(st: _Static, measured_model: dict, measured: dict, req: ProfileRequest, batch_sizes, settings) -> dict:
    """One model's profile record: what the file says joined with what the run measured."""
    batches = []
    for entry in measured_model["batches"]:
        b = entry["batch_size"]
        batches.append({"batch_size": b, "input_shapes": st.prepared.shapes[b], "latency": entry["latency"],
                        "memory": entry.get("memory")})
    size = st.path.stat().st_size  # once: the record's two mentions of it must agree
    return {
        "schema": SCHEMA,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "pdd_edge_version": pdd_edge.__version__,
        "model": _model_section(st, size),
        "target": req.target.to_dict(),
        "settings": {
            "batch_sizes": list(batch_sizes),
            "shape_hint": {"sizes": list(st.hint.sizes), "source": st.hint.source} if st.hint else None,
            "input_shape_hints": {name: list(sizes) for name, sizes in req.input_shapes},
            "warmup_runs": settings.warmup,
            "min_runs": settings.min_runs,
            "min_time_s": settings.min_time_s,
            "memory": settings.memory,
            "remote": measured.get("remote"),
        },
        "cost": _cost_section(st),
        "batches": batches,
        "summary": _summary(st, batches, size),
        "environment": measured["environment"],
        # whether the machine that measured is the target's kind of device (gate trusts latency only then)
        "device_check": provenance.check(req.target.to_dict(), measured["environment"]),
        "runner_version": measured["runner_version"],
    }


def _model_section(st: _Static, size: int) -> dict:
    """The file: its identity (sha256, size), format versions, inputs and outputs, and pdd-edge's metadata."""
    model = st.model
    return {
        "path": str(st.path),
        "sha256": file_sha256(st.path),
        "file_size_bytes": size,
        "ir_version": int(model.ir_version),
        "opsets": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [i.to_dict() for i in st.inputs],
        "outputs": [o.name for o in model.graph.output],
        "pdd_edge_model": st.meta.model,
        "pruned": st.meta.keep is not None,
    }


def _cost_section(st: _Static) -> dict:
    cost = st.cost
    return {
        "macs": cost.macs,
        "params": cost.params,
        "batch_size": st.cost_batch,
        "convention": MACS_CONVENTION,
        "by_op": cost.by_op(),
        "layers": [{"name": l.name, "op_type": l.op_type, "macs": l.macs, "params": l.params} for l in cost.layers],
        "uncounted": cost.uncounted,
        "shape_source": cost.shape_source,
    }


def _summary(st: _Static, batches: list[dict], size: int) -> dict:
    """The headline numbers, at the primary (first) batch size; noisy if any batch size was."""
    primary = batches[0]
    return {
        "batch_size": primary["batch_size"],
        "macs": st.cost.macs,
        "params": st.cost.params,
        "model_size_mb": size / MIB,
        "latency_p50_ms": primary["latency"]["p50_ms"],
        "latency_p90_ms": primary["latency"]["p90_ms"],
        "throughput_per_s": primary["latency"]["throughput_per_s"],
        "peak_memory_mb": primary["memory"]["peak_rss_growth_mb"] if primary["memory"] else None,
        "noisy": any(b["latency"]["noisy"] for b in batches),
    }
