"""Does the latency budget buy latency? Pure PDD, a MACs budget and latency budgets, compared.

For one student, runs `pdd-edge compress` on `digits` in one run directory (the teacher, the
unpruned baseline and the latency table are made once and reused; each variant re-runs distill
onwards), on a benchmark target with one thread and batch sizes 1 and 32:

  default   no budget option                     (the recipe's: a 1.9x speed target on the first target)
  pure      --target-macs-reduction 0            (PDD, widths as the masks leave them)
  macs50    --target-macs-reduction 0.5          (the MACs budget)
  speedup S --target-speedup S, for each S       (the latency budget; widths rounded to the
                                                  channel multiple the latency table measured)

Then every variant's deployable FP32 file and the unpruned one are timed together, interleaved
in one process, at batch 1 and 32, and it prints per variant: MACs reduction, latency reduction,
their ratio, top-1, and for latency targets the requested, predicted and measured latency and
whether the measurement is within +/- 10 % of the request.

    python benchmarks/latency_budget.py --student resnet20 --teacher resnet56 --out bench/lat-resnet20
    python benchmarks/latency_budget.py --student torchvision:mobilenet_v2 --teacher resnet56 \
        --teacher-weights bench/lat-resnet20/run/teacher/teacher.pt --out bench/lat-mobilenetv2
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

TARGET = """description = "benchmark: this machine, one thread, batch 1 and 32"
threads = 1
batch_sizes = [1, 32]
quantization = "fp32"
"""


def compress(args, run: Path, target: Path, extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "pdd_edge", "compress", "--student", args.student, "--teacher", args.teacher,
           "--target", str(target), "--no-quantize", "--out", str(run), "--distill-epochs", str(args.distill_epochs),
           "--finetune-epochs", str(args.finetune_epochs), *args.compress_args.split(), *extra]
    if args.teacher_weights:
        cmd += ["--teacher-weights", args.teacher_weights]
    if run.exists():
        cmd.append("--resume")
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--student", default="resnet20")
    ap.add_argument("--teacher", default="resnet56")
    ap.add_argument("--teacher-weights", default=None)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--distill-epochs", type=int, default=15)
    ap.add_argument("--finetune-epochs", type=int, default=10)
    ap.add_argument("--speedups", default="2.0,1.54,1.25", help="latency targets as speed-ups (50, 65, 80 %% of the unpruned latency)")
    ap.add_argument("--variants", default="pure,macs50,latency", help="which of default, pure, macs50, latency to run")
    ap.add_argument("--compress-args", default="", help="more compress options, e.g. '--model-arg mask_placement=stage'")
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds of timed runs per file and batch size in the final comparison")
    ap.add_argument("--measure-only", action="store_true", help="only the final comparison of the files in --out")
    args = ap.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "bench-1thread.toml"
    target.write_text(TARGET)
    run = args.out / "run"
    chosen = args.variants.split(",")
    if set(chosen) - {"default", "pure", "macs50", "latency"}:
        ap.error(f"unknown --variants {sorted(set(chosen) - {'default', 'pure', 'macs50', 'latency'})}: "
                 "choose among default, pure, macs50, latency")
    variants: list[tuple[str, list[str]]] = []
    if "default" in chosen:
        variants.append(("default", []))
    if "pure" in chosen:
        variants.append(("pure", ["--target-macs-reduction", "0"]))
    if "macs50" in chosen:
        variants.append(("macs50", ["--target-macs-reduction", "0.5"]))
    if "latency" in chosen:
        variants += [(f"speedup{s}", ["--target-speedup", s]) for s in args.speedups.split(",")]
    results = json.loads((args.out / "runs.json").read_text()) if args.measure_only else {}
    for name, extra in ([] if args.measure_only else variants):
        compress(args, run, target, extra)
        shutil.copyfile(run / "simplify" / "pruned.onnx", args.out / f"{name}.onnx")
        report = json.loads((run / "report" / "report-bench-1thread.json").read_text())
        results[name] = {"report": report, "prune": json.loads((run / "prune" / "pruned.json").read_text())}
        (args.out / "runs.json").write_text(json.dumps(results))
        shutil.copyfile(run / "simplify" / "baseline.onnx", args.out / "baseline.onnx")

    from pdd_edge.profiling.measure import MeasureSettings, PreparedModel, measure_models

    names = ["baseline", *results]
    data = json.loads((run / "manifest.json").read_text())["config"]["data"]
    size = data.get("input_size") or [32, 32]
    models = [PreparedModel(n, args.out / f"{n}.onnx", {b: {"input": [b, 3, *size]} for b in (1, 32)}, {"input": "float32"})
              for n in names]
    # Each file alone (as a device runs one model; interleaving six files inflated every latency by
    # about 17 % through cold caches), in three passes with the order reversed in between, median.
    passes = []
    for k in range(3):
        order = models if k % 2 == 0 else models[::-1]
        measured = measure_models(order, [1, 32], MeasureSettings(threads=1, memory=False, min_runs=50,
                                                                   min_time_s=args.min_time, sequential=True))
        passes.append({m["name"]: {b["batch_size"]: b["latency"]["p50_ms"] for b in m["batches"]} for m in measured["models"]})
    p50 = {n: {b: sorted(p[n][b] for p in passes)[1] for b in (1, 32)} for n in names}
    # MACs counted from each ONNX graph by the profile stage (conv and Gemm/MatMul multiply-accumulates)
    macs = {n: r["report"]["variants"]["pruned"]["macs"] for n, r in results.items()}
    macs["baseline"] = next(iter(results.values()))["report"]["variants"]["baseline"]["macs"]
    env = measured["environment"]
    lines = [f"# {args.student} from {args.teacher} on {data['name']}: latency / MACs reduction "
             f"(onnxruntime {env['onnxruntime']}, {env['cpu_model']}, 1 thread, p50 of each file timed alone, median of 3 passes)", "",
             "| variant | MACs red. | latency red. b1 | ratio b1 | latency red. b32 | ratio b32 | top-1 | requested ms | predicted ms | measured ms b1 | within 10 % |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    out = {"environment": env, "variants": {}}
    for n in names[1:]:
        m_red = 100 * (1 - macs[n] / macs["baseline"])
        l1 = 100 * (1 - p50[n][1] / p50["baseline"][1])
        l32 = 100 * (1 - p50[n][32] / p50["baseline"][32])
        rep = results[n]["report"]
        lat = results[n]["prune"].get("latency") or {}
        requested = lat.get("target_ms")
        hit = abs(p50[n][1] - requested) / requested <= 0.10 if requested else None
        row = {"macs_reduction_pct": m_red, "latency_reduction_b1_pct": l1, "latency_reduction_b32_pct": l32,
               "ratio_b1": l1 / m_red, "ratio_b32": l32 / m_red, "top1": rep["variants"]["pruned"]["top1"],
               "requested_ms": requested, "predicted_ms": lat.get("predicted_ms"), "measured_b1_ms": p50[n][1],
               "within_10pct": hit, "widths": {k: v["kept"] for k, v in results[n]["prune"]["layers"].items()}}
        out["variants"][n] = row
        fmt = (lambda v, f: "-" if v is None else format(v, f))
        lines.append(f"| {n} | {m_red:.1f} % | {l1:.1f} % | {l1 / m_red:.2f} | {l32:.1f} % | {l32 / m_red:.2f} | "
                     f"{row['top1']:.2f} | {fmt(requested, '.4f')} | {fmt(row['predicted_ms'], '.4f')} | {p50[n][1]:.4f} | "
                     f"{'-' if hit is None else ('yes' if hit else 'no')} |")
    lines.append(f"\nunpruned: {p50['baseline'][1]:.4f} ms at batch 1, {p50['baseline'][32]:.3f} ms at batch 32, "
                 f"{macs['baseline']:,} MACs")
    table = json.loads((run / "latency" / "table.json").read_text()) if (run / "latency" / "table.json").exists() else None
    if table:
        e = table["error"]
        lines.append(f"latency model (batch 1): channel multiple {table['channel_multiple']}, check-network error "
                     f"mean {e['check_mean_abs_pct']:.1f} %, max {e['check_max_abs_pct']:.1f} %")
    text = "\n".join(lines)
    print(text)
    (args.out / "latency_budget.md").write_text(text + "\n")
    (args.out / "latency_budget.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
