"""Was a measurement taken on the device it claims to describe?

A target may declare what it is (`arch`, `cpu_match`, `cores`; see targets.py). A profile taken
elsewhere, say on an x86-64 CI runner for `--target rpi4`, still has valid MACs and file sizes,
but its latency and memory say nothing about the Raspberry Pi. `foreign_reasons` compares the
target's declaration with the environment the runner recorded, and lists every mismatch; an
empty list means the measurement may stand for the target. `profile` and `report` warn with it,
and `gate` fails the latency and memory checks of a foreign measurement (closed, unless the user
accepts it explicitly). Works on the plain dicts of profile records and reports. Torch-free.
"""

from __future__ import annotations

import re
from typing import Any

# platform.machine() spellings of one architecture
ARCH_ALIASES = {"arm64": "aarch64", "armv8l": "aarch64", "amd64": "x86_64", "x64": "x86_64", "i686": "x86", "i386": "x86"}
# budget keys whose value depends on the machine that measured (size, accuracy and MACs do not)
DEVICE_KEYS = ("latency_p90_ms", "peak_memory_mb", "min_speedup")


def normalise_arch(machine: str) -> str:
    machine = machine.strip().lower()
    return ARCH_ALIASES.get(machine, machine)


def measured_on(environment: dict[str, Any] | None) -> str:
    """"x86_64 AMD EPYC 9B14, 2 CPUs": how the measuring machine describes itself."""
    if not environment:
        return "an unrecorded machine"
    return (f"{environment.get('machine', '?')} {environment.get('cpu_model', '?')}, "
            f"{environment.get('cpus_available', '?')} CPUs")


def foreign_reasons(target: dict[str, Any], environment: dict[str, Any] | None) -> list[str]:
    """Why the measurement in `environment` does not stand for `target` (empty: it does)."""
    if not environment:
        return ["the record does not say which machine measured it"]
    reasons = []
    arch, machine = target.get("arch"), environment.get("machine")
    if arch and normalise_arch(str(machine or "")) != normalise_arch(arch):
        reasons.append(f"architecture {machine or 'unknown'}, not {arch}")
    pattern, cpu = target.get("cpu_match"), str(environment.get("cpu_model") or "")
    if pattern and not re.search(pattern, cpu, flags=re.IGNORECASE):
        reasons.append(f"CPU {cpu or 'unknown'!r} does not match {pattern!r}")
    cpus, cores = environment.get("cpus_available"), target.get("cores")
    if cores and cpus != cores:
        reasons.append(f"{cpus} CPUs, not {cores}")
    threads = environment.get("intra_op_threads")
    if isinstance(threads, int) and isinstance(cpus, int) and threads > cpus:
        reasons.append(f"{threads} threads on {cpus} CPUs (oversubscribed)")
    wanted = target.get("threads")
    if wanted and threads != wanted:
        reasons.append(f"{threads} threads, not the target's {wanted}")
    return reasons


def check(target: dict[str, Any], environment: dict[str, Any] | None) -> dict[str, Any]:
    """The record's `device_check`: {"foreign", "reasons", "measured_on", "summary", "message"}."""
    reasons = foreign_reasons(target, environment)
    summary = message = ""
    if reasons:
        summary = f"measured on {measured_on(environment)}, not on {target.get('name')} ({'; '.join(reasons)})"
        message = f"{summary}: its latency and memory do not describe that device; measure there with --remote"
    return {"foreign": bool(reasons), "reasons": reasons, "measured_on": measured_on(environment),
            "summary": summary, "message": message}
