"""The report's PNG plots (matplotlib, imported only here; absent on a bare edge install)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from pdd_edge.fileio import atomic_path

COLORS = {"baseline": "#7f7f7f", "baseline-int8": "#bcbd22", "pruned": "#1f77b4", "int8": "#d62728"}


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # no display on CI machines and boards
    import matplotlib.pyplot as plt

    return plt


def accuracy_vs_latency(variants: Mapping[str, Mapping], target: str, out: Path) -> Path:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for name, v in variants.items():
        ax.scatter(v["latency_p50_ms"], v["top1"], s=60, color=COLORS.get(name, "k"), zorder=3)
        ax.annotate(f"{name}\n{v['size_mb']:.2f} MiB", (v["latency_p50_ms"], v["top1"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    ax.set_xlabel("latency p50, batch 1 (ms)")
    ax.set_ylabel("top-1 (%), measured with onnxruntime")
    ax.set_title(f"accuracy vs latency on {target}")
    ax.grid(True, alpha=0.3)
    ax.margins(0.25)
    return _save(fig, plt, out)


def channels_per_layer(layers: Mapping[str, Mapping[str, int]], out: Path) -> Path:
    plt = _figure()
    names = list(layers)
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(names) + 2), 4), dpi=110)
    xs = range(len(names))
    ax.bar(xs, [layers[n]["total"] for n in names], color="#c7c7c7", label="before (distilled student)")
    ax.bar(xs, [layers[n]["kept"] for n in names], color="#1f77b4", label="after pruning")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([str(layers[n].get("label", n)).replace(".gate_", ":").replace("gates.", "conv") for n in names],
                       rotation=90, fontsize=7)
    ax.set_ylabel("channels")
    ax.set_title("channels kept per masked layer")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, plt, out)


def _save(fig, plt, out: Path) -> Path:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out
