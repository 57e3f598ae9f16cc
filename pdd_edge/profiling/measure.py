"""Latency and memory of one or several ONNX models, here or on a board over SSH.

`measure_models` is the entry point `profile` and `report` share: it turns resolved models and
settings into a runner spec and runs `runner.measure` in this process, or on the board through
`remote.RemoteHost`. Several models are timed interleaved (see `runner.time_interleaved`), so
a comparison of variants is fair. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from pdd_edge.errors import PddError
from pdd_edge.profiling.inputs import ModelInput, ShapeHint, resolve_shapes


@dataclass(frozen=True)
class MeasureSettings:
    provider: str = "CPUExecutionProvider"
    threads: int | None = None  # None: every CPU available on the machine that measures
    warmup: int = 10  # untimed runs per model and batch size
    min_runs: int = 100  # timed runs per model and batch size, at least
    min_time_s: float = 2.0  # wall time of the timed loop per batch size, at least
    memory: bool = True  # also measure peak memory (one child process per model and batch size)
    sequential: bool = False  # time the models one after another, each alone, instead of interleaved

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise PddError(f"threads must be at least 1, got {self.threads}")
        if self.warmup < 0:
            raise PddError(f"warm-up runs must not be negative, got {self.warmup}")
        if self.min_runs < 1:
            raise PddError(f"min runs must be at least 1, got {self.min_runs}")
        if not self.min_time_s >= 0:
            raise PddError(f"min time must be a non-negative number of seconds, got {self.min_time_s}")


@dataclass(frozen=True)
class PreparedModel:
    """A model file with the concrete input shapes of every batch size to measure."""

    name: str
    path: Path
    shapes: dict[int, dict[str, list[int]]]  # batch size -> input name -> shape
    dtypes: dict[str, str]  # input name -> numpy dtype name


def prepare_model(name: str, path: Path, inputs: Sequence[ModelInput], batch_sizes: Sequence[int],
                  hint: ShapeHint | None, per_input: Mapping[str, Sequence[int]] | None = None) -> PreparedModel:
    """Resolve every batch size's shapes up front, so a bad one fails before any measuring."""
    return PreparedModel(name, Path(path), {b: resolve_shapes(inputs, b, hint, per_input) for b in batch_sizes},
                         {i.name: i.dtype for i in inputs})


def check_batch_sizes(batch_sizes: Sequence[int]) -> tuple[int, ...]:
    if not batch_sizes:
        raise PddError("give at least one batch size")
    if any(b < 1 for b in batch_sizes):
        raise PddError(f"batch sizes must be positive, got {list(batch_sizes)}")
    if len(set(batch_sizes)) != len(batch_sizes):
        raise PddError(f"batch sizes must be distinct, got {list(batch_sizes)}")
    return tuple(int(b) for b in batch_sizes)


def runner_spec(models: Sequence[PreparedModel], batch_sizes: Sequence[int], settings: MeasureSettings,
                paths: Sequence[str]) -> dict:
    """The runner's JSON spec; `paths[i]` is where model i is on the machine that measures."""
    return {
        "provider": settings.provider,
        "threads": settings.threads,
        "warmup": settings.warmup,
        "min_runs": settings.min_runs,
        "min_time_s": settings.min_time_s,
        "memory": settings.memory,
        "sequential": settings.sequential,
        "batch_sizes": list(batch_sizes),
        "models": [
            {"name": m.name, "path": p,
             "inputs": {str(b): [{"name": n, "shape": s, "dtype": m.dtypes[n]} for n, s in m.shapes[b].items()]
                        for b in batch_sizes}}
            for m, p in zip(models, paths)
        ],
    }


def measure_models(models: Sequence[PreparedModel], batch_sizes: Sequence[int], settings: MeasureSettings,
                   remote=None) -> dict:
    """Runner output: {"runner_version", "environment", "models": [{"name", "batches": [...]}]}
    (see docs/profile.md), measured here or on `remote` (a `remote.RemoteHost`)."""
    batch_sizes = check_batch_sizes(batch_sizes)
    if remote is not None:
        return remote.measure(models, batch_sizes, settings)
    from pdd_edge.profiling import runner

    spec = runner_spec(models, batch_sizes, settings, [str(m.path) for m in models])
    try:
        return runner.measure(spec)
    except runner.RunnerError as exc:
        raise PddError(str(exc)) from None
