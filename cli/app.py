"""The `pdd-edge` Typer application. Each command is a plain function in `cli/<command>.py`;
this module registers them (COMMANDS), so that no command module imports the application."""

from __future__ import annotations

import contextlib
import importlib
from typing import Annotated, Any, Iterator

import typer
from rich.markup import escape
from typer.core import TyperGroup

# Each command module defines its command function; imports stay light (no torch at import).
from pdd_edge.cli import (
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
from pdd_edge.cli.console import command, fail

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
        message = " ".join(exc.format_message().split()).rstrip(".")
        if exc.ctx is not None:
            message += f"; see {exc.ctx.command_path} --help"
        raise fail(escape(message), 2) from None


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


def _first_line(function) -> str:
    return (function.__doc__ or "").split("\f")[0].strip()


# (name, function, click settings) of every command, in the order `pdd-edge --help` lists them.
COMMANDS = [
    # Their docstrings go on past a \f (why they are long); the command list shows the first line.
    ("compress", compress.compress_command, {"short_help": _first_line(compress.compress_command)}),
    ("distill", distill.distill_command, {"short_help": _first_line(distill.distill_command)}),
    ("evaluate", evaluate.evaluate_command, {}),
    ("export", export.export_command, {}),
    ("finetune", finetune.finetune_command, {}),
    ("gate", gate.gate_command, {}),
    ("latency-table", latency_table.latency_table_command, {}),
    ("models", models.models_command, {}),
    # Extra arguments are let through to say what replaced `--json FILE` (before --json printed to stdout).
    ("profile", profile.profile_command, {"context_settings": {"allow_extra_args": True}}),
    ("prune", prune.prune_command, {}),
    ("quantize", quantize.quantize_command, {}),
    ("report", report.report_command, {}),
    ("simplify", simplify.simplify_command, {}),
    ("train", train.train_command, {}),
]
# `pdd-edge targets list|show`: a group of its own.
TARGETS_COMMANDS = [("list", targets.list_command), ("show", targets.show_command)]


def _register() -> None:
    for name, function, settings in COMMANDS:
        command(app, name, **settings)(function)
    targets_app = typer.Typer(help=targets.HELP, no_args_is_help=True)
    for name, function in TARGETS_COMMANDS:
        command(targets_app, name)(function)
    app.add_typer(targets_app, name="targets")


_register()


def main() -> None:
    app()
