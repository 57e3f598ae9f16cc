"""The `pdd-edge` Typer application: one module per command group, registered here."""

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
    from pdd_edge.cli import compress, deploy, evaluate, models, profile, pruning, report, targets, training  # noqa: F401


def main() -> None:
    _register()
    app()


_register()
