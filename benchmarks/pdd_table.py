"""The paper's table on our hardware: unpruned KD student vs PDD vs PDD with a 50 % MACs budget.

For each student/teacher pair: train the teacher (or take --teacher-weights), then
  KD        distill --no-masks for distill+finetune epochs (the unpruned student, same budget)
  PDD       distill with masks -> prune -> finetune (plain CE, the paper's choice)
  PDD-50%   distill --target-macs-reduction 0.5 -> prune -> finetune
and print top-1, MACs (multiply-accumulates, conv+linear) and params of each, beside the paper's
CIFAR-10 figures. Every stage resumes, so an interrupted run continues where it stopped.

    python benchmarks/pdd_table.py                                  # digits, both pairs
    python benchmarks/pdd_table.py --dataset cifar10 --data-dir DATA --teacher-epochs 200 \
        --distill-epochs 50 --finetune-epochs 150 --batch-size 256 --lr 0.01
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pdd_edge import checkpoint
from pdd_edge.data.options import DataConfig, NormOverride
from pdd_edge.errors import PddError
from pdd_edge.stages import distill, finetune, prune
from pdd_edge.stages import teacher as teacher_stage
from pdd_edge.zoo.masked import MaskedNetwork

PAPER = {  # Dan et al. 2024, abstract (CIFAR-10): FLOPs reduction, params removed, top-1 change
    ("resnet20", "resnet56"): (39.53, 32.77, +0.17),
    ("vgg11", "vgg16"): (74.96, 76.43, -1.34),
}


def parse_pairs(text: str) -> list[tuple[str, str]]:
    pairs = [tuple(p.split(":")) for p in text.split(",")]
    if not pairs or any(len(p) != 2 or not all(p) for p in pairs):
        raise PddError(f"--pairs wants student:teacher,..., got {text!r}")
    return pairs  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--download", action="store_true", help="fetch cifar10/cifar100 into --data-dir if missing")
    ap.add_argument("--pairs", default="resnet20:resnet56,vgg11:vgg16", help="student:teacher,...")
    ap.add_argument("--teacher-weights", default="", help="teacher=path,... (skips teacher training)")
    ap.add_argument("--teacher-mean", default=None, help="normalisation of given teacher weights, e.g. 0.485,0.456,0.406")
    ap.add_argument("--teacher-std", default=None)
    ap.add_argument("--teacher-epochs", type=int, default=15)
    ap.add_argument("--teacher-lr", type=float, default=0.05, help="0.05 with 1 warm-up epoch: deep teachers diverge at 0.1 on digits")
    ap.add_argument("--teacher-warmup", type=int, default=1)
    ap.add_argument("--distill-epochs", type=int, default=20)
    ap.add_argument("--finetune-epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--budget", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench-pdd")
    args = ap.parse_args()

    data = DataConfig(name=args.dataset, data_dir=args.data_dir, download=args.download)
    entries = [kv for kv in args.teacher_weights.split(",") if kv]
    if any("=" not in kv for kv in entries):
        raise PddError(f"--teacher-weights wants teacher=path,..., got {args.teacher_weights!r}")
    given = dict(kv.split("=", 1) for kv in entries)
    floats = (lambda s: tuple(float(v) for v in s.split(",")) if s else None)
    teacher_norm = NormOverride(mean=floats(args.teacher_mean), std=floats(args.teacher_std))
    root = Path(args.out)
    rows = []
    for student, teacher in parse_pairs(args.pairs):
        t0 = time.time()
        teacher_ckpt = given.get(teacher)
        if teacher_ckpt is None:
            teacher_ckpt = str(root / f"teacher-{teacher}.pt")
            teacher_stage.train_teacher(teacher_stage.TrainConfig(model=teacher, data=data,
                                        optim=teacher_stage.default_optim(args.teacher_epochs, batch_size=args.batch_size,
                                                                  lr=args.teacher_lr, warmup_epochs=args.teacher_warmup,
                                                                  seed=args.seed)),
                      teacher_ckpt, resume=True)
        common = dict(student=student, teacher=teacher if teacher in given else None, teacher_weights=teacher_ckpt,
                      data=data, teacher_norm=teacher_norm)
        pair_dir = root / f"{student}-{teacher}"

        kd_epochs = args.distill_epochs + args.finetune_epochs
        kd = distill.distill(distill.DistillConfig(**common, masks=False, optim=distill.default_optim(
            kd_epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)), pair_dir / "kd", resume=True)
        kd_model, kd_info = checkpoint.load(pair_dir / "kd" / "best.pt")
        kd_cost = MaskedNetwork(kd_model).dense_cost(kd_info.preprocess.input_size)
        rows.append(row(student, teacher, "KD (unpruned)", kd.best["val_top1"], kd_cost, kd_cost, kd.best["val_top1"]))

        for label, target in (("PDD", None), (f"PDD, MACs -{100 * args.budget:.0f}%", args.budget)):
            d = pair_dir / ("pdd" if target is None else f"pdd-{int(100 * args.budget)}")
            distill.distill(distill.DistillConfig(**common, target_macs_reduction=target, optim=distill.default_optim(
                args.distill_epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)), d / "distill", resume=True)
            report = prune.prune_checkpoint(prune.PruneConfig(checkpoint=str(d / "distill" / "best.pt")), d / "pruned.pt")
            ft = finetune.finetune(finetune.FinetuneConfig(checkpoint=str(d / "pruned.pt"), data=data, optim=finetune.default_optim(
                args.finetune_epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)), d / "finetune", resume=True)
            after = {"macs": report["macs_after"], "params": report["params_after"]}
            rows.append(row(student, teacher, label, ft.best["val_top1"], after, kd_cost, kd.best["val_top1"],
                            masked_top1=_masked_top1(d / "distill")))
        print(f"[{student}/{teacher}] done in {time.time() - t0:.0f}s", flush=True)

    print_table(rows, args)
    (root / "results.json").write_text(json.dumps(rows, indent=2))


def _masked_top1(folder: Path) -> float:
    """Top-1 of the masked student before pruning (pruning is exact, so also of the pruned one)."""
    return checkpoint.read(folder / "best.pt")["metrics"]["val_top1"]


def row(student, teacher, variant, top1, cost, base_cost, base_top1, masked_top1=None) -> dict:
    return {"student": student, "teacher": teacher, "variant": variant, "top1": top1, "masked_top1": masked_top1,
            "macs": cost["macs"], "params": cost["params"],
            "macs_reduction_pct": 100 * (1 - cost["macs"] / base_cost["macs"]),
            "params_reduction_pct": 100 * (1 - cost["params"] / base_cost["params"]),
            "top1_change": top1 - base_top1}


def print_table(rows: list[dict], args) -> None:
    print(f"\ndataset {args.dataset}; teacher {args.teacher_epochs} ep (lr {args.teacher_lr}), distill {args.distill_epochs} ep, finetune "
          f"{args.finetune_epochs} ep (KD baseline: {args.distill_epochs + args.finetune_epochs} ep), batch {args.batch_size}, "
          f"lr {args.lr}, seed {args.seed}. MACs = multiply-accumulates of conv+linear layers.\n")
    print("| student / teacher | variant | top-1 % | top-1 change | MACs | MACs reduction | params | params removed | paper (CIFAR-10): MACs red. / params / top-1 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        paper = PAPER.get((r["student"], r["teacher"]))
        ref = f"{paper[0]:.2f} % / {paper[1]:.2f} % / {paper[2]:+.2f}" if paper and r["variant"] == "PDD" else ""
        print(f"| {r['student']} / {r['teacher']} | {r['variant']} | {r['top1']:.2f} | {r['top1_change']:+.2f} | "
              f"{r['macs'] / 1e6:.2f} M | {r['macs_reduction_pct']:.2f} % | {r['params']:,} | {r['params_reduction_pct']:.2f} % | {ref} |")


if __name__ == "__main__":
    try:
        main()
    except PddError as e:  # bad input: one line saying what to do, as the CLI does
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
