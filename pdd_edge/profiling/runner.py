"""The measurement core of `pdd-edge profile`: one self-contained file.

It needs only Python 3, numpy and onnxruntime, and imports nothing from pdd_edge, so that
`profile --remote` can copy this file to a board and run it there as

    python3 runner.py SPEC.json        # prints the result as JSON on stdout

Locally the same functions run in-process (`measure(spec)`). The spec is a JSON object:

    {"provider": "CPUExecutionProvider", "threads": 4 | null, "warmup": 10, "min_runs": 100,
     "min_time_s": 2.0, "memory": true, "batch_sizes": [1],
     "models": [{"name": "model", "path": "model.onnx",
                 "inputs": {"1": [{"name": "input", "shape": [1, 3, 32, 32], "dtype": "float32"}]}}]}

`inputs` maps each batch size to the concrete input shapes of that batch size. All models of
one spec are timed *interleaved* (round-robin, one run each per round) so that drift of the
machine (thermal throttling, a neighbour's job) hits every model alike.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

RUNNER_VERSION = 3  # 2: multi-threaded sessions are interleaved in blocks (time_interleaved); 3: of 200 runs
# Runs per turn when several multi-threaded sessions are interleaved (see time_interleaved). 10 was
# not enough: on 2 vCPUs, a 2-thread ResNet20 interleaved with three other files in blocks of 10
# measured p50 0.72-0.75 ms (p90 4.8 ms) against 0.50-0.51 ms timed alone; in blocks of 50 0.55 ms,
# of 200 0.51 ms. That overstated every multi-thread speed-up over the unpruned file (the digits
# main job's INT8 file 2.19x where it is 1.5-1.6x alone).
INTERLEAVE_BLOCK = 200
NOISY_CV = 0.10  # std/mean above this marks a latency measurement as noisy (pyperf's rule of thumb)
MEMORY_RUNS = 5  # inferences run while the peak RSS is watched: enough to reach the steady arena size
ERROR_EXIT = 3  # exit code of the command-line runner for a problem it explains on stderr

# ARM "CPU part" codes of /proc/cpuinfo (implementer 0x41), for boards whose cpuinfo has no
# "model name" line. Source: ARM's Main ID Register values in each core's technical reference manual.
ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
    "0xd42": "Cortex-A78AE", "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2", "0xd49": "Neoverse-N2", "0xd4b": "Cortex-A78C", "0xd4f": "Neoverse-V2",
}


class RunnerError(Exception):
    """A problem with the spec, the model or the board that the user can act on."""


# --- inputs and sessions ----------------------------------------------------------------------
def make_feeds(inputs: list[dict], seed: int = 0) -> dict:
    """Random data of the given shapes: N(0, 1) for floats (what a normalised image looks like),
    zeros for integers and booleans (always a valid index or flag)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        dtype = np.dtype(spec["dtype"])
        shape = tuple(spec["shape"])
        if np.issubdtype(dtype, np.floating):
            feeds[spec["name"]] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[spec["name"]] = np.zeros(shape, dtype=dtype)
    return feeds


def resolve_threads(threads: int | None) -> int:
    """`None` means this machine's default: every CPU this process may run on."""
    if threads is not None:
        return int(threads)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def make_session(path: str, provider: str, threads: int):
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider not in available:
        raise RunnerError(f"execution provider {provider} is not available in this onnxruntime "
                          f"(available: {', '.join(available)})")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    # One model runs at a time: parallelism is inside operators, as on a deployed board.
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: warnings would mix into the JSON's stderr neighbour
    try:
        return ort.InferenceSession(path, sess_options=opts, providers=[provider])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise RunnerError(f"onnxruntime cannot load {path}: {str(exc).strip().splitlines()[0]}") from None


def _run(session, feeds: dict, path: str) -> None:
    try:
        session.run(None, feeds)
    except Exception as exc:
        raise RunnerError(f"onnxruntime failed to run {path}: {str(exc).strip().splitlines()[0]}") from None


