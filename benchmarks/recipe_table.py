"""Summarise a recipe ablation (benchmarks/recipe_ablation.sh) as the table in docs/BENCHMARKS.md.

    python benchmarks/recipe_table.py OUT [OUT_SEED1 ...]

Reads the JSON that each step printed (`--json`) and the wall time of each step; one row per
variant and seed: MACs removed, top-1 of the deployed (pruned and fine-tuned) student, its
difference to the unpruned KD student of the same seed, and the training time of the variant
(KD student + distill + fine-tune, prune included).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

# variant -> (distill step, fine-tune step)
VARIANTS = {
    "paper (scratch, N(0,1e-3) masks, CE fine-tune)": ("paper-distill", "paper-finetune"),
    "warm start, open masks, pure PDD, CE fine-tune": ("warm-distill", "warm-finetune"),
    "warm start, open masks, pure PDD, KD fine-tune": ("warm-distill", "warm-finetune-kd"),
    "warm start, MACs target 0.5, CE fine-tune": ("warm50-distill", "warm50-finetune"),
    "warm start, MACs target 0.5, KD fine-tune": ("warm50-distill", "warm50-finetune-kd"),
    "warm start, MACs target 0.5, distill lr 0.01, CE fine-tune": ("warm50lr-distill", "warm50lr-finetune"),
    "warm start, MACs target 0.5 ramped over 3 epochs, CE fine-tune": ("warm50ramp-distill", "warm50ramp-finetune"),
}


def last_json(log: Path) -> dict | None:
    if not log.is_file():
        return None
    text = log.read_text()
    start = text.rfind("\n{")
    try:
        return json.loads(text[start + 1:] if start >= 0 else text)
    except json.JSONDecodeError:
        return None


def seconds(out: Path) -> dict[str, int]:
    times = {}
    for line in (out / "times.txt").read_text().splitlines() if (out / "times.txt").is_file() else []:
        m = re.match(r"(\S+) .*seconds=(\d+)", line)
        if m:
            times[m.group(1)] = int(m.group(2))
    return times


def rows(out: Path) -> list[str]:
    kd = last_json(out / "KD.log")
    times = seconds(out)
    if kd is None:
        return [f"| {out.name}: no KD student yet | | | | |"]
    lines = [f"| unpruned KD student ({out.name}) | 0.0 % | {kd['val_top1']:.2f} | — | {times.get('KD', 0)} s |"]
    for label, (distill, finetune) in VARIANTS.items():
        d, f = last_json(out / f"{distill}.log"), last_json(out / f"{finetune}.log")
        if d is None or f is None:
            continue
        prune = distill.replace("distill", "prune")
        wall = times.get("KD", 0) + times.get(distill, 0) + times.get(prune, 0) + times.get(finetune, 0)
        lines.append(f"| {label} | {d['macs_reduction_pct']:.1f} % | {f['val_top1']:.2f} | "
                     f"{f['val_top1'] - kd['val_top1']:+.2f} | {wall} s |")
    return lines


def main(argv: list[str]) -> int:
    print("| variant | MACs removed | top-1 % | Δ vs KD student | training time |")
    print("|---|---:|---:|---:|---:|")
    for arg in argv:
        print("\n".join(rows(Path(arg))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
