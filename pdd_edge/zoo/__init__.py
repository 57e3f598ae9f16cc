"""Model zoo: an explicit registry of builder functions (no import side effects).

Every zoo model is built as `build(name, num_classes, keep)`. `keep` (None for the full network)
is the channel plan of a pruned network: for each PDD mask point, the kept channel indices.
Together with the name and the class count it is all a checkpoint needs to rebuild a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from pdd_edge.errors import PddError

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # "resnet" or "vgg"
    depth: int
    classifier_key: str  # state-dict key of the last layer's weight: tells the class count
    description: str


MODELS: dict[str, ModelSpec] = {
    **{
        f"resnet{d}": ModelSpec(f"resnet{d}", "resnet", d, "linear.weight", f"CIFAR ResNet-{d}, option-A shortcuts")
        for d in (20, 32, 44, 56, 110)
    },
    **{
        f"vgg{d}": ModelSpec(f"vgg{d}", "vgg", d, "classifier.6.weight", f"CIFAR VGG-{d} with BN (PDD authors' layout)")
        for d in (11, 13, 16, 19)
    },
}


def spec(name: str) -> ModelSpec:
    try:
        return MODELS[name.lower()]
    except KeyError:
        raise PddError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)} (see `pdd-edge models`)") from None


def build(name: str, num_classes: int = 10, keep: Mapping[str, Sequence[int]] | None = None) -> "nn.Module":
    s = spec(name)
    builder: Callable[..., Any]
    if s.family == "resnet":
        from pdd_edge.zoo.resnet_cifar import CifarResNet as builder
    else:
        from pdd_edge.zoo.vgg_cifar import CifarVGG as builder
    if num_classes < 1:
        raise PddError(f"num_classes must be positive, got {num_classes}")
    try:
        return builder(s.depth, num_classes=num_classes, keep=keep)
    except ValueError as exc:
        raise PddError(f"{name}: {exc}") from None


def full_keep(name: str) -> dict[str, list[int]]:
    s = spec(name)
    if s.family == "resnet":
        from pdd_edge.zoo.resnet_cifar import full_keep as fk
    else:
        from pdd_edge.zoo.vgg_cifar import full_keep as fk
    return fk(s.depth)


def is_pruned(name: str, keep: Mapping[str, Sequence[int]] | None) -> bool:
    if keep is None:
        return False
    full = full_keep(name)
    return any(len(keep[k]) != len(v) for k, v in full.items())
