"""Model zoo: an explicit registry of builders (no import side effects, no torch at import).

Each entry carries its builder callables: `build(num_classes, keep)` returns a network that
implements `zoo.protocol.PrunableModel`, and `full_keep()` its full-width channel plan. `keep`
(None for the full network) is the channel plan of a pruned network: for each PDD mask point,
the kept channel indices. Together with the name and the class count it is all a checkpoint
needs to rebuild a model.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from pdd_edge.errors import PddError

if TYPE_CHECKING:
    from torch import nn

Keep = Mapping[str, Sequence[int]]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str  # shown by `pdd-edge models`
    build: Callable[[int, "Keep | None"], "nn.Module"]  # (num_classes, keep) -> network
    full_keep: Callable[[], dict[str, list[int]]]
    classifier_key: str  # state-dict key of the last layer's weight: tells the class count
    description: str


def _entry(family: str, depth: int, module: str, cls: str, classifier_key: str, description: str) -> ModelEntry:
    """A registry entry whose builders import `pdd_edge.zoo.<module>` only when called."""

    def arch():
        return importlib.import_module(f"pdd_edge.zoo.{module}")

    def build(num_classes: int, keep: Keep | None) -> "nn.Module":
        return getattr(arch(), cls)(depth, num_classes=num_classes, keep=keep)

    def full() -> dict[str, list[int]]:
        return arch().full_keep(depth)

    return ModelEntry(f"{family}{depth}", family, build, full, classifier_key, description)


_ENTRIES = [
    *(_entry("resnet", d, "resnet_cifar", "CifarResNet", "linear.weight", f"CIFAR ResNet-{d}, option-A shortcuts")
      for d in (20, 32, 44, 56, 110)),
    *(_entry("vgg", d, "vgg_cifar", "CifarVGG", "classifier.6.weight", f"CIFAR VGG-{d} with BN (PDD authors' layout)")
      for d in (11, 13, 16, 19)),
]
MODELS: dict[str, ModelEntry] = {e.name: e for e in _ENTRIES}


def spec(name: str) -> ModelEntry:
    try:
        return MODELS[name.lower()]
    except KeyError:
        raise PddError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)} (see `pdd-edge models`)") from None


def build(name: str, num_classes: int = 10, keep: Keep | None = None) -> "nn.Module":
    entry = spec(name)
    if num_classes < 1:
        raise PddError(f"num_classes must be positive, got {num_classes}")
    try:
        return entry.build(num_classes, keep)
    except ValueError as exc:
        raise PddError(f"{name}: {exc}") from None


def full_keep(name: str) -> dict[str, list[int]]:
    return spec(name).full_keep()


def is_pruned(name: str, keep: Keep | None) -> bool:
    if keep is None:
        return False
    full = full_keep(name)
    return any(len(keep[k]) != len(v) for k, v in full.items())
