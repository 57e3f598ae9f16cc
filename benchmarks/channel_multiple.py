"""Which channel counts does this device run fast? The measurement behind a target's `channel_multiple`.

Times one 3x3 convolution (c -> c channels, stride 1) at every width of a range, all widths
interleaved in one onnxruntime process (here, or on a board with --remote), and prints each
width's latency, its MACs per microsecond and the first wider width that is at least as fast.
The recommended `channel_multiple` is the smallest m of 1, 2, 4, 8, 16, 32 none of whose
multiples is dominated that way (pdd_edge/latency/multiple.py). `pdd-edge latency-table` runs
the same sweep when a target has no `channel_multiple`.

    python benchmarks/channel_multiple.py --target local --threads 1
    python benchmarks/channel_multiple.py --target rpi4 --remote pi@raspberrypi.local

Torch-free: needs numpy, onnx and onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from pdd_edge.latency.multiple import SWEEP_HW, recommend, sweep_rows, write_sweep
from pdd_edge.profiling.measure import MeasureSettings, measure_models
from pdd_edge.profiling.remote import RemoteHost
from pdd_edge.profiling.targets import load_target


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="local")
    ap.add_argument("--hw", type=int, default=SWEEP_HW, help="feature map height = width")
    ap.add_argument("--widths", default="8:64", help="FIRST:LAST channel counts, inclusive")
    ap.add_argument("--batch", type=int, default=None, help="default: the target's primary batch size")
    ap.add_argument("--threads", type=int, default=None, help="default: the target's")
    ap.add_argument("--min-runs", type=int, default=200)
    ap.add_argument("--min-time", type=float, default=5.0)
    ap.add_argument("--remote", default=None, help="USER@HOST: measure on the board over SSH")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    target = load_target(args.target)
    batch = args.batch or target.batch_sizes[0]
    threads = args.threads if args.threads is not None else target.threads
    first, last = (int(v) for v in args.widths.split(":"))
    widths = list(range(first, last + 1))
    host = RemoteHost.parse(args.remote) if args.remote else None
    with tempfile.TemporaryDirectory() as tmp:
        models = write_sweep(Path(tmp), batch, widths, args.hw)
        settings = MeasureSettings(provider=target.execution_provider, threads=threads, warmup=20,
                                   min_runs=args.min_runs, min_time_s=args.min_time, memory=False)
        result = measure_models(models, [batch], settings, host)
    rows = sweep_rows(widths, [m["batches"][0]["latency"]["p50_ms"] for m in result["models"]], batch, args.hw)
    multiple = recommend(rows)
    env = result["environment"]
    print(f"# 3x3 conv c->c at {args.hw}x{args.hw}, batch {batch}, {env['intra_op_threads']} threads, "
          f"onnxruntime {env['onnxruntime']}, {env['cpu_model']} ({env['machine']})")
    print("| width | p50 ms | MACs/us | as fast or faster at |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['width']} | {r['p50_ms']:.4f} | {r['macs_per_us']:.0f} | {r['dominated_by'] or ''} |")
    print(f"\nrecommended channel_multiple = {multiple}" if multiple else
          "\nevery multiple up to 32 has a dominated width: widen --widths")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "rows": rows, "channel_multiple": multiple}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