# --- latency ------------------------------------------------------------------------------------
def time_interleaved(runs: list[tuple], warmup: int, min_runs: int, min_time_s: float, block: int = 1) -> list[list[int]]:
    """Per-run wall times in ns of each (session, feeds, path), measured round-robin.

    After `warmup` untimed runs of each model, rounds run every model in turn, starting each
    round at the next model so that none always runs first. It stops after the round in which
    every model has `min_runs` runs *and* the loop has lasted `min_time_s`: enough samples for a
    p99, and enough wall time to average over the machine's short-term noise.

    With `block` > 1 each turn is one untimed run and then `block` timed ones. A session with
    several intra-op threads leaves them spinning for a while after its run; timed right after
    another session, a model shares the cores with those threads (on 2 vCPUs, a 2-thread ResNet20
    measured 0.45 ms that way against 0.27 ms alone). The untimed run and a long block
    (INTERLEAVE_BLOCK) outlast what the other sessions leave behind.
    """
    for session, feeds, path in runs:
        for _ in range(warmup):
            _run(session, feeds, path)
    times: list[list[int]] = [[] for _ in runs]
    start = time.perf_counter()
    rounds = 0
    while min(len(t) for t in times) < min_runs or time.perf_counter() - start < min_time_s:
        for k in range(len(runs)):
            i = (rounds + k) % len(runs)
            session, feeds, path = runs[i]
            if block > 1:
                _run(session, feeds, path)  # settle: the previous session's threads stop spinning
            for _ in range(block):
                t0 = time.perf_counter_ns()
                _run(session, feeds, path)
                times[i].append(time.perf_counter_ns() - t0)
        rounds += 1
    return times


def latency_stats(times_ns: list[int], batch_size: int) -> dict:
    import numpy as np

    ms = np.asarray(times_ns, dtype=np.float64) / 1e6
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if len(ms) > 1 else 0.0
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    cv = std / mean if mean > 0 else 0.0
    return {
        "runs": int(len(ms)),
        "p50_ms": p50, "p90_ms": p90, "p99_ms": p99,
        "mean_ms": mean, "std_ms": std, "min_ms": float(ms.min()), "max_ms": float(ms.max()),
        "cv": cv,
        "noisy": cv > NOISY_CV,
        # images (samples) per second at this batch size, from the total time of all timed runs
        "throughput_per_s": batch_size * len(ms) / (ms.sum() / 1e3),
    }


# --- peak memory ----------------------------------------------------------------------------------
def _rss_kib(field: str) -> int | None:
    """VmRSS (current) or VmHWM (peak) of this process from /proc, in KiB; None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def memory_child(job: dict) -> dict:
    """Run in a fresh process: the peak RSS growth caused by creating the session and running it.

    Measured from just before the session is created (interpreter, numpy, onnxruntime and the
    input arrays already resident) to the peak during session creation and MEMORY_RUNS
    inferences: the model as onnxruntime holds it, its memory arena, intermediate and output
    tensors.
    """
    feeds = make_feeds(job["inputs"])
    before = _rss_kib("VmRSS")
    if before is not None and _reset_peak_rss():
        method = "linux-vmhwm-reset"
    else:
        # Without a resettable peak the baseline must be the peak so far, so the growth is a
        # lower bound when the import peaked higher than the session does.
        import resource

        scale = 1 if sys.platform.startswith("linux") else 1 / 1024  # ru_maxrss: KiB on Linux, bytes on macOS
        before = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)
        method = "ru_maxrss"
    session = make_session(job["path"], job["provider"], job["threads"])
    for _ in range(MEMORY_RUNS):
        _run(session, feeds, job["path"])
    if method == "ru_maxrss":
        import resource

        peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)
    else:
        peak = _rss_kib("VmHWM")
    return {"peak_rss_growth_mb": (peak - before) / 1024, "baseline_rss_mb": before / 1024,
            "peak_rss_mb": peak / 1024, "method": method}


def measure_memory(job: dict) -> dict:
    """`memory_child` in a child process of this interpreter, so nothing else we hold counts."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child"],
                          input=json.dumps(job), capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
        raise RunnerError(f"peak-memory measurement of {job['path']} failed: {lines[-1]}")
    return json.loads(proc.stdout)


