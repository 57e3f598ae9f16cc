"""Distillation throughput (training images per second, masks on) of the real CLI: one process
versus `torchrun --nproc-per-node N`, precisions and the opt-in fast paths of the training step,
on whatever device `--device` names.

Each configuration runs `pdd-edge distill` (ResNet20 from ResNet56 by default) for a few epochs on
`digits` or on an image folder, and reads `train_images_per_s` from the run's history.json: all
ranks' images per second of training, evaluation excluded. The first epoch is dropped (warm-up).
Configurations are run one after another, alternating, `--repeats` times; the table shows each
one's median.

    python benchmarks/distill_throughput.py --teacher-weights T.pt            # CPU: 1 vs 2 processes
    python benchmarks/distill_throughput.py --teacher-weights T.pt --device cuda --procs 1 --amp bf16,off

`--fast` compares the opt-in speed-ups of issue 25 (each name is a set of CLI options, FAST_MODES):

    python benchmarks/distill_throughput.py --teacher-weights T.pt --device cuda --procs 1 --amp bf16,off \
        --batch-size 256 --fast default,channels-last,fused-sgd,compile,cudagraphs,all

`--stream N` measures instead how fast a streamed image folder feeds a 224x224 MobileNetV2 student
(masks on, supervised: no teacher, the feed is what is measured): N generated JPEGs in a temporary
folder, read through the streamed (DataLoader) path whatever their size (in-process, since the CLI
streams only folders over 2 GiB), decoded with PIL in the workers on the CPU and with
torchvision's decode_jpeg on CUDA. It needs no teacher:

    python benchmarks/distill_throughput.py --stream 20000 --device cuda --procs 1 --amp bf16 --batch-size 256

A teacher checkpoint is needed otherwise (`pdd-edge train --model resnet56 --out T.pt --epochs 4 --batch-size 64
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

# --fast NAME: the training options it adds (default: none of them).
FAST_MODES = {
    "default": [],
    "channels-last": ["--channels-last"],
    "fused-sgd": ["--fused-sgd"],
    "compile": ["--compile", "on"],
    "cudagraphs": ["--compile", "cudagraphs"],
    "all": ["--channels-last", "--fused-sgd", "--compile", "cudagraphs"],
}


def run_once(procs: int, threads: int, amp: str, fast: str, args: argparse.Namespace, out: Path) -> float:
    if args.stream:
        return stream_once(threads, amp, fast, args, out)
    cli = ["-m", "pdd_edge", "distill", "--student", args.student, "--teacher", args.teacher,
           "--teacher-weights", str(args.teacher_weights), "--out", str(out), "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--device", args.device, "--amp", amp, *FAST_MODES[fast], *args.data]
    cmd = [sys.executable, *cli] if procs == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs), *cli]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    epochs = json.loads((out / "history.json").read_text())["epochs"]
    return statistics.median(e["train_images_per_s"] for e in epochs[1:])


def make_jpeg_folder(root: Path, images: int, side: int = 256) -> Path:
    """`images` random smooth JPEGs (side x side, two classes) in train/ and 10 per class in val/
    (too few for the at-chance check: random labels are at chance by design)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for split, n in (("train", images), ("val", 20)):
        for i in range(n):
            folder = root / split / f"c{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            noise = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            image = Image.fromarray(base // 2 + noise // 2).resize((side, side), Image.BILINEAR)
            image.save(folder / f"{i}.jpg", quality=90)
    return root


def stream_once(threads: int, amp: str, fast: str, args: argparse.Namespace, out: Path) -> float:
    """One in-process training run of a masked MobileNetV2 at 224x224 on the streamed folder."""
    import torch

    from pdd_edge import checkpoint
    from pdd_edge import zoo
    from pdd_edge.data.imagefolder import load_imagefolder
    from pdd_edge.training.loop import Fit, OptimConfig, TrainFiles
    from pdd_edge.training.setup import TrainSetup
    from pdd_edge.training.tasks import SupervisedTask
    from pdd_edge.zoo.masked import MaskedNetwork

    torch.set_num_threads(threads)
    options = FAST_MODES[fast]
    data = load_imagefolder(args.stream_dir, input_size=224, memory_limit=0)  # 0: always streamed
    model = zoo.build("torchvision:mobilenet_v2", num_classes=len(data.classes))
    MaskedNetwork.attach(model)
    compile_mode = options[options.index("--compile") + 1] if "--compile" in options else "off"
    setup = TrainSetup.from_options(args.device, amp, args.workers, channels_last="--channels-last" in options,
                              fused_sgd="--fused-sgd" in options, compile=compile_mode)
    cfg = OptimConfig(epochs=args.epochs, lr=0.01, batch_size=args.batch_size, weight_decay=5e-4, milestones=())

    def make_checkpoint(m, best):
        return checkpoint.checkpoint_dict(m, model_name="torchvision:mobilenet_v2", preprocess=data.preprocess)

    out.mkdir(parents=True)
    result = Fit("stream", model, SupervisedTask(data.preprocess), data, cfg, TrainFiles.in_dir(out), make_checkpoint,
                 data.preprocess, config_hash="bench", setup=setup).run()
    return statistics.median(e["train_images_per_s"] for e in result.history[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher-weights", type=Path, help="the teacher checkpoint (not with --stream)")
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
    p.add_argument("--fast", default="default", help=f"fast paths to compare, of {', '.join(FAST_MODES)}")
    p.add_argument("--stream", type=int, default=0, metavar="N",
                   help="instead: a 224x224 MobileNetV2 fed from a streamed folder of N generated JPEGs (one process)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers of --stream (default: min(4, cores))")
    p.add_argument("data", nargs="*", default=[], help="extra distill options after --, e.g. -- --dataset imagefolder --data-dir D")
    args = p.parse_args()

    unknown = set(args.fast.split(",")) - set(FAST_MODES)
    if unknown:
        p.error(f"--fast: unknown {', '.join(sorted(unknown))}; choose from {', '.join(FAST_MODES)}")
    if not args.stream and args.teacher_weights is None:
        p.error("--teacher-weights is needed (or --stream N, which trains without a teacher)")
    if args.stream:
        args.procs = "1"  # in-process
    configs = [(int(n), amp, fast) for n in args.procs.split(",") for amp in args.amp.split(",")
               for fast in args.fast.split(",")]
    results: dict[tuple[int, str, str], list[float]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        if args.stream:
            args.stream_dir = make_jpeg_folder(Path(tmp) / "jpegs", args.stream)
        for r in range(args.repeats):
            for i, (procs, amp, fast) in enumerate(configs):
                threads = max(1, args.cores // procs) if args.device == "cpu" else 1
                results[(procs, amp, fast)].append(run_once(procs, threads, amp, fast, args, Path(tmp) / f"r{r}-{i}"))
    what = (f"torchvision:mobilenet_v2 at 224x224 from a streamed folder of {args.stream} JPEGs (supervised)"
            if args.stream else f"{args.student} from {args.teacher}")
    print(f"{what}, masks on, global batch {args.batch_size}, device {args.device}, "
          f"{args.epochs} epochs (first dropped), median of {args.repeats}")
    print("| processes | threads each | precision | fast path | images/s | runs |")
    print("|---:|---:|---|---|---:|---|")
    for (procs, amp, fast), values in results.items():
        threads = max(1, args.cores // procs) if args.device == "cpu" else "-"
        print(f"| {procs} | {threads} | {amp} | {fast} | {statistics.median(values):,.0f} | "
              + ", ".join(f"{v:,.0f}" for v in values) + " |")


if __name__ == "__main__":
    main()
