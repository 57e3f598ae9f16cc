"""The `pdd-edge` Typer application. Each command lives in `cli/<command>.py` and registers itself here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="pdd-edge",
    help="Compress image classifiers with PDD (Pruning During Distillation) and prove they fit the device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each command module adds its commands to `app`; imports stay light (no torch at import).
    from pdd_edge.cli import (  # noqa: F401
        compress,
        distill,
        evaluate,
        export,
        finetune,
        gate,
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
