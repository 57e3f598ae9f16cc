"""A diverged run is a failure, not a result.

A learning rate far too high sends the loss to 1e19 within an epoch, or leaves the network at
chance accuracy; an epoch loop that only keeps "the best epoch" would then hand a chance-level
model to the next stage and suggest pruning it. `Watch` sees every step's loss and every
finished epoch, and raises `Diverged` (exit 1, the run's verdict, not a usage error) naming the
epoch and the likely fix. The loop raises before it writes the diverged epoch, so `best.pt` and
`last.pt` keep the last good epoch.

The step check runs on the loss's device (`observe`) and is read by the host only at `check`:
reading a GPU tensor waits for the GPU to finish every queued kernel, so a read per step would
leave the card idle while Python launches the next one. The loop reads every few steps.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from pdd_edge.errors import FAILURE, PddError

# A step loss this many times the run's first (at least 1.0) is an explosion: healthy training of
# a classifier never grows its loss by four orders of magnitude, whatever the loss terms.
EXPLODE_FACTOR = 1e4
# Top-1 below this multiple of chance (100/classes %) counts as "at chance".
CHANCE_MARGIN = 1.2
# Epochs at chance, after the warm-up, before the run is declared stuck.
PATIENCE = 2
# Validation images per class needed before "at chance" means anything (a handful of images can
# sit at chance by luck, and a test's random images are at chance by design).
MIN_VAL_PER_CLASS = 20


class Diverged(PddError):
    """`every_rank`: seen in the all-reduced epoch record (every torchrun rank stops with it), not in
    this rank's own step loss."""

    def __init__(self, message: str, every_rank: bool) -> None:
        super().__init__(message, exit_code=FAILURE, every_rank=every_rank)


def exploded(loss: float, reference: float) -> bool:
    return not math.isfinite(loss) or loss > EXPLODE_FACTOR * max(reference, 1.0)


def below_chance(top1: float, classes: int) -> bool:
    """Top-1 (%) no better than guessing among `classes`, within CHANCE_MARGIN."""
    return top1 < CHANCE_MARGIN * 100.0 / classes


def can_judge(classes: int, val_images: int) -> bool:
    """Enough validation images for "at chance" to mean anything."""
    return classes >= 2 and val_images >= MIN_VAL_PER_CLASS * classes


def at_chance(record: Mapping[str, Any], classes: int) -> bool:
    return below_chance(record["val_top1"], classes) and below_chance(record.get("train_top1", 0.0), classes)


def stuck_at_chance(history: Sequence[Mapping[str, Any]], classes: int, warmup_epochs: int, val_images: int) -> bool:
    """The last PATIENCE epochs, all after the warm-up, were at chance on train and validation data."""
    if not can_judge(classes, val_images):
        return False
    recent = [r for r in history if r["epoch"] > warmup_epochs][-PATIENCE:]
    return len(recent) == PATIENCE and all(at_chance(r, classes) for r in recent)


def model_at_chance(best: Mapping[str, Any], classes: int, val_images: int) -> bool:
    """The chosen epoch of a finished training is at chance on validation data: a model not to hand
    on (a teacher at chance only teaches chance)."""
    return bool(best) and can_judge(classes, val_images) and below_chance(best["val_top1"], classes)


def chance_failure(title: str, best: Mapping[str, Any], classes: int, kept: str, fix: str) -> Diverged:
    """The failure of a `model_at_chance`: its numbers, what became of its files (`kept`), `fix`."""
    return Diverged(f"{title}: the model is at chance: best validation top-1 {best['val_top1']:.2f} % (epoch "
                    f"{best['epoch']}, validation loss {best.get('val_loss', float('nan')):.4g}), chance is "
                    f"{100.0 / classes:.1f} % for {classes} classes; {kept}. Likely fix: {fix}.",
                    every_rank=True)  # the chosen epoch's all-reduced validation top-1


class Watch:
    """Per-process state: the reference loss is this process's first step (after a resume, the
    first step from the last good epoch), so nothing extra has to survive in last.pt.

    `diagnose()`, when given, names a likelier cause of a run stuck at chance than the learning
    rate (distill: a teacher that is itself at chance), or returns None."""

    def __init__(self, title: str, lr: float, warmup_epochs: int, best: Path,
                 diagnose: Callable[[], str | None] | None = None) -> None:
        self.title, self.lr, self.warmup_epochs, self.best = title, lr, warmup_epochs, best
        self.diagnose = diagnose
        self.reference: float | None = None
        self.classes = 0
        self._first: torch.Tensor | None = None  # device-side state of `observe`
        self._bad_step: torch.Tensor | None = None  # the first exploded step, -1 while none
        self._bad_loss: torch.Tensor | None = None

    def step(self, loss: float, epoch: int, step: int, classes: int) -> None:
        """One step's loss as a number: observed and checked at once."""
        self.observe(torch.tensor(loss, dtype=torch.float64), step, classes)
        self.check(epoch)

    def observe(self, loss: torch.Tensor, step: int, classes: int) -> None:
        """Note whether this step's loss exploded, on the loss's device, without reading it.

        float64 like the Python floats of `exploded`, so the same losses count as exploded. The
        first step's loss is the reference: were it not finite, the run stops at that step anyway."""
        self.classes = classes
        value = loss.detach().double()
        if self._first is None:
            self._first = value.clone()
            self._bad_step = torch.full((), -1, dtype=torch.long, device=value.device)
            self._bad_loss = torch.zeros((), dtype=torch.float64, device=value.device)
        bad = ~torch.isfinite(value) | (value > EXPLODE_FACTOR * self._first.clamp_min(1.0))
        first_bad = bad & (self._bad_step < 0)  # the message names the first exploded step
        self._bad_step.masked_fill_(first_bad, step)  # a Python number: no copy to the device
        self._bad_loss = torch.where(first_bad, value, self._bad_loss)

    def check(self, epoch: int) -> None:
        """Read what `observe` noted (a host sync) and raise `Diverged` if a step exploded."""
        if self._bad_step is None:
            return
        step = int(self._bad_step)
        if step < 0:
            return
        reference = float(self._first)
        first = f" (the first step's was {reference:.3g})" if math.isfinite(reference) else ""
        what = f"the training loss reached {float(self._bad_loss):.3g} at step {step + 1}{first}"
        raise Diverged(self._message(epoch, what), every_rank=False)

    def epoch(self, history: Sequence[Mapping[str, Any]], val_images: int) -> None:
        if stuck_at_chance(history, self.classes, self.warmup_epochs, val_images):
            last = history[-1]
            raise Diverged(self._message(
                last["epoch"], f"top-1 stayed at chance ({100.0 / self.classes:.1f} % for {self.classes} classes) "
                f"for {PATIENCE} epochs after the warm-up: validation {last['val_top1']:.2f} %, "
                f"training {last.get('train_top1', 0.0):.2f} %", self.diagnose() if self.diagnose else None),
                every_rank=True)  # decided on the all-reduced epoch: every rank meets it

    def _message(self, epoch: int, what: str, fix: str | None = None) -> str:
        kept = (f"{self.best} holds the best earlier epoch" if self.best.exists() else "no checkpoint was written")
        fix = fix or f"a lower --lr (this run used {self.lr:g})"
        return f"{self.title} diverged in epoch {epoch}: {what}. Stopped without keeping that epoch ({kept}). Likely fix: {fix}."
