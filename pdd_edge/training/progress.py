"""Progress display of training: a rich bar per epoch and one summary line per finished epoch.

Everything goes to stderr, so stdout stays clean for results (`--json`).
"""

from __future__ import annotations

from typing import Any, Mapping

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def format_macs(macs: float) -> str:
    return f"{macs / 1e6:.2f}M"


def epoch_line(rec: Mapping[str, Any], epochs: int) -> str:
    parts = [f"epoch {rec['epoch']}/{epochs}", f"loss {rec['loss']:.4f}"]
    for key in ("ce", "kd"):
        if key in rec:
            parts.append(f"{key} {rec[key]:.4f}")
    if "lambda" in rec:
        parts.append(f"budget λ {rec['lambda']:+.3f}")
    parts.append(f"val top-1 {rec['val_top1']:.2f}%")
    if "kept_pct" in rec:
        parts.append(f"kept {rec['kept_pct']:.1f}%")
    if "masked_macs" in rec:
        parts.append(f"masked MACs {format_macs(rec['masked_macs'])} (-{rec['macs_reduction_pct']:.1f}%)")
    if "latency_pred_ms" in rec:
        parts.append(f"predicted {rec['latency_pred_ms']:.3f} ms (-{rec['latency_reduction_pct']:.1f}%)")
    parts.append(f"lr {rec['lr']:.3g}")
    if "train_images_per_s" in rec:
        parts.append(f"{rec['train_images_per_s']:.0f} img/s")
    parts.append(f"{rec['seconds']:.1f}s")
    if rec.get("best"):
        parts.append("*best*")
    return "  ".join(parts)


class EpochProgress:
    """Rich progress for one training run; `enabled=False` (non-zero DDP ranks) prints nothing."""

    def __init__(self, title: str, epochs: int, *, enabled: bool = True, console: Console | None = None) -> None:
        self.title = title
        self.epochs = epochs
        self.enabled = enabled
        self.console = console or Console(stderr=True, highlight=False)
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> "EpochProgress":
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
                disable=not self.console.is_terminal,  # no bar redraws in CI logs; epoch lines still print
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text)

    def begin_epoch(self, epoch: int, batches: int) -> None:
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(f"{self.title} {epoch}/{self.epochs}", total=batches, status="")

    def step(self, loss: float | None) -> None:
        """One more batch; `loss` (None: not read this step) replaces the one shown."""
        if self._progress is not None:
            status = {} if loss is None else {"status": f"loss {loss:.4f}"}
            self._progress.update(self._task, advance=1, **status)

    def end_epoch(self, record: Mapping[str, Any]) -> None:
        if self.enabled:
            # One line per epoch whatever the width: a CI log or a file must not get `*best*` on a line of its own.
            self.console.print(epoch_line(record, self.epochs), soft_wrap=True)
