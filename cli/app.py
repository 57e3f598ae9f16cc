"""The `pdd-edge` Typer application. Each command lives in `cli/<command>.py` and registers itself here."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="pdd-edge",
    help="Compress image classifiers with PDD (Pruning During Distillation) and prove they fit the device.",
    no_args_is_help=True,
    add_completion=False,
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
