"""The zoo models: an explicit table of builders (no import side effects, no torch at import).

Each entry carries its builder callables: `build(num_classes, keep, **options)` returns a network that
implements `zoo.protocol.PrunableModel`, and `full_keep()` its full-width channel plan. A module of
its own so that `zoo` (which builds any model) and `zoo.specs` (which parses model names) both read
the table without importing each other.
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
    build: Callable[..., "nn.Module"]  # (num_classes, keep, **options) -> network
    full_keep: Callable[..., dict[str, list[int]]]  # (**options) -> full-width channel plan
    classifier_key: str  # state-dict key of the last layer's weight: tells the class count
    description: str
    options: Mapping[str, tuple[str, ...]] = None  # type: ignore[assignment]  # --model-arg name -> allowed values

    def check_options(self, args: Mapping) -> dict:
        """The entry's builder options from `--model-arg`, or a clear error."""
        allowed = self.options or {}
        for key, value in args.items():
            if key not in allowed:
                accepted = f"accepts only {', '.join(f'{k}=' for k in allowed)}" if allowed else "takes no --model-arg"
                raise PddError(f"{self.name} is a zoo model and {accepted} (got {key})")
            if value not in allowed[key]:
                raise PddError(f"{self.name}: {key} must be one of {', '.join(allowed[key])}, got {value!r}")
        return dict(args)


def _entry(family: str, depth: int, module: str, cls: str, classifier_key: str, description: str,
           options: Mapping[str, tuple[str, ...]] | None = None) -> ModelEntry:
    """A registry entry whose builders import `pdd_edge.zoo.<module>` only when called."""

    def arch():
        return importlib.import_module(f"pdd_edge.zoo.{module}")

    def build(num_classes: int, keep: Keep | None, **kw) -> "nn.Module":
        return getattr(arch(), cls)(depth, num_classes=num_classes, keep=keep, **kw)

    def full(**kw) -> dict[str, list[int]]:
        return arch().full_keep(depth, **kw)

    return ModelEntry(f"{family}{depth}", family, build, full, classifier_key, description, options or {})


# `--model-arg mask_placement=stage`: one mask per layer group (`layerS`, a ResNet "stage") instead of one
# per block output (resnet_cifar.py), so that a group's blocks share one channel set and need no index maps.
RESNET_OPTIONS = {"mask_placement": ("block", "stage")}


_ENTRIES = [
    *(_entry("resnet", d, "resnet_cifar", "CifarResNet", "linear.weight", f"CIFAR ResNet-{d}, option-A shortcuts",
             RESNET_OPTIONS) for d in (20, 32, 44, 56, 110)),
    *(_entry("vgg", d, "vgg_cifar", "CifarVGG", "classifier.6.weight", f"CIFAR VGG-{d} with BN (PDD authors' layout)")
      for d in (11, 13, 16, 19)),
]
MODELS: dict[str, ModelEntry] = {e.name: e for e in _ENTRIES}