# --- environment ------------------------------------------------------------------------------------
def cpu_model(cpuinfo: str, device_model: str | None = None) -> str:
    """The CPU's name from /proc/cpuinfo text: x86 "model name"; on ARM, which often has none,
    the core named from its "CPU part" code, with the board's device-tree model when known."""
    fields: dict[str, str] = {}
    parts: list[str] = []
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        fields.setdefault(key, value)
        if key == "cpu part" and fields.get("cpu implementer", "").lower() == "0x41":
            name = ARM_PARTS.get(value.lower(), f"ARM part {value}")
            if name not in parts:
                parts.append(name)
    if "model name" in fields and not fields["model name"].lower().startswith("armv"):
        return fields["model name"]
    core = " + ".join(parts) or fields.get("model name") or fields.get("hardware") or fields.get("processor")
    board = device_model or fields.get("model")
    if core and board:
        return f"{core} ({board})"
    return core or board or platform.processor() or "unknown"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().replace("\x00", "").strip()
    except OSError:
        return None


def environment(provider: str, threads: int) -> dict:
    import numpy as np
    import onnxruntime as ort

    return {
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "execution_provider": provider,
        "available_providers": ort.get_available_providers(),
        "intra_op_threads": threads,
        "inter_op_threads": 1,
        "cpu_model": cpu_model(_read("/proc/cpuinfo") or "", _read("/proc/device-tree/model")),
        "cpus_available": resolve_threads(None),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "hostname": platform.node(),
    }


# --- the whole measurement --------------------------------------------------------------------------
def measure(spec: dict) -> dict:
    """Latency (interleaved across models) and peak memory for every batch size of the spec."""
    provider = spec["provider"]
    threads = resolve_threads(spec.get("threads"))
    models = spec["models"]
    results = [{"name": m["name"], "batches": []} for m in models]
    # Several threads per session: blocks of runs per turn (see time_interleaved).
    block = int(spec.get("block") or (1 if threads == 1 or len(models) == 1 else INTERLEAVE_BLOCK))
    timing = (int(spec["warmup"]), int(spec["min_runs"]), float(spec["min_time_s"]), block)
    if spec.get("sequential"):
        # One model at a time, its session alone in the process: how a device runs one deployed
        # model. Interleaving hundreds of sessions (a latency table's layer files) would let the
        # idle sessions' spinning thread pools compete with the one being timed.
        for result, m in zip(results, models):
            session = make_session(m["path"], provider, threads)
            for b in spec["batch_sizes"]:
                t = time_interleaved([(session, make_feeds(m["inputs"][str(b)]), m["path"])], *timing[:3])[0]
                result["batches"].append({"batch_size": b, "latency": latency_stats(t, b)})
            del session
    else:
        sessions = [make_session(m["path"], provider, threads) for m in models]
        for b in spec["batch_sizes"]:
            runs = [(s, make_feeds(m["inputs"][str(b)]), m["path"]) for s, m in zip(sessions, models)]
            times = time_interleaved(runs, *timing)
            for result, t in zip(results, times):
                result["batches"].append({"batch_size": b, "latency": latency_stats(t, b)})
    if spec.get("memory", True):
        for result, m in zip(results, models):
            for entry in result["batches"]:
                job = {"path": m["path"], "provider": provider, "threads": threads,
                       "inputs": m["inputs"][str(entry["batch_size"])]}
                entry["memory"] = measure_memory(job)
    return {"runner_version": RUNNER_VERSION, "environment": environment(provider, threads), "models": results}


def main(argv: list[str]) -> int:
    try:
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        print(f"{exc.name} is not installed for {sys.executable}: pip install numpy onnxruntime", file=sys.stderr)
        return ERROR_EXIT
    try:
        if argv == ["--memory-child"]:
            print(json.dumps(memory_child(json.load(sys.stdin))))
            return 0
        if len(argv) != 1:
            print("usage: python3 runner.py SPEC.json", file=sys.stderr)
            return ERROR_EXIT
        with open(argv[0], encoding="utf-8") as fh:
            spec = json.load(fh)
        print(json.dumps(measure(spec)))
        return 0
    except RunnerError as exc:
        print(str(exc), file=sys.stderr)
        return ERROR_EXIT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
