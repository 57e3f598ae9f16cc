"""The epoch loop shared by `train`, `distill` and `finetune`.

SGD with momentum and a step or cosine schedule; after every epoch it evaluates, keeps the checkpoint
of the best validation top-1 (`best.pt`), and writes the full training state (`last.pt`: model
with masks, optimizer, RNG, history) so that an interrupted run resumes from its
last finished epoch and ends exactly where an uninterrupted run with the same seed ends.

Data order and augmentation are drawn from (seed, epoch), and the global RNG (dropout) is
restored on resume, which is what makes resumed runs bit-identical on CPU.

`TrainSetup` says where it computes: the device (model, teacher, masks, constraint and batches live
there; checkpoints are written with CPU tensors), mixed precision for the forward passes (the
losses and the mask gates stay float32; fp16 adds a gradient scaler) and the loader workers.
Under torchrun's process group the model is wrapped in DDP, `--batch-size` is the global batch
(each of the N ranks trains on batch/N of its shard, so a run means the same at any world size),
metrics are summed across ranks, the replicas are checked to be identical after every epoch,
and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol

import torch
from torch import nn

from pdd_edge import checkpoint
from pdd_edge import locking
from pdd_edge.data.base import Dataset
from pdd_edge.data.preprocess import Preprocess
from pdd_edge.errors import PddError
from pdd_edge.fileio import all_or_nothing, check_output_dir, write_json
from pdd_edge.training.accuracy import evaluate
from pdd_edge.training.distributed import DistInfo, all_reduce_sum, dist_info, replica_spread, wrap
from pdd_edge.training.divergence import Watch
from pdd_edge.training.progress import EpochProgress
from pdd_edge.training.setup import TrainSetup
from pdd_edge.training.stepsums import StepSums


# Steps between two reads of the divergence flag on a GPU. A read waits for the queued kernels,
# so reading every step idles the GPU while the host launches the next; every 50 steps costs one
# wait per 50 (at most 50 wasted steps of a run that diverges anyway, and no epoch is written
# before the epoch-end read). On the CPU a read costs nothing: every step, as before.
SYNC_EVERY = 50


def steps_between_reads(device: torch.device) -> int:
    return 1 if device.type == "cpu" else SYNC_EVERY


class Task(Protocol):
    """One training step's computation (training/tasks.py)."""

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def to(self, device: torch.device) -> "Task": ...


SCHEDULES = ("step", "cosine")


