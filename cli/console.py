"""What a command shows the user: the two consoles, errors as one line, and the printers several
commands share.

stdout (`out`) carries results (tables, JSON); stderr (`err`) carries progress, warnings and
errors, so that `pdd-edge ... --json > out.json` gives a clean file.

Every command is registered through `command(app)`, which turns a `PddError` raised anywhere
below it into one line on stderr and the error's exit code (2 for bad input), a failure of the
machine (disk full, read-only file system: `errors.environment_error`) into one line with exit
code 3, and an interrupt into a short hint about `--resume` with exit code 130. Nothing else is
caught.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from pdd_edge.errors import PddError, environment_error

F = TypeVar("F", bound=Callable[..., Any])

# Piped output (CI logs, files) gets wide tables instead of rich's default of 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


def fail(message: str, exit_code: int, every_rank: bool | None = None) -> typer.Exit:
    """One error line and the exit; `every_rank` as PddError's (default: true of usage errors)."""
    rank = _rank()
    if rank == 0:
        err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    elif not (exit_code == 2 if every_rank is None else every_rank):
        # Under torchrun rank 0 speaks for all; an error every rank meets (bad input, a divergence
        # seen in the all-reduced epoch) is printed once, but a failure of this rank alone (its
        # GPU, its shard) must still be seen.
        Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH).print(
            f"[bold red]error (rank {rank}):[/] {message}", markup=True, highlight=False)
    return typer.Exit(exit_code)


def _rank() -> int:
    """This process's rank under torchrun (0 without it). Read from the environment, not from the
    training setup: errors are reported (by rank 0 alone) also before any setup is started."""
    return int(os.environ.get("RANK", "0") or 0)


def command(app: typer.Typer, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """Register `fn` as a command of `app`, reporting user errors as one line."""

    def decorate(fn: F) -> F:
        # Only commands that can continue an interrupted run may promise it.
        resumable = "resume" in inspect.signature(fn).parameters
        on_interrupt = ("interrupted: finished stages and epochs are kept; re-run with --resume" if resumable
                        else "interrupted: nothing half-written was left behind")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            try:
                return fn(*args, **kw)
            except PddError as exc:
                raise fail(escape(str(exc)), exc.exit_code, exc.every_rank) from None
            except KeyboardInterrupt:
                if _rank() == 0:  # torchrun passes Ctrl-C to every rank: one hint is enough
                    err.print(on_interrupt)
                raise typer.Exit(130) from None
            except (OSError, RuntimeError) as exc:
                env = environment_error(exc)  # disk full, read-only, no permission: exit 3
                if env is None:
                    raise  # a bug: its traceback is what gets it fixed
                raise fail(escape(str(env)), env.exit_code) from None

        app.command(name, **kwargs)(wrapper)
        return fn

    return decorate


def warn_foreign(check: dict | None) -> None:
    """The loud warning of a `device_check` (profiling/provenance.py) whose measuring machine is not
    the target's device."""
    if check and check.get("foreign"):
        err.print(f"[bold yellow]warning: {escape(check['message'])}[/]")


def size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def print_json(result) -> None:
    """A result (dict, list or dataclass) as strict JSON on stdout: NaN or inf become null."""
    from pdd_edge.fileio import json_text

    data = asdict(result) if is_dataclass(result) and not isinstance(result, type) else result
    out.print_json(json_text(data, indent=None))


def print_parity(r, reference: str) -> None:
    out.print(f"parity vs {reference} on {r.parity_images} {r.dataset} val images: max |logit difference| "
              f"{r.parity_max_abs_diff:.2e} (limit {r.tolerance_rule})")


def print_fit_summary(result, best_path: Path, json_out: bool) -> None:
    """The best epoch of `train`, `distill` or `finetune` and where its checkpoint is."""
    best = result.summary()
    summary = {"checkpoint": str(best_path), "best_epoch": best.pop("epoch", None)}
    summary |= {k: v for k, v in best.items() if k != "epochs_run"}
    if json_out:
        print_json(summary)
    else:
        line = f"best epoch {summary['best_epoch']}: val top-1 {summary['val_top1']:.2f}%"
        if "masked_macs" in summary:
            line += (f", kept {summary['kept_pct']:.1f}% of channels, masked MACs {summary['masked_macs']:,}"
                     f" (-{summary['macs_reduction_pct']:.1f}%)")
        out.print(line)
        out.print(f"checkpoint: {best_path}")
