"""What a loaded checkpoint says about its model besides the weights: name, classes, preprocessing,
the dataset it was trained on.

In `data`, not beside the checkpoint I/O (`pdd_edge.checkpoint`), because choosing and checking a
dataset for a model (`data.options`) reads it, and checkpoint I/O sits above data. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pdd_edge.data.preprocess import Preprocess


@dataclass
class CheckpointInfo:
    """Everything about a loaded model except its weights."""

    model: str
    num_classes: int
    keep: dict[str, list[int]] | None
    preprocess: Preprocess | None  # None: a third-party file that does not say
    classes: list[str] | None = None
    dataset: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    masked: bool = False
    third_party: bool = False
    path: str = ""
    pruned: bool = False
    arch: dict[str, Any] = field(default_factory=dict)  # builder arguments beyond class count and keep
