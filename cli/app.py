"""The `pdd-edge` Typer application. Each command lives in `cli/<command>.py` and registers itself here."""

from __future__ import annotations

import contextlib
import importlib
from typing import Annotated, Any, Iterator

import typer
from typer.core import TyperGroup

# The exceptions of the click that typer runs on (recent typers carry their own copy of click).
_click_errors = importlib.import_module(typer.BadParameter.__module__)
_HELP_WITHOUT_ARGS = getattr(_click_errors, "NoArgsIsHelpError", ())  # `pdd-edge` alone: the help, as click shows it


class OneLineUsageErrors(TyperGroup):
    """Click's usage errors (an unknown option, a missing argument, a value of the wrong type) as
    one line `error: ...` on stderr with exit code 2, like every other bad input; typer would draw
    a box of usage text around them."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:  # parses the subcommand's arguments, then runs it
        with _one_line():
            return super().invoke(ctx)


@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    try:
        yield
    except _click_errors.UsageError as exc:
        if isinstance(exc, _HELP_WITHOUT_ARGS):
            raise
        from pdd_edge.cli.shared import _escape, fail

        message = " ".join(exc.format_message().split()).rstrip(".")
        if exc.ctx is not None:
            message += f"; see {exc.ctx.command_path} --help"
        raise fail(_escape(message), 2) from None


app = typer.Typer(
    name="pdd-edge",
    cls=OneLineUsageErrors,
    help="Compress image classifiers with PDD (Pruning During Distillation) and prove they fit the device.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"pdd-edge {version('pdd-edge')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    pass


def _register() -> None:
    # Each command module adds its commands to `app`; imports stay light (no torch at import).
    from pdd_edge.cli import (  # noqa: F401
        compress,
        distill,
        evaluate,
        export,
        finetune,
        gate,
        latency_table,
        models,
        profile,
        prune,
        quantize,
        report,
        simplify,
        targets,
        train,
    )


def main() -> None:
    _register()
    app()


_register()
