"""Device targets: TOML files describing where a model will run and what it must fit.

A target is named (a built-in file in the `pdd_edge.targets` package data) or given as a path
to the user's own `.toml`. Keys (all optional except where noted):

    name                str    defaults to the file name without .toml
    description         str
    cpu                 str    the cores, for people (e.g. "4x Cortex-A72 @ 1.8 GHz")
    arch                str    the machine a measurement must come from ("aarch64", "x86_64"); absent = any
    cpu_match           str    regular expression the measured CPU model must match (case-insensitive)
    cores               int    CPUs the measuring machine must offer the process
    execution_provider  str    onnxruntime provider, default "CPUExecutionProvider"
    threads             int    intra-op threads; absent = every CPU available to the process
    batch_sizes         [int]  default [1]; the first is the primary (the one budgets apply to)
    input_shape         [int]  one sample without batch, e.g. [3, 32, 32]
    quantization        str    "fp32", "int8-qdq" or "int8-qoperator": the INT8 format `compress` builds
                               (QOperator for int8-qoperator, else QDQ) and the variant deployed when
                               the latencies were not measured on this device (else: the fastest
                               within the accuracy budget, report/build.py)
    channel_multiple    int    widths this device runs fast are multiples of it; `prune` rounds to it
                               by default (set from `benchmarks/channel_multiple.py` on the device,
                               see docs/latency.md); absent = not measured, no rounding
    [budget]                   any subset of BUDGET_KEYS (see below), numbers >= 0

Validation is strict: an unknown key, a wrong type, a negative budget or a number outside its
range (LIMITS below; `threads` at most THREADS_PER_CPU x the declared `cores`, else x the CPUs of
this machine) is an error naming the file, the key and the allowed range, because a typo in a
budget must not silently disable a check, nor a stray zero start 100,000 threads. Torch-free.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pdd_edge.errors import PddError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Budget keys shared with `gate`. Units: milliseconds; MiB (2**20 bytes); top-1 in percent;
# the drop in percentage points; the MACs reduction in percent of the baseline's MACs.
BUDGET_KEYS = {
    "latency_p90_ms": "p90 latency at the primary batch size, ms",
    "model_size_mb": "ONNX file size, MiB",
    "peak_memory_mb": "peak RSS growth of the session at the primary batch size, MiB",
    "min_top1": "lowest acceptable top-1, %",
    "max_top1_drop": "largest acceptable top-1 drop from the baseline, percentage points",
    "min_macs_reduction": "smallest acceptable MACs reduction from the baseline, %",
    "min_speedup": "smallest acceptable speed-up (p50) of the deployed file over the unpruned FP32 file, measured on the device",
}
PERCENT_KEYS = {"min_top1", "max_top1_drop", "min_macs_reduction"}
QUANTIZATIONS = ("fp32", "int8-qdq", "int8-qoperator")
# Upper bounds of the numeric keys: far above any real device, low enough that a typo cannot make
# `profile` start thousands of threads or allocate gigabytes of input.
THREADS_PER_CPU = 4  # more intra-op threads than this per core measure contention, not the model
LIMITS = {"cores": 4096, "channel_multiple": 1024, "batch_sizes": 4096}
MAX_INPUT_DIMS = 8  # one sample's shape, without the batch dimension
MAX_INPUT_ELEMENTS = 2**26  # per sample: 64 Mi values (e.g. 3 x 4096 x 4096 fits)
TOP_KEYS = {"name", "description", "cpu", "arch", "cpu_match", "cores", "execution_provider", "threads", "batch_sizes", "input_shape",
            "quantization", "channel_multiple", "budget"}


@dataclass(frozen=True)
class Target:
    name: str
    source: str  # "built-in" or the file's path
    description: str = ""
    cpu: str = ""
    arch: str | None = None  # see profiling/provenance.py: what a measurement for this target must come from
    cpu_match: str | None = None
    cores: int | None = None
    execution_provider: str = "CPUExecutionProvider"
    threads: int | None = None
    batch_sizes: tuple[int, ...] = (1,)
    input_shape: tuple[int, ...] | None = None
    quantization: str = "fp32"
    channel_multiple: int | None = None
    budget: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "source": self.source, "description": self.description, "cpu": self.cpu,
            "arch": self.arch, "cpu_match": self.cpu_match, "cores": self.cores,
            "execution_provider": self.execution_provider, "threads": self.threads,
            "batch_sizes": list(self.batch_sizes),
            "input_shape": list(self.input_shape) if self.input_shape is not None else None,
            "quantization": self.quantization, "channel_multiple": self.channel_multiple,
            "budget": dict(self.budget),
        }


def builtin_names() -> list[str]:
    return sorted(p.name[: -len(".toml")] for p in resources.files("pdd_edge.targets").iterdir()
                  if p.name.endswith(".toml"))


def load_target(name_or_path: str | Path) -> Target:
    """A built-in target by name, or a user's TOML file by path (anything ending in .toml or
    containing a path separator: a stray file named like a built-in must not shadow it)."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or os.sep in text:
        return read_target_file(Path(text))
    if text not in builtin_names():
        raise PddError(f"unknown target {text!r}; built-in targets: {', '.join(builtin_names())} "
                       "(or give a path to a .toml file)")
    raw = resources.files("pdd_edge.targets").joinpath(f"{text}.toml").read_text(encoding="utf-8")
    return parse_target(raw, source="built-in", default_name=text)


def read_target_file(path: Path, what: str = "target file") -> Target:
    """A target (or budget) TOML file from disk; every failure is one readable line."""
    if not path.is_file():
        raise PddError(f"{what} not found: {path}")
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PddError(f"cannot read {what} {path}: {exc}") from None
    return parse_target(raw, source=str(path), default_name=path.stem)


