"""Model zoo: an explicit registry of builders (no import side effects, no torch at import).

Each entry carries its builder callables: `build(num_classes, keep, **options)` returns a network that
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


# `--model-arg mask_placement=stage`: one mask per residual stage instead of one per block output
# (resnet_cifar.py), so that a stage's blocks share one channel set and need no index maps.
RESNET_OPTIONS = {"mask_placement": ("block", "stage")}


_ENTRIES = [
    *(_entry("resnet", d, "resnet_cifar", "CifarResNet", "linear.weight", f"CIFAR ResNet-{d}, option-A shortcuts",
             RESNET_OPTIONS) for d in (20, 32, 44, 56, 110)),
    *(_entry("vgg", d, "vgg_cifar", "CifarVGG", "classifier.6.weight", f"CIFAR VGG-{d} with BN (PDD authors' layout)")
      for d in (11, 13, 16, 19)),
]
MODELS: dict[str, ModelEntry] = {e.name: e for e in _ENTRIES}


def spec(name: str) -> ModelEntry:
    """The zoo entry of `name` (zoo names only; other specs go through `build`)."""
    try:
        return MODELS[name.lower()]
    except KeyError:
        from pdd_edge.zoo.specs import parse

        parse(name)  # says why a malformed or unknown spec is wrong
        raise PddError(f"{name} is not a zoo model; this option takes a zoo name (see `pdd-edge models`)") from None


def is_zoo(name: str) -> bool:
    return str(name).lower() in MODELS


def build(name: str, num_classes: int = 10, keep: Keep | None = None, *, args: Mapping | None = None,
          input_size: Sequence[int] | None = None, source: Mapping | None = None,
          check_output: bool = True) -> "nn.Module":
    """The network `name` names (a zoo name or a model spec, see `zoo.specs`), pruned to `keep`.

    The keyword arguments are what `arch_args()` of a traced model records: builder arguments,
    the input size it was traced at, and for a file model the file's recorded sha256, which must
    match the file named now. `check_output=False` skips the logits-shape check (a trace before
    the class count is known).
    """
    if num_classes < 1:
        raise PddError(f"num_classes must be positive, got {num_classes}")
    if is_zoo(name):
        entry = MODELS[name.lower()]
        try:
            return entry.build(num_classes, keep, **entry.check_options(args or {}))
        except ValueError as exc:
            raise PddError(f"{name}: {exc}") from None
    from pdd_edge.zoo import specs
    from pdd_edge.zoo.traced import TracedModel

    model_spec = specs.parse(name, args)
    specs.trust(model_spec)  # named by the caller: a checkpoint of it may rebuild from this file
    record = specs.source_record(model_spec)
    if source is not None and record is not None and source.get("sha256") != record["sha256"]:
        raise _other_source(model_spec.path, record, source)
    net = specs.build_network(model_spec, num_classes)
    extra: dict = {"args": dict(model_spec.args)}
    if record is not None:
        extra["source"] = record
    hw = tuple(input_size) if input_size is not None else DEFAULT_INPUT
    return TracedModel(net, name=model_spec.text, num_classes=num_classes, input_hw=hw, keep=keep, extra=extra,
                       check_output=check_output)


DEFAULT_INPUT = (32, 32)  # the zoo's CIFAR size; traced models record the size they were built for


def _other_source(path, record: Mapping, source: Mapping) -> PddError:
    """The file named now is not the code a checkpoint was made from: the same file edited since,
    or another file (a copy at a new path with the same content is accepted by the caller)."""
    now, then = f"sha256 {record['sha256'][:12]}…", f"sha256 {str(source.get('sha256'))[:12]}…"
    if source.get("path") in (None, record["path"]):
        return PddError(f"{path} has changed since the checkpoint was written ({now}, recorded {then}): "
                        "restore the file the model was trained with")
    return PddError(f"{path} is not the file the checkpoint's model was made from ({source['path']}, {then}; "
                    f"this one: {now}): name that file (or a copy of it) instead")


def full_keep(name: str) -> dict[str, list[int]]:
    return spec(name).full_keep()


def is_pruned(model: "nn.Module") -> bool:
    """Whether any mask point of `model` is narrower than at full width."""
    from pdd_edge.zoo.protocol import prunable

    return prunable(model).is_pruned()
