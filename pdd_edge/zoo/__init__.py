"""Model zoo: the networks pdd-edge builds by name, zoo models (`registry`) and model specs (`specs`).

`build(name, num_classes, keep)` returns a network that implements `zoo.protocol.PrunableModel`.
`keep` (None for the full network) is the channel plan of a pruned network: for each PDD mask
point, the kept channel indices. Together with the name and the class count it is all a
checkpoint needs to rebuild a model. No torch at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

from pdd_edge.errors import PddError
from pdd_edge.zoo.registry import MODELS, Keep, ModelEntry

if TYPE_CHECKING:
    from torch import nn


def entry(name: str) -> ModelEntry:
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
    return entry(name).full_keep()


def is_pruned(model: "nn.Module") -> bool:
    """Whether any mask point of `model` is narrower than at full width."""
    from pdd_edge.zoo.protocol import prunable

    return prunable(model).is_pruned()
