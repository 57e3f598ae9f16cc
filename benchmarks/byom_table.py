"""Bring-your-own-model rows of docs/BENCHMARKS.md from a recipe ablation run (recipe_ablation.sh).

For the unpruned KD student and each PDD variant found in OUT (paper = pure PDD from scratch,
paper50 = the same with a 50 % MACs budget, warm50ramp = the default `compress` recipe), exports
the deployed checkpoint to ONNX (with its parity check), counts MACs and params of the model,
and times every file with onnxruntime at batch 1 and one thread, interleaved round-robin in one
process by pdd-edge's profiler. Top-1 is the fine-tuned checkpoint's best validation top-1.

    STUDENT=torchvision:resnet18 ONLY="KD paper paper50 warm50ramp" bash benchmarks/recipe_ablation.sh OUT
    python benchmarks/byom_table.py OUT [--min-time 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from pdd_edge.data.options import DataConfig
from pdd_edge.stages import export

# variant -> (label, checkpoint under OUT)
VARIANTS = {
    "KD": ("unpruned KD student", "KD/best.pt"),
    "warm50ramp": ("default compress recipe (warm start, 50 % target ramped in)", "warm50ramp/ft/best.pt"),
    "paper": ("pure PDD (scratch, no MACs target)", "paper/ft/best.pt"),
    "paper50": ("PDD with a 50 % MACs budget (scratch)", "paper50/ft/best.pt"),
}


def _deploy_chain():
    spec = importlib.util.spec_from_file_location("deploy_chain", Path(__file__).with_name("deploy_chain.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--min-time", type=float, default=20.0, help="seconds of timed runs per file, at least")
    args = ap.parse_args()
    from pdd_edge import checkpoint
    from pdd_edge.zoo.masked import MaskedNetwork

    onnx_dir = args.out / "onnx"
    onnx_dir.mkdir(exist_ok=True)
    rows, paths = [], {}
    for key, (label, rel) in VARIANTS.items():
        ckpt = args.out / rel
        if not ckpt.is_file():
            continue
        path = onnx_dir / f"{key}.onnx"
        result = export.export_checkpoint(export.ExportConfig(data=DataConfig(name=None)), ckpt, path)
        model, info = checkpoint.load(ckpt)
        cost = MaskedNetwork(model).dense_cost(info.preprocess.input_size)  # equal to fvcore's count (tests/traced)
        rows.append({"variant": key, "label": label, "top1": float(info.metrics["val_top1"]), "macs": cost["macs"],
                     "params": cost["params"], "parity": result.parity_max_abs_diff})
        paths[key] = path
    latency = _deploy_chain().interleaved_latency(paths, 1, 1, warmup=20, min_runs=200, min_time_s=args.min_time)
    base = next((r for r in rows if r["variant"] == "KD"), rows[0])
    print("| variant | top-1 % | MACs | params | p50 ms (b1, 1 thread) | MACs ↓ | latency ↓ |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        p50 = latency[r["variant"]]["p50_ms"]
        b50 = latency[base["variant"]]["p50_ms"]
        print(f"| {r['label']} | {r['top1']:.2f} | {r['macs'] / 1e6:.2f} M | {r['params'] / 1e6:.2f} M | {p50:.3f} | "
              f"{100 * (1 - r['macs'] / base['macs']):.1f} % | {100 * (1 - p50 / b50):.1f} % |")
    (args.out / "byom_table.json").write_text(json.dumps({"rows": rows, "latency": latency}, indent=1))


if __name__ == "__main__":
    main()
