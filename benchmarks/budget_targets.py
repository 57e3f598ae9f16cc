"""Where `distill --target-macs-reduction R` lands, for several R, on digits.

Trains one teacher (cached in --out), then distills a ResNet20 student with each budget and
prints, per epoch, val top-1 and the masked network's MACs reduction, and for the selected
(best) checkpoint the pruned model's MACs reduction (fvcore, after `prune`).

    python benchmarks/budget_targets.py [--targets 0.3,0.5,0.7 --epochs 10]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pdd_edge.data.options import DataConfig
from pdd_edge.stages import distill, prune
from pdd_edge.stages import teacher as teacher_stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="0.3,0.5,0.7")
    ap.add_argument("--student", default="resnet20")
    ap.add_argument("--teacher", default="resnet20")
    ap.add_argument("--teacher-epochs", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--out", default="runs/bench-budget")
    args = ap.parse_args()

    root = Path(args.out)
    data = DataConfig("digits")
    teacher = root / f"teacher-{args.teacher}.pt"
    teacher_stage.train_teacher(teacher_stage.TrainConfig(model=args.teacher, data=data, optim=teacher_stage.default_optim(
        args.teacher_epochs, batch_size=args.batch_size, lr=args.lr, warmup_epochs=1)), teacher, resume=True)
    rows = []
    for r in (float(t) for t in args.targets.split(",")):
        folder = root / f"budget-{r:g}"
        res = distill.distill(distill.DistillConfig(student=args.student, teacher_weights=str(teacher), data=data,
                                                target_macs_reduction=r, optim=distill.default_optim(
                                                    args.epochs, batch_size=args.batch_size, lr=args.lr)),
                          folder, resume=True)
        report = prune.prune_checkpoint(prune.PruneConfig(checkpoint=str(folder / "best.pt")), folder / "pruned.pt")
        trajectory = "  ".join(f"{h['epoch']}:{h['macs_reduction_pct']:.1f}%/{h['val_top1']:.0f}" for h in res.history)
        rows.append((r, res.best["epoch"], res.best["val_top1"], report["macs_reduction_pct"], trajectory))

    print(f"\nstudent {args.student}, teacher {args.teacher} ({args.teacher_epochs} ep), distill {args.epochs} ep, "
          f"batch {args.batch_size}, lr {args.lr}; MACs = multiply-accumulates of conv+linear layers\n")
    print("| target MACs reduction | selected epoch | val top-1 % (masked = pruned) | pruned MACs reduction (fvcore) | off target |")
    print("|---:|---:|---:|---:|---:|")
    for r, epoch, top1, red, _ in rows:
        print(f"| {100 * r:.0f} % | {epoch} | {top1:.2f} | {red:.2f} % | {red - 100 * r:+.2f} pts |")
    print("\nper-epoch trajectory (epoch: masked MACs reduction / val top-1):")
    for r, *_, trajectory in rows:
        print(f"- R = {r:g}: {trajectory}")


if __name__ == "__main__":
    main()
