"""`pdd-edge targets list|show`: the device targets a model can be profiled and gated against."""

from __future__ import annotations

from typing import Annotated

import typer
from pdd_edge.cli import options
from pdd_edge.cli.console import out, print_json
from rich.table import Table

# The help of the `targets` group, which app.py makes of `list_command` and `show_command`.
HELP = "Device targets: built-in TOML descriptions, or your own .toml file."


def list_command(*, json_out: options.Json = False) -> None:
    """List the built-in targets."""
    from pdd_edge.profiling.targets import builtin_names, load_target

    targets = [load_target(name) for name in builtin_names()]
    if json_out:
        print_json([t.to_dict() for t in targets])
        return
    table = Table(title="built-in targets (`pdd-edge targets show NAME` for all budgets)")
    table.add_column("name", no_wrap=True, min_width=max(len(t.name) for t in targets))
    table.add_column("cpu")
    table.add_column("threads")
    table.add_column("batch")
    table.add_column("quantization", no_wrap=True)
    table.add_column("p90 budget", justify="right")
    for t in targets:
        p90 = t.budget.get("latency_p90_ms")
        table.add_row(t.name, t.cpu or "this machine", str(t.threads) if t.threads else "all CPUs",
                      ",".join(map(str, t.batch_sizes)), t.quantization, f"{p90:g} ms" if p90 is not None else "-")
    out.print(table)


def show_command(
    target: Annotated[str, typer.Argument(help="A built-in target name or a path to a .toml file.")],
    *,
    json_out: options.Json = False,
) -> None:
    """Show one target with its budget."""
    from pdd_edge.profiling.targets import BUDGET_KEYS, load_target

    t = load_target(target)
    if json_out:
        print_json(t.to_dict())
        return
    table = Table(title=f"target {t.name} ({t.source})", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    shape = "x".join(map(str, t.input_shape)) if t.input_shape else "from the model"
    device = ", ".join(x for x in (t.arch, f"CPU matching {t.cpu_match!r}" if t.cpu_match else "",
                                   f"{t.cores} CPUs" if t.cores else "") if x) or "any (not declared)"
    for key, value in (("description", t.description), ("cpu", t.cpu or "-"),
                       ("measured on", device),
                       ("execution provider", t.execution_provider),
                       ("threads", str(t.threads) if t.threads else "all CPUs available"),
                       ("batch sizes", ", ".join(map(str, t.batch_sizes))), ("input shape", shape),
                       ("quantization", t.quantization),
                       ("channel multiple", str(t.channel_multiple) if t.channel_multiple else "not measured (no rounding)")):
        table.add_row(key, value)
    for key, value in t.budget.items():
        table.add_row(f"budget.{key}", f"{value:g}  ({BUDGET_KEYS[key]})")
    if not t.budget:
        table.add_row("budget", "none")
    out.print(table)
