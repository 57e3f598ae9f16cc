"""FP32 vs simplified vs INT8 ONNX for ResNet-20, unpruned and PDD-pruned (docs/BENCHMARKS.md).

For each checkpoint the script runs the deployment chain (export -> simplify -> quantize, static
INT8) through the library's stage functions, then measures every artifact itself: file size,
top-1 on the validation split with onnxruntime, and onnxruntime latency at batch 1 and 32 with
1 and 2 threads. Within one (batch, threads) setting all six artifacts are timed interleaved,
one run each per round in a shuffled order, so that drift of the machine (other jobs, clock
changes) hits every variant alike.

    python benchmarks/deploy_chain.py --unpruned runs/r20/train.pt --pruned runs/r20/pruned.pt \\
        --work runs/deploy-bench --json runs/deploy-bench/results.json --markdown runs/deploy-bench/table.md

Run it on a quiet machine: latency percentiles from shared cores measure the neighbours.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pdd_edge import onnx_eval
from pdd_edge.fileio import write_json, write_text
from pdd_edge.stages import export, quantize, simplify
from pdd_edge.stages.common import DataConfig
from pdd_edge.stages.evaluate import evaluate_onnx

SETTINGS = [(1, 1), (1, 2), (32, 1), (32, 2)]  # (batch, threads)
VARIANTS = ("fp32", "simplified", "int8")


# --- latency: a minimal interleaved timer, kept apart so that pdd-edge's latency module can
# --- replace it (same inputs: {name: ONNX path}; same output: {name: [milliseconds per run]}).
def interleaved_latency(paths: dict[str, Path], batch: int, threads: int, *, warmup: int, rounds: int,
                        seed: int = 0) -> dict[str, list[float]]:
    sessions = {name: onnx_eval.session(str(p), threads=threads) for name, p in paths.items()}
    feeds = {}
    rng = np.random.default_rng(seed)
    for name, sess in sessions.items():
        inp = sess.get_inputs()[0]
        shape = [batch, *inp.shape[1:]]  # values do not change a CNN's run time, only shapes do
        feeds[name] = {inp.name: rng.standard_normal(shape, dtype=np.float32)}
    for _ in range(warmup):
        for name, sess in sessions.items():
            sess.run(None, feeds[name])
    times: dict[str, list[float]] = {name: [] for name in sessions}
    names = list(sessions)
    for _ in range(rounds):
        for i in rng.permutation(len(names)):
            name = names[i]
            start = time.perf_counter_ns()
            sessions[name].run(None, feeds[name])
            times[name].append((time.perf_counter_ns() - start) / 1e6)
    return times
# --- end of the latency part


def run_chain(label: str, checkpoint: Path, work: Path, dataset: str) -> tuple[dict[str, Path], dict[str, Any]]:
    data = DataConfig(name=dataset)
    paths = {v: work / f"{label}.{v}.onnx" for v in VARIANTS}
    steps = {
        "export": export.run(export.ExportConfig(data=data), checkpoint, paths["fp32"]),
        "simplify": simplify.run(simplify.SimplifyConfig(data=data), paths["fp32"], paths["simplified"]),
        "quantize": quantize.run(quantize.QuantizeConfig(data=data), paths["simplified"], paths["int8"]),
    }
    return paths, {k: asdict(v) for k, v in steps.items()}


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ["model", "variant", "size", "top-1 (%)"] + [f"p50 ms b{b} t{t}" for b, t in SETTINGS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], r["variant"], f"{r['size_bytes'] / 1e6:.2f} MB", f"{r['top1']:.2f}"]
        cells += [f"{r['latency'][f'b{b}_t{t}']['p50_ms']:.3f}" for b, t in SETTINGS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unpruned", type=Path, required=True, help="ResNet-20 checkpoint (trained, unpruned).")
    ap.add_argument("--pruned", type=Path, required=True, help="PDD-pruned ResNet-20 checkpoint (`pdd-edge prune`).")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--work", type=Path, default=Path("runs/deploy-bench"), help="Folder for the ONNX files.")
    ap.add_argument("--warmup", type=int, default=20, help="Untimed runs per variant and setting.")
    ap.add_argument("--rounds", type=int, default=300, help="Timed runs per variant and setting.")
    ap.add_argument("--json", type=Path, help="Write all measurements here.")
    ap.add_argument("--markdown", type=Path, help="Write the results table here.")
    args = ap.parse_args()

    import onnxruntime

    paths: dict[str, Path] = {}
    rows: list[dict[str, Any]] = []
    chains = {}
    for label, ckpt in (("resnet20", args.unpruned), ("resnet20-pdd", args.pruned)):
        chain_paths, chains[label] = run_chain(label, ckpt, args.work, args.dataset)
        for variant, p in chain_paths.items():
            paths[f"{label}/{variant}"] = p
            accuracy = evaluate_onnx(p, DataConfig(name=args.dataset))
            rows.append({"model": label, "variant": variant, "path": str(p), "size_bytes": p.stat().st_size,
                         "top1": accuracy["top1"], "val_images": accuracy["count"], "latency": {}})

    for batch, threads in SETTINGS:
        times = interleaved_latency(paths, batch, threads, warmup=args.warmup, rounds=args.rounds)
        for row in rows:
            t = np.asarray(times[f"{row['model']}/{row['variant']}"])
            row["latency"][f"b{batch}_t{threads}"] = {
                "p50_ms": float(np.percentile(t, 50)), "p90_ms": float(np.percentile(t, 90)),
                "p99_ms": float(np.percentile(t, 99)), "runs": len(t),
            }

    table = markdown(rows)
    print(table)
    env = {"onnxruntime": onnxruntime.__version__, "machine": platform.machine(), "processor": platform.processor(),
           "cpu_count": os.cpu_count(), "warmup": args.warmup, "rounds": args.rounds, "dataset": args.dataset}
    if args.json:
        write_json(args.json, {"environment": env, "chains": chains, "rows": rows})
    if args.markdown:
        write_text(args.markdown, table)


if __name__ == "__main__":
    main()
