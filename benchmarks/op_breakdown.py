"""Where an ONNX model's latency goes, op by op: onnxruntime's own profiler, one or more files
compared at the same batch size and thread count.

For each file: a session with `enable_profiling`, `--warmup` untimed runs, then `--runs` timed
runs on random input; the profiler's per-node kernel times (`*_kernel_time` events) are summed
per op type and divided by the number of timed runs. The files are profiled alternately,
`--repeats` times, and the table shows the median per op type. "total" is the sum of kernel
times; session overhead between kernels is not in it.

    python benchmarks/op_breakdown.py RUN/simplify/baseline.onnx RUN/simplify/pruned.onnx --batch 1 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def profile_once(path: Path, batch: int, threads: int, warmup: int, runs: int) -> dict[str, float]:
    """Kernel milliseconds per timed run, by op type (warm-up runs are profiled but left out)."""
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "prof")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        shape = [d if isinstance(d, int) else batch for d in inp.shape]
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        for _ in range(warmup + runs):
            sess.run(None, {inp.name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    first_timed = starts[-runs]
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= first_timed:
            per_op[e["args"]["op_name"]] += e["dur"] / 1000.0  # us -> ms
    return {op: ms / runs for op, ms in per_op.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    samples: dict[Path, list[dict[str, float]]] = {m: [] for m in args.models}
    for _ in range(args.repeats):
        for m in args.models:
            samples[m].append(profile_once(m, args.batch, args.threads, args.warmup, args.runs))
    ops = sorted({op for runs in samples.values() for r in runs for op in r})
    print(f"onnxruntime {ort.__version__}, CPU provider, batch {args.batch}, {args.threads} thread(s), "
          f"{args.runs} timed runs after {args.warmup} warm-up, median of {args.repeats}; kernel ms per inference")
    names = [m.parent.name + "/" + m.name for m in args.models]
    print("| op type | " + " | ".join(f"{n} nodes | {n} ms | share" for n in names) + " |")
    print("|---|" + "---:|---:|---:|" * len(names))
    counts = {m: Counter(n.op_type for n in onnx.load(str(m)).graph.node) for m in args.models}
    medians = {m: {op: statistics.median(r.get(op, 0.0) for r in samples[m]) for op in ops} for m in args.models}
    totals = {m: sum(medians[m].values()) for m in args.models}
    for op in sorted(ops, key=lambda o: -medians[args.models[0]][o]):
        cells = [f"{counts[m][op]} | {medians[m][op]:.4f} | {100 * medians[m][op] / totals[m]:.1f} %" for m in args.models]
        print(f"| {op} | " + " | ".join(cells) + " |")
    print("| total | " + " | ".join(f"{sum(counts[m].values())} | {totals[m]:.4f} | 100 %" for m in args.models) + " |")


if __name__ == "__main__":
    main()
