"""What a prunable model offers the rest of pdd-edge, declared once.

Masks, pruning, costs, checkpoints and the MACs budget talk to a model only through this
protocol; none of them asks which architecture it is. Two kinds implement it: the hand-written
CIFAR zoo (`resnet_cifar`, `vgg_cifar`: exact index-map shortcuts, the paper's mask points) and
`traced.TracedModel` (any torchvision / timm / user CNN, groups found by tracing). Both are built
from a name and `arch_args()` by `zoo.build`, which is how checkpoints rebuild them.

Mask points are named module paths holding an `nn.Identity` placeholder that `attach_masks`
replaces by a `ChannelMask`. `keep` is the channel plan of a (pruned) network: for each mask
point, the kept channel indices of the full-width network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

from pdd_edge.errors import PddError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from pdd_edge.zoo.cost import Cost


@runtime_checkable
class PrunableModel(Protocol):
    num_classes: int
    keep: dict[str, list[int]]
    refused: Sequence[str]  # channel groups left unmasked because they cannot be removed exactly, and why

    def mask_points(self) -> dict[str, int]:
        """Ordered mask points: module path -> channels it gates."""

    def cost(self, counts: Mapping[str, Any], input_hw: tuple[int, int]) -> "Cost":
        """MACs/params when each mask point passes `counts[point]` channels (ints, or 0-d tensors
        whose gradient reaches the masks)."""

    def layer_widths(self, counts: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        """(input, output) channels of every conv and linear layer (module path -> counts, ints or
        0-d tensors) when each mask point passes `counts[point]`; a removed layer has a 0."""

    def arch_args(self) -> dict[str, Any]:
        """Builder arguments that rebuild this network (class count and channel plan)."""

    def may_vanish(self, point: str) -> bool:
        """Whether `point` may keep no channel at all (e.g. a residual block's inner layer)."""

    def point_label(self, point: str) -> str:
        """A name for `point` that a person recognises in the network (for reports and plots)."""

    def is_pruned(self) -> bool:
        """Whether some mask point keeps fewer channels than the full-width network has."""

    def pruned_state(self, local: Mapping[str, Sequence[int]]) -> dict[str, "torch.Tensor"]:
        """State dict of the network that keeps positions `local[point]` of the current widths."""


def prunable(model: "nn.Module") -> PrunableModel:
    """`model` (unwrapped from DDP / DataParallel) as a PrunableModel, or a clear error."""
    bare = getattr(model, "module", model)
    if not isinstance(bare, PrunableModel):
        raise PddError(f"{type(bare).__name__} does not offer pdd-edge's prunable-model interface "
                       "(mask_points, point_label, cost, layer_widths, arch_args, may_vanish, is_pruned, pruned_state)")
    return bare
