"""`pdd-edge models`: the zoo with parameter and MAC counts, or what PDD finds in one model spec."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from pdd_edge.cli import options
from pdd_edge.cli.console import out, print_json
from rich.markup import escape
from rich.table import Table

SPECS_HELP = """Besides the zoo, every --student/--teacher/--model takes:
  torchvision:NAME        a classification builder of torchvision.models (e.g. torchvision:mobilenet_v2)
  timm:NAME               a timm model (pip install "pdd-edge[timm]")
  path/to/file.py:FUNC    your function returning an nn.Module; this runs that file's code
with --model-arg KEY=VALUE for the builder and --input-size H or H,W.
`pdd-edge models SPEC` shows the channel groups PDD finds in a model."""


def models_command(
    spec: Annotated[Optional[str], typer.Argument(callback=options.trusted_spec, help=f"Show the channel groups of one model: {options.SPEC_FORMS}.")] = None,
    *,
    model_args: options.ModelArg = None,
    num_classes: Annotated[int, typer.Option(help="Classifier width to build SPEC with.")] = 10,
    input_size: options.InputSize = None,
    json_out: options.Json = False,
) -> None:
    """List the model zoo (parameters and MACs at 32x32), or the PDD mask points of one model spec."""
    from pdd_edge.zoo import listing

    if spec is not None:
        _describe(listing.describe(spec, args=options.model_args(model_args), num_classes=num_classes,
                                   input_hw=input_size or listing.DEFAULT_INPUT), json_out)
        return
    rows = listing.zoo_table()
    if json_out:
        print_json(rows)
        return
    table = Table(title="pdd-edge model zoo (MACs: multiply-accumulates of conv and linear layers)")
    for col in ("name", "params", "MACs", "input", "description"):
        table.add_column(col, justify="right" if col in ("params", "MACs") else "left")
    for r in rows:
        table.add_row(r["name"], f"{r['params']:,}", f"{r['macs']:,}", "x".join(map(str, r["input_size"])), r["description"])
    out.print(table)
    out.print(escape(SPECS_HELP))


def _describe(d: dict, json_out: bool) -> None:
    if json_out:
        print_json(d)
        return
    hw = "x".join(map(str, d["input_size"]))
    out.print(f"{escape(d['name'])}: {d['params']:,} params, {d['macs']:,} MACs at {hw}, {d['num_classes']} classes")
    points = d["mask_points"]
    out.print(f"{len(points)} channel groups get a PDD mask ({sum(points.values()):,} gates); "
              f"{len(d['unmasked'])} left unmasked")
    for why in d["unmasked"]:
        out.print(f"  unmasked: {escape(why)}")
