"""Distillation throughput with PDD masks vs the same KD loop without masks.

Measures full training steps (teacher forward, student forward + backward, SGD step) on real
`digits` batches. Variants are interleaved step by step in one process so that machine drift
cannot favour one of them; the median step time of each gives its throughput.

    python benchmarks/mask_overhead.py [--student resnet20 --teacher resnet56 --batch-size 256 --steps 30]

Any model spec works as --student (e.g. torchvision:mobilenet_v2); a traced student adds the
bare network without pdd-edge's input-gate hooks as a third variant.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from pdd_edge import zoo
from pdd_edge.data import load_dataset
from pdd_edge.training.tasks import DistillTask
from pdd_edge.zoo.masked import MaskedNetwork


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--student", default="resnet20")
    ap.add_argument("--teacher", default="resnet56")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per variant (after 3 warm-up steps)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    data = load_dataset("digits")
    pre = data.preprocess
    torch.manual_seed(0)
    teacher = zoo.build(args.teacher).eval()
    students = {"KD without masks": zoo.build(args.student), "KD with PDD masks": zoo.build(args.student)}
    students["KD with PDD masks"].load_state_dict(students["KD without masks"].state_dict())
    MaskedNetwork.attach(students["KD with PDD masks"])
    if not zoo.is_zoo(args.student):
        # A traced model's input gates are forward pre-hooks that do nothing without masks; the bare
        # network (no wrapper, no hooks) shows what they cost.
        import copy

        from pdd_edge.zoo.traced import remove_gates

        bare = copy.deepcopy(students["KD without masks"].net)
        remove_gates(bare)
        students = {"bare network (no pdd-edge hooks)": bare, **students}
    task = DistillTask(teacher, pre, pre)
    optims = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-3) for k, m in students.items()}
    x, y = next(data.train.batches(args.batch_size, shuffle=True, augment=data.augment, seed=0, epoch=0))

    def step(name: str) -> float:
        model, opt = students[name], optims[name]
        model.train()
        t0 = time.perf_counter()
        loss = task(model, x, y)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {k: [] for k in students}
    for i in range(args.steps + 3):
        for name in (list(students) if i % 2 == 0 else list(reversed(students))):  # alternate the order too
            dt = step(name)
            if i >= 3:
                times[name].append(dt)

    base = statistics.median(times["KD without masks"])
    print(f"student {args.student}, teacher {args.teacher}, batch {len(y)}, {args.steps} interleaved steps per variant, "
          f"{args.threads} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print()
    print("| variant | median step (ms) | p90 step (ms) | images/s | step time vs no masks |")
    print("|---|---:|---:|---:|---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        p90 = sorted(ts)[int(0.9 * (len(ts) - 1))]
        print(f"| {name} | {1000 * med:.1f} | {1000 * p90:.1f} | {len(y) / med:.0f} | {100 * (med / base - 1):+.1f} % |")


if __name__ == "__main__":
    main()
