"""Why does INT8 pay, or not? Static INT8 of one FP32 model in every format pdd-edge offers.

Quantizes the FP32 file (a deployable `simplify/*.onnx`, with its dataset in the metadata) as
QDQ and as QOperator, each with per-channel and per-tensor weight scales, using `pdd-edge
quantize`'s own code (same calibration images, top-1 measured with onnxruntime), then times the
FP32 file and every INT8 file alone, one thread, batch 1 and 32, in three passes (median).

    python benchmarks/int8_variants.py RUN/simplify/pruned.onnx --out bench/int8
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import onnx

from pdd_edge.profiling.measure import MeasureSettings, PreparedModel, measure_models
from pdd_edge.stages.quantize import QuantizeConfig, quantize_model

VARIANTS = {"qdq-per-channel": ("qdq", True), "qdq-per-tensor": ("qdq", False),
            "qoperator-per-channel": ("qoperator", True), "qoperator-per-tensor": ("qoperator", False)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fp32", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--min-time", type=float, default=2.0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    rows = {"fp32": {"path": args.fp32, "top1": None}}
    for name, (fmt, per_channel) in VARIANTS.items():
        path = args.out / f"{name}.onnx"
        res = quantize_model(QuantizeConfig(format=fmt, per_channel=per_channel), args.fp32, path)
        rows["fp32"]["top1"] = res.fp32_top1
        rows[name] = {"path": path, "top1": res.int8_top1}
    size = [d.dim_value for d in onnx.load(str(args.fp32)).graph.input[0].type.tensor_type.shape.dim][1:]
    models = [PreparedModel(n, r["path"], {b: {"input": [b, *size]} for b in (1, 32)}, {"input": "float32"})
              for n, r in rows.items()]
    passes = []
    for k in range(3):
        order = models if k % 2 == 0 else models[::-1]
        m = measure_models(order, [1, 32], MeasureSettings(threads=1, memory=False, min_runs=50, min_time_s=args.min_time,
                                                             sequential=True))
        passes.append({x["name"]: {b["batch_size"]: b["latency"]["p50_ms"] for b in x["batches"]} for x in m["models"]})
    env = m["environment"]
    print(f"# static INT8 variants of {args.fp32} (onnxruntime {env['onnxruntime']}, {env['cpu_model']}, 1 thread, "
          "p50 of each file alone, median of 3 passes)\n")
    print("| variant | top-1 % | size KiB | b1 ms | b1 speed-up | b32 ms | b32 speed-up | Q/DQ nodes | integer ops |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    p50 = {n: {b: sorted(p[n][b] for p in passes)[1] for b in (1, 32)} for n in rows}
    for n, r in rows.items():
        ops = Counter(node.op_type for node in onnx.load(str(r["path"])).graph.node)
        qdq = ops["QuantizeLinear"] + ops["DequantizeLinear"]
        integer = sum(v for k, v in ops.items() if k.startswith("QLinear") or k.endswith("Integer"))
        print(f"| {n} | {r['top1']:.2f} | {r['path'].stat().st_size / 1024:.0f} | {p50[n][1]:.4f} | "
              f"{p50['fp32'][1] / p50[n][1]:.2f}x | {p50[n][32]:.3f} | {p50['fp32'][32] / p50[n][32]:.2f}x | {qdq} | {integer} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
