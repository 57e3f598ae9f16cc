"""FP32 vs simplified vs INT8 ONNX for ResNet-20, unpruned and PDD-pruned (docs/BENCHMARKS.md).

For each checkpoint the script runs the deployment chain (export -> simplify -> quantize, static
INT8) through the library's stage functions, then measures every artifact itself: file size,
top-1 on the validation split with onnxruntime, and onnxruntime latency at batch 1 and 32 with
1 and 2 threads. Within one (batch, threads) setting all six artifacts are timed interleaved by
pdd-edge's profiler (round-robin, each round starting at the next model), so that drift of the
machine (other jobs, clock changes) hits every variant alike.

    python benchmarks/deploy_chain.py --unpruned runs/r20/train.pt --pruned runs/r20/pruned.pt \\
        --work runs/deploy-bench --json runs/deploy-bench/results.json --markdown runs/deploy-bench/table.md

Run it on a quiet machine: latency percentiles from shared cores measure the neighbours.
"""

from __future__ import annotations

import argparse
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pdd_edge.data.options import DataConfig
from pdd_edge.fileio import write_json, write_text
from pdd_edge.stages import export, quantize, simplify
from pdd_edge.stages.evaluate import evaluate_onnx

SETTINGS = [(1, 1), (1, 2), (32, 1), (32, 2)]  # (batch, threads)
VARIANTS = ("fp32", "simplified", "int8")


def interleaved_latency(paths: dict[str, Path], batch: int, threads: int, *, warmup: int, min_runs: int,
                        min_time_s: float) -> dict[str, dict[str, Any]]:
    """Latency statistics of every file at one (batch, threads) setting, timed round-robin in one
    process by pdd-edge's profiler (the same code `profile` and `report` use)."""
    from pdd_edge.onnx.meta import load_onnx
    from pdd_edge.profiling.inputs import model_inputs
    from pdd_edge.profiling.measure import MeasureSettings, measure_models, prepare_model

    prepared = [prepare_model(name, p, model_inputs(load_onnx(p)), [batch], None) for name, p in paths.items()]
    settings = MeasureSettings(threads=threads, warmup=warmup, min_runs=min_runs, min_time_s=min_time_s, memory=False)
    measured = measure_models(prepared, [batch], settings)
    return {m["name"]: m["batches"][0]["latency"] for m in measured["models"]}


def run_chain(label: str, checkpoint: Path, work: Path, dataset: str) -> tuple[dict[str, Path], dict[str, Any]]:
    data = DataConfig(name=dataset)
    paths = {v: work / f"{label}.{v}.onnx" for v in VARIANTS}
    steps = {
        "export": export.export_checkpoint(export.ExportConfig(data=data), checkpoint, paths["fp32"]),
        "simplify": simplify.simplify_model(simplify.SimplifyConfig(data=data), paths["fp32"], paths["simplified"]),
        "quantize": quantize.quantize_model(quantize.QuantizeConfig(data=data), paths["simplified"], paths["int8"]),
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
    ap.add_argument("--min-runs", type=int, default=300, help="Timed runs per variant and setting, at least.")
    ap.add_argument("--min-time", type=float, default=5.0, help="Seconds of timed runs per setting, at least.")
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
        stats = interleaved_latency(paths, batch, threads, warmup=args.warmup, min_runs=args.min_runs,
                                    min_time_s=args.min_time)
        for row in rows:
            row["latency"][f"b{batch}_t{threads}"] = stats[f"{row['model']}/{row['variant']}"]

    table = markdown(rows)
    print(table)
    env = {"onnxruntime": onnxruntime.__version__, "machine": platform.machine(), "processor": platform.processor(),
           "cpu_count": os.cpu_count(), "warmup": args.warmup, "min_runs": args.min_runs, "min_time_s": args.min_time,
           "dataset": args.dataset}
    if args.json:
        write_json(args.json, {"environment": env, "chains": chains, "rows": rows})
    if args.markdown:
        write_text(args.markdown, table)


if __name__ == "__main__":
    main()
