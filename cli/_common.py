"""Shared plumbing of the CLI commands: error reporting and small option parsers.

Every command is registered through `command(app)`, which turns a `PddError` raised anywhere
below it into one line on stderr and the error's exit code (2 for bad input), and an
interrupt into a short hint about `--resume` with exit code 130. Nothing else is caught.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console

from pdd_edge.errors import PddError

F = TypeVar("F", bound=Callable[..., Any])

# stdout carries results (tables, JSON); stderr carries progress, warnings and errors, so that
# `pdd-edge ... --json > out.json` gives a clean file.
# Piped output (CI logs, files) gets wide tables instead of rich's default of 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


def fail(message: str, exit_code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(exit_code)


def command(app: typer.Typer, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """Register `fn` as a command of `app`, reporting user errors as one line."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            try:
                return fn(*args, **kw)
            except PddError as exc:
                raise fail(_escape(str(exc)), exc.exit_code) from None
            except KeyboardInterrupt:
                err.print("interrupted: finished stages and epochs are kept; re-run with --resume")
                raise typer.Exit(130) from None

        app.command(name, **kwargs)(wrapper)
        return fn

    return decorate


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def parse_floats(text: str | None, what: str, count: int | None = None) -> tuple[float, ...] | None:
    """Parse '0.485,0.456,0.406' into floats; a malformed list is a usage error."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise PddError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not values or (count is not None and len(values) != count):
        want = f"{count} " if count else ""
        raise PddError(f"{what} needs {want}comma-separated numbers, got {text!r}")
    return values


def parse_ints(text: str | None, what: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise PddError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise PddError(f"{what} needs at least one integer, got {text!r}")
    return values

