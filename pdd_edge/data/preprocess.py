"""How a model wants its input: per-channel mean/std normalisation of [0, 1] RGB at a fixed size.

Torch-free on purpose: ONNX metadata carries the same record to `profile` and `evaluate`
on an edge board.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from pdd_edge.errors import PddError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # PDD reference recipe
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


def height_width(size: object) -> tuple[int, int]:
    """An image size as (height, width): an int is a square (how Python callers gave sizes before
    they could be non-square), a JSON record gives a list."""
    values = (size, size) if isinstance(size, int) else tuple(size) if isinstance(size, (tuple, list)) else ()
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise PddError(f"--input-size must be a positive number of pixels or a (height, width) pair, got {size!r}")
    return values  # type: ignore[return-value]


def size_option(hw: tuple[int, int]) -> str:
    """How `--input-size` spells `hw`: `H` for a square, `H,W` otherwise."""
    h, w = hw
    return f"{h}" if h == w else f"{h},{w}"


@dataclass(frozen=True)
class Preprocess:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: tuple[int, int]  # (height, width)

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3:
            raise PddError(f"mean and std need 3 values (RGB), got {len(self.mean)} and {len(self.std)}")
        if any(not math.isfinite(s) or s <= 0 for s in self.std):
            raise PddError(f"std values must be positive, got {self.std}")
        if len(self.input_size) != 2 or any(int(v) < 1 for v in self.input_size):
            raise PddError(f"input size must be two positive integers, got {self.input_size}")

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "input_size": list(self.input_size)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Preprocess":
        try:
            return cls(
                mean=tuple(float(v) for v in d["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in d["std"]),  # type: ignore[arg-type]
                input_size=tuple(int(v) for v in d["input_size"]),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PddError(f"malformed preprocessing record {dict(d)!r}: {exc}") from None

    def with_overrides(self, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                       input_size: tuple[int, int] | None = None) -> "Preprocess":
        return Preprocess(
            mean=tuple(mean) if mean is not None else self.mean,  # type: ignore[arg-type]
            std=tuple(std) if std is not None else self.std,  # type: ignore[arg-type]
            input_size=tuple(input_size) if input_size is not None else self.input_size,  # type: ignore[arg-type]
        )
