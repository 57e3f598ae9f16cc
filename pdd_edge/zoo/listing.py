"""Numbers about zoo models for listing (`pdd-edge models`)."""

from __future__ import annotations

from typing import Any

from pdd_edge import zoo
from pdd_edge.errors import require_torch

DEFAULT_INPUT = (32, 32)


def zoo_table(num_classes: int = 10) -> list[dict[str, Any]]:
    require_torch("pdd-edge models")
    from pdd_edge.zoo.masked import MaskedNetwork

    rows = []
    for name, spec in zoo.MODELS.items():
        cost = MaskedNetwork(zoo.build(name, num_classes=num_classes)).dense_cost(DEFAULT_INPUT)
        rows.append({"name": name, "family": spec.family, "params": cost["params"], "macs": cost["macs"],
                     "input_size": list(DEFAULT_INPUT), "num_classes": num_classes, "description": spec.description})
    return rows


def describe(spec: str, *, args: dict[str, Any] | None = None, num_classes: int = 10,
             input_hw: tuple[int, int] = DEFAULT_INPUT) -> dict[str, Any]:
    """What PDD can do with one model: its mask points (channel groups), the groups left unmasked
    and why, and its MACs/params at `input_hw`."""
    require_torch("pdd-edge models")
    from pdd_edge.zoo.masked import MaskedNetwork

    masked = MaskedNetwork(zoo.build(spec, num_classes=num_classes, args=args, input_size=input_hw))
    cost = masked.dense_cost(input_hw)
    return {"name": spec, "args": dict(args or {}), "num_classes": num_classes, "input_size": list(input_hw),
            "params": cost["params"], "macs": cost["macs"], "mask_points": masked.points,
            "unmasked": list(masked.arch.refused)}
