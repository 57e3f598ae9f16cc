"""cli/console.py: the command decorator (what an interrupt promises)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("resumable", [True, False])
def test_interrupt_promises_resume_only_to_commands_that_have_it(resumable):
    import typer
    from typer.testing import CliRunner

    from pdd_edge.cli.console import command

    app = typer.Typer()

    if resumable:
        @command(app, "work")
        def work(resume: bool = False) -> None:
            raise KeyboardInterrupt
    else:
        @command(app, "work")
        def work(quick: bool = False) -> None:
            raise KeyboardInterrupt

    result = CliRunner().invoke(app, [])
    assert result.exit_code == 130
    assert ("--resume" in result.stderr) is resumable
