"""`pdd-edge models`: the zoo, with parameter and MAC counts."""

from __future__ import annotations


from pdd_edge.cli.app import app
from pdd_edge.cli.shared import Json, command, out, print_json
from rich.table import Table


@command(app, "models")
def models_command(*, json_out: Json = False) -> None:
    """List the model zoo: name, parameters and MACs at 32x32 (MACs = conv+linear multiply-accumulates)."""
    from pdd_edge.zoo.listing import zoo_table

    rows = zoo_table()
    if json_out:
        print_json(rows)
        return
    table = Table(title="pdd-edge model zoo (MACs: multiply-accumulates of conv and linear layers)")
    for col in ("name", "params", "MACs", "input", "description"):
        table.add_column(col, justify="right" if col in ("params", "MACs") else "left")
    for r in rows:
        table.add_row(r["name"], f"{r['params']:,}", f"{r['macs']:,}", "x".join(map(str, r["input_size"])), r["description"])
    out.print(table)
