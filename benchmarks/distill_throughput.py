"""Distillation throughput (training images per second, masks on) of the real CLI: one process
versus `torchrun --nproc-per-node N`, on whatever device `--device` names.

Each configuration runs `pdd-edge distill` (ResNet20 from ResNet56 by default) for a few epochs on
`digits` or on an image folder, and reads `train_images_per_s` from the run's history.json: all
ranks' images per second of training, evaluation excluded. The first epoch is dropped (warm-up).
Configurations are run one after another, alternating, `--repeats` times; the table shows each
one's median.

    python benchmarks/distill_throughput.py --teacher-weights T.pt            # CPU: 1 vs 2 processes
    python benchmarks/distill_throughput.py --teacher-weights T.pt --device cuda --procs 1 --amp bf16,off

A teacher checkpoint is needed (`pdd-edge train --model resnet56 --out T.pt --epochs 4 --batch-size 64
--lr 0.05 --warmup-epochs 1` on digits: its accuracy does not change the speed, but a teacher at
chance makes the student's run stop as diverged).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run_once(procs: int, threads: int, amp: str, args: argparse.Namespace, out: Path) -> float:
    cli = ["-m", "pdd_edge", "distill", "--student", args.student, "--teacher", args.teacher,
           "--teacher-weights", str(args.teacher_weights), "--out", str(out), "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--device", args.device, "--amp", amp, *args.data]
    cmd = [sys.executable, *cli] if procs == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs), *cli]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    epochs = json.loads((out / "history.json").read_text())["epochs"]
    return statistics.median(e["train_images_per_s"] for e in epochs[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher-weights", type=Path, required=True)
    p.add_argument("--student", default="resnet20")
    p.add_argument("--teacher", default="resnet56")
    p.add_argument("--device", default="cpu")
    p.add_argument("--procs", default="1,2", help="process counts to compare, e.g. 1,2")
    p.add_argument("--amp", default="off", help="precisions to compare, e.g. bf16,off")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                   help="CPU cores shared among the processes (threads per process = cores / procs)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64, help="global batch")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("data", nargs="*", default=[], help="extra distill options after --, e.g. -- --dataset imagefolder --data-dir D")
    args = p.parse_args()

    configs = [(int(n), amp) for n in args.procs.split(",") for amp in args.amp.split(",")]
    results: dict[tuple[int, str], list[float]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for i, (procs, amp) in enumerate(configs):
                threads = max(1, args.cores // procs) if args.device == "cpu" else 1
                results[(procs, amp)].append(run_once(procs, threads, amp, args, Path(tmp) / f"r{r}-{i}"))
    print(f"{args.student} from {args.teacher}, masks on, global batch {args.batch_size}, device {args.device}, "
          f"{args.epochs} epochs (first dropped), median of {args.repeats}")
    print("| processes | threads each | precision | images/s | runs |")
    print("|---:|---:|---|---:|---|")
    for (procs, amp), values in results.items():
        threads = max(1, args.cores // procs) if args.device == "cpu" else "-"
        print(f"| {procs} | {threads} | {amp} | {statistics.median(values):,.0f} | "
              + ", ".join(f"{v:,.0f}" for v in values) + " |")


if __name__ == "__main__":
    main()