@dataclass(frozen=True)
class OptimConfig:
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float
    milestones: tuple[int, ...]  # epochs at which lr is multiplied by gamma
    momentum: float = 0.9
    gamma: float = 0.1
    seed: int = 0
    warmup_epochs: int = 0  # linear warm-up of the lr, step by step, over the first epochs
    # "step": x gamma at each milestone (the paper's). "cosine": lr * (1 + cos(pi * t)) / 2 over the
    # run's steps, t from 0 to 1 (milestones unused). Cosine is the warm-started recipes': over a
    # short run the steps leave an epoch or two at the high lr and the rest at a tenth of it or less;
    # cosine trained both the KD student and the pruned one better (docs/BENCHMARKS.md, "A cosine schedule").
    schedule: str = "step"

    def lr_factor(self, epoch: int, progress: float = 0.0) -> float:
        """Schedule factor at `epoch` (0-based), `progress` (0 to 1) of the way through it."""
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * (epoch + progress) / self.epochs))
        return self.gamma ** sum(epoch >= m for m in self.milestones)

    def lr_at(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """The learning rate of one step. A pure function of (epoch, step): the schedule has no
        state, so a resumed run needs nothing but the epoch to continue it exactly."""
        lr = self.lr * self.lr_factor(epoch, step / steps_per_epoch)
        if epoch < self.warmup_epochs:
            lr *= (epoch * steps_per_epoch + step + 1) / (self.warmup_epochs * steps_per_epoch)
        return lr

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise PddError(f"epochs must be at least 1, got {self.epochs}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise PddError(f"learning rate must be a positive number, got {self.lr}")
        if self.batch_size < 1:
            raise PddError(f"batch size must be at least 1, got {self.batch_size}")
        if self.weight_decay < 0:
            raise PddError(f"weight decay must be >= 0, got {self.weight_decay}")
        if list(self.milestones) != sorted(self.milestones) or any(m < 1 for m in self.milestones):
            raise PddError(f"milestones must be increasing positive epochs, got {self.milestones}")
        if self.schedule not in SCHEDULES:
            raise PddError(f"unknown learning-rate schedule (--lr-schedule) {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        if self.schedule == "cosine" and self.milestones:
            raise PddError(f"milestones {self.milestones} belong to the step schedule; the cosine schedule has none "
                           "(drop --milestones, or use --lr-schedule step)")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise PddError(f"warm-up epochs must be between 0 and the number of epochs, got {self.warmup_epochs}")


def scaled_milestones(epochs: int, fractions: Iterable[float]) -> tuple[int, ...]:
    """The paper's schedule stretched to `epochs` (e.g. 20 and 40 of 50 -> 0.4 and 0.8)."""
    return tuple(sorted({max(1, round(epochs * f)) for f in fractions if round(epochs * f) < epochs}))


@dataclass(frozen=True)
class Recipe:
    """A stage's default optimiser settings; milestones are fractions of the epochs."""

    epochs: int
    lr: float
    batch_size: int
    weight_decay: float
    milestone_fractions: tuple[float, ...]

    def optim(self, epochs: int | None = None, **overrides: Any) -> OptimConfig:
        """OptimConfig for `epochs` (milestones stretched to it, for the step schedule); None-valued
        overrides are ignored."""
        n = self.epochs if epochs is None else epochs
        given = {k: v for k, v in overrides.items() if v is not None}
        cosine = given.get("schedule") == "cosine"
        base: dict[str, Any] = dict(epochs=n, lr=self.lr, batch_size=self.batch_size, weight_decay=self.weight_decay,
                                    milestones=() if cosine else scaled_milestones(n, self.milestone_fractions))
        base.update(given)
        return OptimConfig(**base)


@dataclass(frozen=True)
class TrainFiles:
    best: Path  # self-describing checkpoint of the best validation epoch
    last: Path  # resume state after the last finished epoch
    history: Path  # per-epoch records (JSON)
    lock: Path  # held while a training writes the files above (pdd_edge.locking)

    NAMES = ("best.pt", "last.pt", "history.json")  # in a run folder

    @classmethod
    def in_dir(cls, folder: str | Path) -> "TrainFiles":
        d = Path(folder)
        return cls(*(d / name for name in cls.NAMES), locking.folder_lock(d))

    @property
    def output(self) -> Path:
        """What the command line named: the run folder, or the checkpoint of `beside`."""
        return self.best.parent if self.lock.name == locking.FOLDER_LOCK else self.best

    @classmethod
    def check_dir(cls, folder: str | Path, *inputs: str | Path | None) -> None:
        """Before any work: `folder` can hold a run, and writing it overwrites none of `inputs`."""
        check_output_dir(folder, *inputs, writes=cls.NAMES)

    @classmethod
    def beside(cls, path: str | Path) -> "TrainFiles":
        p = Path(path)
        stem = p.name[: -len(p.suffix)] if p.suffix else p.name
        return cls(p, p.with_name(f"{stem}.last.pt"), p.with_name(f"{stem}.history.json"), locking.file_lock(p))


# The numbers of an epoch record that describe the chosen checkpoint: the epoch, its accuracy and,
# for masked students, the masked network's size (see zoo.masked.MaskedNetwork.stats).
SUMMARY_KEYS = ("epoch", "val_top1", "val_top5", "kept_pct", "masked_macs", "masked_params", "macs_reduction_pct",
                "latency_pred_ms", "latency_reduction_pct")


def summary(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in SUMMARY_KEYS if k in record}


@dataclass
class FitResult:
    best: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int = 0

    def summary(self) -> dict[str, Any]:
        """The best epoch's summary numbers, and how many epochs the run has."""
        return summary(self.best) | {"epochs_run": len(self.history)}


@dataclass
class Fit:
    """One training run. `epoch_stats(model)` adds per-epoch numbers (kept channels, masked MACs);
    `make_checkpoint(model, record)` returns the self-describing checkpoint dict for `best.pt`."""

    title: str
    model: nn.Module
    task: Task
    data: Dataset
    cfg: OptimConfig
    files: TrainFiles
    make_checkpoint: Callable[[nn.Module, Mapping[str, Any]], dict[str, Any]]
    preprocess: Preprocess
    config_hash: str
    epoch_stats: Callable[[nn.Module], dict[str, Any]] | None = None
    # Ranks epoch records for "best": the largest key wins (default: validation top-1).
    selection_key: Callable[[Mapping[str, Any]], tuple] | None = None
    # Objects with state_dict()/load_state_dict() that must survive a resume (e.g. the constraint's
    # integral term); those with on_epoch_start(epoch, lr, base_lr) also hear of every new epoch.
    extra_state: dict[str, Any] = field(default_factory=dict)
    # True: continue from last.pt (an error if it was written with other options); "auto": continue
    # when last.pt matches these options and start over otherwise (what the pipeline wants).
    resume: bool | str = False
    eval_batch_size: int = 500
    notes: list[str] = field(default_factory=list)  # printed once before the first epoch
    setup: TrainSetup = field(default_factory=TrainSetup)  # device, precision, workers (not part of the config hash)
    # A likelier cause than the lr of a run stuck at chance, or None (training.divergence.Watch).
    diagnose: Callable[[], str | None] | None = None

    def _key(self, record: Mapping[str, Any]) -> tuple:
        return self.selection_key(record) if self.selection_key else (record["val_top1"],)

    def run(self) -> FitResult:
        # One process writes these files at a time (rank 0 for all under torchrun). resume="auto" is
        # compress's (its stages, the teacher cache), which holds the whole run folder or cache entry.
        own_lock = dist_info().is_main and self.resume != "auto"
        with (locking.hold(self.files.lock, str(self.files.output), fix=", or choose another --out") if own_lock
              else contextlib.nullcontext()):
            return self._run()

    def _run(self) -> FitResult:
        info = dist_info()
        cfg = self.cfg
        setup = self.setup
        rank_batch = setup.rank_batch(cfg.batch_size)
        model, optimizer, scaler = self._place()
        history: list[dict[str, Any]] = []
        best: dict[str, Any] = {}
        start = 0
        if self.resume and self.files.last.exists():
            start, history, best = self._restore(model, optimizer, scaler)
        ddp_model = wrap(model, info, setup.device, setup.sync_bn)
        watch = Watch(self.title, cfg.lr, cfg.warmup_epochs, self.files.best, self.diagnose)
        n_batches = math.ceil(math.ceil(len(self.data.train) / info.world) / rank_batch)
        task = setup.compiled(self.task)  # once: a compiled step is reused by every epoch

        with EpochProgress(self.title, cfg.epochs, enabled=info.is_main) as progress:
            progress.note(f"{self.title}: training on {setup.describe()}")
            for text in self.notes:
                progress.note(text)
            if start:
                progress.note(f"resuming {self.title} after epoch {start}/{cfg.epochs} from {self.files.last}")
            for epoch in range(start, cfg.epochs):
                t0 = time.perf_counter()
                progress.begin_epoch(epoch + 1, n_batches)
                for obj in self.extra_state.values():
                    if hasattr(obj, "on_epoch_start"):
                        obj.on_epoch_start(epoch, cfg.lr * cfg.lr_factor(epoch), cfg.lr)
                train_stats = self._train_epoch(ddp_model, optimizer, scaler, epoch, info, progress, n_batches, watch,
                                                rank_batch, task)
                record = self._epoch_record(model, epoch, train_stats, info, t0)
                record["best"] = not best or self._key(record) > self._key(best)
                if record["best"]:
                    best = {k: v for k, v in record.items() if k != "best"}
                history.append(record)
                watch.epoch(history, len(self.data.val))  # raises before this epoch is written if the run is stuck at chance
                if info.is_main:
                    self._write_epoch(model, optimizer, scaler, epoch, history, best)
                progress.end_epoch(record)
        return FitResult(best=best, history=history, resumed_from=start)

    def _place(self) -> tuple[nn.Module, torch.optim.Optimizer, torch.amp.GradScaler]:
        """The model (and a teacher the task holds) on the setup's device, its optimizer and grad scaler."""
        setup = self.setup
        model = setup.place(self.model)
        self.task.to(setup.device)
        if isinstance(getattr(self.task, "teacher", None), nn.Module):
            setup.place(self.task.teacher)  # --channels-last: the teacher's convolutions too
        optimizer = torch.optim.SGD(model.parameters(), lr=self.cfg.lr, momentum=self.cfg.momentum,
                                    weight_decay=self.cfg.weight_decay, **setup.sgd_options())
        return model, optimizer, setup.grad_scaler()

    def _epoch_record(self, model: nn.Module, epoch: int, train_stats: dict[str, float], info: DistInfo,
                      t0: float) -> dict[str, Any]:
        """The history record of a trained epoch: its lr, training numbers, validation, the replica
        check under torchrun, `epoch_stats` and the seconds it took (its "best" flag is added later)."""
        cfg, setup = self.cfg, self.setup
        lr = cfg.lr * cfg.lr_factor(epoch)
        val = evaluate(model, self.data.val, self.preprocess, batch_size=self.eval_batch_size, info=info,
                       device=setup.device, workers=setup.workers)
        record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, **train_stats,
                                  "val_top1": val["top1"], "val_top5": val["top5"], "val_loss": val["loss"]}
        if info.enabled:
            record |= {"world_size": info.world, "replica_spread": self._check_replicas(model, info, epoch + 1)}
        if self.epoch_stats is not None:
            record.update(self.epoch_stats(model))
        record["seconds"] = time.perf_counter() - t0
        return record

    def _write_epoch(self, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                     epoch: int, history: list[dict[str, Any]], best: dict[str, Any]) -> None:
        """best.pt (when this epoch is the best), last.pt and the history, together or not at all.

        A write that fails (disk full) leaves the previous epoch's consistent set, never a best.pt
        without its last.pt. Renamed best.pt first: a crash between renames re-runs this epoch,
        which rewrites both."""
        with all_or_nothing():
            if history[-1]["best"]:
                checkpoint.save(self.files.best, self.make_checkpoint(model, best))
            self._save_state(model, optimizer, scaler, epoch + 1, history, best)
            write_json(self.files.history, {"title": self.title, "config_hash": self.config_hash, "epochs": history})

    def _check_replicas(self, model: nn.Module, info: DistInfo, epoch: int) -> float:
        spread = replica_spread(model, info)
        if spread > 0:
            raise PddError(f"{self.title}: after epoch {epoch} the {info.world} processes hold different weights "
                           f"(max difference {spread:.3g}); DDP should prevent this, please report it")
        return spread

    def _train_epoch(self, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                     epoch: int, info: DistInfo, progress, n_batches: int, watch: Watch,
                     rank_batch: int, task: Task) -> dict[str, float]:
        model.train()
        setup = self.setup
        sums = StepSums()
        read_every = steps_between_reads(setup.device)
        t0 = time.perf_counter()
        batches = self.data.train.batches(rank_batch, shuffle=True, augment=self.data.augment,
                                          seed=self.cfg.seed, epoch=epoch, rank=info.rank, world=info.world,
                                          device=setup.device, workers=setup.workers)
        for step, (x, y) in enumerate(batches):
            for group in optimizer.param_groups:
                group["lr"] = self.cfg.lr_at(epoch, step, n_batches)
            with setup.autocast():
                out = task(model, setup.batch(x), y)
            loss = out["loss"]
            watch.observe(loss, step, out["output"].shape[-1])  # NaN, inf or exploding: noted on the device
            read = (step + 1) % read_every == 0
            if read:
                watch.check(epoch + 1)  # stops before this step's update
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # fp16: scaled against underflow; otherwise the loss as it is
            scaler.step(optimizer)
            scaler.update()
            sums.add(out, y)
            progress.step(float(loss.detach()) if read else None)
        watch.check(epoch + 1)  # before the epoch can be written
        seconds = time.perf_counter() - t0
        keys, local = sums.totals()
        totals = all_reduce_sum(local, info).tolist()
        n_total = max(totals[-1], 1.0)
        stats = {k: totals[i] / n_total for i, k in enumerate(keys)}
        stats["train_top1"] = 100.0 * totals[-2] / n_total
        # images of all ranks per second of this rank's training (the ranks run in lock step)
        stats["train_images_per_s"] = totals[-1] / seconds if seconds > 0 else float("nan")
        return stats

    def _save_state(self, model, optimizer, scaler, epochs_done: int, history, best) -> None:
        device = self.setup.device
        state = {
            "kind": "pdd-edge.train-state",
            "config_hash": self.config_hash,
            "epoch": epochs_done,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            # the dropout stream of a GPU run; a resume on another device cannot continue it
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "grad_scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "extra_state": {k: v.state_dict() for k, v in self.extra_state.items()},
            "history": history,
            "best": best,
        }
        checkpoint.save(self.files.last, state)

    def _restore(self, model, optimizer, scaler) -> tuple[int, list, dict]:
        state = checkpoint.read(self.files.last, "training state")
        if not isinstance(state, dict) or state.get("kind") != "pdd-edge.train-state":
            raise PddError(f"{self.files.last} is not a pdd-edge training state; delete it or drop --resume")
        if state.get("config_hash") != self.config_hash:
            if self.resume == "auto":
                return 0, [], {}
            raise PddError(
                f"{self.files.last} was written with different options; re-run with the same options, "
                "or without --resume to start over"
            )
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise PddError(f"{self.files.last} does not match this model ({exc}); drop --resume to start over") from None
        torch.set_rng_state(state["torch_rng"])
        device = self.setup.device
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        if scaler.is_enabled() and state.get("grad_scaler"):
            scaler.load_state_dict(state["grad_scaler"])
        for k, obj in self.extra_state.items():
            obj.load_state_dict(state["extra_state"][k])
        if state["best"] and not self.files.best.exists():
            raise PddError(f"{self.files.best} is missing although {self.files.last} exists; drop --resume to start over")
        return int(state["epoch"]), list(state["history"]), dict(state["best"])