def parse_target(raw: str, *, source: str, default_name: str) -> Target:
    """The Target of a TOML text, every key checked: unknown keys, strings, integers, shapes, then
    the budget (the first problem found is the error)."""
    where = source if source != "built-in" else f"built-in target {default_name}"
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise PddError(f"{where}: not valid TOML ({exc})") from None

    def bad(key: str, why: str) -> PddError:
        return PddError(f"{where}: key {key!r} {why}")

    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise bad(unknown[0], f"is not a target key (allowed: {', '.join(sorted(TOP_KEYS))})")
    strings = _strings(data, bad)
    for key in ("cores", "channel_multiple"):
        _bounded_int(data, key, LIMITS[key], "", bad)
    _bounded_int(data, "threads", *max_threads(data.get("cores")), bad)
    batch_sizes, input_shape = _shapes(data, bad)
    budget = _budget(data, bad)
    return Target(
        name=strings["name"] or default_name,
        source=source,
        description=strings["description"] or "",
        cpu=strings["cpu"] or "",
        arch=strings["arch"],
        cpu_match=strings["cpu_match"],
        cores=data.get("cores"),
        execution_provider=strings["execution_provider"] or "CPUExecutionProvider",
        threads=data.get("threads"),
        batch_sizes=tuple(batch_sizes) if batch_sizes else (1,),
        input_shape=tuple(input_shape) if input_shape else None,
        quantization=strings["quantization"] or "fp32",
        channel_multiple=data.get("channel_multiple"),
        budget=budget,
    )


def _strings(data: dict, bad) -> dict[str, str | None]:
    """The string keys (None where absent); `cpu_match` must compile, `quantization` be one of QUANTIZATIONS."""
    strings = {k: _string(data, k, bad) for k in ("name", "description", "cpu", "arch", "cpu_match",
                                                  "execution_provider", "quantization")}
    if strings["cpu_match"] is not None:
        try:
            re.compile(strings["cpu_match"])
        except re.error as exc:
            raise bad("cpu_match", f"is not a regular expression ({exc})") from None
    if strings["quantization"] is not None and strings["quantization"] not in QUANTIZATIONS:
        raise bad("quantization", f"must be one of {', '.join(QUANTIZATIONS)}, got {strings['quantization']!r}")
    return strings


def _shapes(data: dict, bad) -> tuple[list[int] | None, list[int] | None]:
    """`batch_sizes` (distinct, at most LIMITS) and `input_shape` (one sample, bounded), None where absent."""
    batch_sizes = _int_list(data, "batch_sizes", bad)
    if batch_sizes and (max(batch_sizes) > LIMITS["batch_sizes"] or len(set(batch_sizes)) != len(batch_sizes)):
        raise bad("batch_sizes", f"must be distinct batch sizes from 1 to {LIMITS['batch_sizes']}, got {batch_sizes!r}")
    input_shape = _int_list(data, "input_shape", bad)
    if input_shape and (len(input_shape) > MAX_INPUT_DIMS or math.prod(input_shape) > MAX_INPUT_ELEMENTS):
        raise bad("input_shape", f"must be one sample's shape with at most {MAX_INPUT_DIMS} dimensions and "
                  f"{MAX_INPUT_ELEMENTS:,} values (e.g. [3, 224, 224]), got {input_shape!r}")
    return batch_sizes, input_shape


def _budget(data: dict, bad) -> dict[str, float]:
    """The [budget] table: known keys, finite numbers >= 0, percentages at most 100."""
    budget = data.get("budget", {})
    if not isinstance(budget, dict):
        raise bad("budget", "must be a table ([budget])")
    for key, value in budget.items():
        if key not in BUDGET_KEYS:
            raise bad(f"budget.{key}", f"is not a budget key (allowed: {', '.join(BUDGET_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad(f"budget.{key}", f"must be a number, got {value!r}")
        if value < 0:
            raise bad(f"budget.{key}", f"must not be negative, got {value!r}")
        if key in PERCENT_KEYS and value > 100:
            raise bad(f"budget.{key}", f"is a percentage and must be at most 100, got {value!r}")
    return {k: float(v) for k, v in budget.items()}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def max_threads(cores: Any) -> tuple[int, str]:
    """The most intra-op threads a target may ask for, and why: THREADS_PER_CPU per core of the
    device it declares, else of this machine (where a target without `cores` is measured)."""
    if _is_int(cores) and cores >= 1:
        return THREADS_PER_CPU * cores, f"{THREADS_PER_CPU} x its cores = {cores}"
    from pdd_edge.profiling.runner import resolve_threads

    cpus = resolve_threads(None)
    return THREADS_PER_CPU * cpus, (f"{THREADS_PER_CPU} x the {cpus} CPUs of this machine; "
                                    "a target for another device declares its `cores`")


def check_threads(threads: int | None, target: Target, option: str = "--threads") -> None:
    """A command's thread count for `target`, bounded as the target file's own `threads` is."""
    high, why = max_threads(target.cores)
    if threads is not None and not 1 <= threads <= high:
        raise PddError(f"{option} must be from 1 to {high} ({why}), got {threads}")


def _bounded_int(data: dict, key: str, high: int, why: str, bad) -> None:
    value = data.get(key)
    if value is not None and (not _is_int(value) or not 1 <= value <= high):
        raise bad(key, f"must be an integer from 1 to {high}{f' ({why})' if why else ''}, got {value!r}")


def _string(data: dict, key: str, bad) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise bad(key, f"must be a string, got {value!r}")
    return value


def _int_list(data: dict, key: str, bad) -> list[int] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(_is_int(v) and v > 0 for v in value):
        raise bad(key, f"must be a non-empty list of positive integers, got {value!r}")
    return value
