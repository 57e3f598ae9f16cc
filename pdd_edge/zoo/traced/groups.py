"""What tracing finds and every later step reads: a group's slots, positions and units."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Slot:
    """Positions of one layer dimension that belong to a group, and the unit each one follows."""

    module: str
    dim: str  # "in" or "out"
    positions: list[int]
    units: list[int]


@dataclass
class Group:
    key: str  # mask point name inside the wrapper: "pdd_masks.<key>"
    root: str  # the layer whose output channels define the group (named in messages)
    units: int  # gates at full width
    slots: list[Slot] = field(default_factory=list)

    @property
    def point(self) -> str:
        return f"pdd_masks.{self.key}"
