"""CIFAR ResNets (He et al. 2016, section 4.2) with option-A identity shortcuts.

Parameter names match akamaster/pytorch_resnet_cifar10 (`conv1, bn1, layer{1,2,3}.{i}.conv1,
.bn1, .conv2, .bn2, linear`), so its checkpoints load with `strict=True`.

A layer group is one `layerS`: the blocks at one width (the paper's "stage"; the option value
`mask_placement="stage"` and the `stage_gates` mask points keep that word, which in this code
base otherwise names a pipeline stage).

PDD mask points: `layerS.B.gate_mid` after each block's inner conv+BN+ReLU, and
`layerS.B.gate_out` on each block's output (after the residual add and ReLU). With
`mask_placement="stage"` the block outputs of one layer group share one mask, `stage_gates.S`
(0-based S): every block of the group keeps the same channels, so its identity shortcuts need
no index map at all (only a group's first block, which changes width, keeps one). That trades
freedom per block for fewer Gather/Pad ops in the deployed graph (docs/latency-breakdown.md).

A pruned network is the same class built with `keep`: for every mask point the indices of the
channels it keeps, counted in the full-width network. Channel indices of one layer group's residual
stream are a shared coordinate system, so each shortcut carries an *index map* from the kept
input channels to the kept output channels (a missing channel reads a zero), instead of
padding or cropping that would misalign channels. A block whose inner channels are all gone
keeps only its constant branch value `bn2(0)` as `branch_bias`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pdd_edge.errors import shortlist
from pdd_edge.zoo.cost import Cost, conv_out

LAYER_GROUP_WIDTHS = (16, 32, 64)
STEM_WIDTH = 16

Keep = Mapping[str, Sequence[int]]


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class IndexShortcut(nn.Module):
    """Identity path: subsample by `stride`, then route input channels to output positions.

    `index[j]` is the input position feeding output position `j`, or `n_in` for "no input"
    (a zero channel appended to the input). `index=None` is the plain identity.
    """

    def __init__(self, stride: int, index: Sequence[int] | None) -> None:
        super().__init__()
        self.stride = stride
        # Not persistent: the map is derived from the architecture arguments, not learned.
        self.register_buffer(
            "index", None if index is None else torch.tensor(list(index), dtype=torch.long), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.index is None:
            return x
        return F.pad(x, (0, 0, 0, 0, 0, 1)).index_select(1, self.index)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_mid: int, c_out: int, stride: int, shortcut_index: Sequence[int] | None) -> None:
        super().__init__()
        self.c_mid = c_mid
        self.c_out = c_out
        if c_mid > 0:
            self.conv1 = _conv3x3(c_in, c_mid, stride)
            self.bn1 = nn.BatchNorm2d(c_mid)
            self.conv2 = _conv3x3(c_mid, c_out)
            self.bn2 = nn.BatchNorm2d(c_out)
        else:
            # Inner channels all removed: the branch is the constant bn2(conv2(0)) = bn2(0).
            self.branch_bias = nn.Parameter(torch.zeros(c_out))
        self.gate_mid = nn.Identity()
        self.gate_out = nn.Identity()
        self.shortcut = IndexShortcut(stride, shortcut_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.c_mid > 0:
            out = self.gate_mid(F.relu(self.bn1(self.conv1(x))))
            out = self.bn2(self.conv2(out))
        else:
            out = self.branch_bias.view(1, -1, 1, 1)
        return self.gate_out(F.relu(out + self.shortcut(x)))


def block_names(depth: int) -> list[tuple[int, str]]:
    """(layer group index, 'layerS.B') for every block of a CIFAR ResNet of this depth."""
    n = blocks_per_layer_group(depth)
    return [(s, f"layer{s + 1}.{b}") for s in range(3) for b in range(n)]


def blocks_per_layer_group(depth: int) -> int:
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    return (depth - 2) // 6


PLACEMENTS = ("block", "stage")


def out_point(layer_group: int, name: str, placement: str) -> str:
    """The mask point on block `name`'s output: its own, or its layer group's shared one."""
    return f"stage_gates.{layer_group}" if placement == "stage" else f"{name}.gate_out"


def full_keep(depth: int, mask_placement: str = "block") -> dict[str, list[int]]:
    keep: dict[str, list[int]] = {}
    for s, name in block_names(depth):
        keep[f"{name}.gate_mid"] = list(range(LAYER_GROUP_WIDTHS[s]))
        keep[out_point(s, name, mask_placement)] = list(range(LAYER_GROUP_WIDTHS[s]))
    return keep


def shortcut_source(out_channel: int, stride: int, in_width: int, out_width: int) -> int | None:
    """Which full-width input channel the unpruned shortcut copies to `out_channel` (None: zero)."""
    if stride == 1 and in_width == out_width:
        return out_channel
    pad = out_width // 4  # option A: zero-pad planes // 4 channels on each side
    src = out_channel - pad
    return src if 0 <= src < in_width else None


def shortcut_index(in_keep: Sequence[int], out_keep: Sequence[int], stride: int, in_width: int, out_width: int) -> list[int] | None:
    position = {c: i for i, c in enumerate(in_keep)}
    zero = len(in_keep)
    index = []
    for o in out_keep:
        src = shortcut_source(o, stride, in_width, out_width)
        index.append(position.get(src, zero) if src is not None else zero)
    if index == list(range(len(in_keep))):
        return None
    return index


class CifarResNet(nn.Module):
    refused: tuple[str, ...] = ()  # every channel group of the hand-written zoo is prunable

    def __init__(self, depth: int, num_classes: int = 10, keep: Keep | None = None, mask_placement: str = "block") -> None:
        super().__init__()
        if mask_placement not in PLACEMENTS:
            raise ValueError(f"mask_placement must be one of {', '.join(PLACEMENTS)}, got {mask_placement!r}")
        self.depth = depth
        self.num_classes = num_classes
        self.placement = mask_placement
        self.keep = {k: list(v) for k, v in (keep or full_keep(depth, mask_placement)).items()}
        _check_keep(self.keep, full_keep(depth, mask_placement))

        self.conv1 = _conv3x3(3, STEM_WIDTH)
        self.bn1 = nn.BatchNorm2d(STEM_WIDTH)
        in_keep: list[int] = list(range(STEM_WIDTH))
        in_width = STEM_WIDTH
        layer_groups: list[list[BasicBlock]] = [[], [], []]
        for s, name in block_names(depth):
            width = LAYER_GROUP_WIDTHS[s]
            stride = 2 if s > 0 and name.endswith(".0") else 1
            out_keep = self.keep[out_point(s, name, mask_placement)]
            index = shortcut_index(in_keep, out_keep, stride, in_width, width)
            block = BasicBlock(len(in_keep), len(self.keep[f"{name}.gate_mid"]), len(out_keep), stride, index)
            layer_groups[s].append(block)
            in_keep, in_width = out_keep, width
        self.layer1 = nn.Sequential(*layer_groups[0])
        self.layer2 = nn.Sequential(*layer_groups[1])
        self.layer3 = nn.Sequential(*layer_groups[2])
        self.linear = nn.Linear(len(in_keep), num_classes)
        # The shared per-layer-group mask points (placeholders until masks are attached); applied in
        # `forward` after every block of the group, where a block's own gate_out would be.
        self.stage_gates = nn.ModuleList(nn.Identity() for _ in LAYER_GROUP_WIDTHS) if mask_placement == "stage" else None
        for m in self.modules():  # akamaster / He et al.: Kaiming-normal conv and linear weights
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        if self.stage_gates is None:
            out = self.layer3(self.layer2(self.layer1(out)))
        else:
            for layer_group, gate in zip((self.layer1, self.layer2, self.layer3), self.stage_gates):
                for block in layer_group:
                    out = gate(block(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)

    def _out(self, layer_group: int, name: str) -> str:
        return out_point(layer_group, name, self.placement)

    # --- what PDD needs to know about the architecture -------------------------------------
    def arch_args(self) -> dict:
        args = {"num_classes": self.num_classes, "keep": self.keep}
        if self.placement != "block":  # rebuilt through zoo.build(..., args=...) like a --model-arg
            args["args"] = {"mask_placement": self.placement}
        return args

    def point_label(self, point: str) -> str:
        if point.startswith("stage_gates."):
            return f"layer{int(point.rsplit('.', 1)[1]) + 1} outputs (shared)"
        return point  # the mask points are named after the layers they follow

    def is_pruned(self) -> bool:
        return any(len(self.keep[k]) != len(v) for k, v in full_keep(self.depth, self.placement).items())

    def may_vanish(self, point: str) -> bool:
        # Only a block's inner layer can keep no channel: its branch becomes the constant bn2(0).
        return point.endswith(".gate_mid")

    def pruned_state(self, local: Mapping[str, Sequence[int]]) -> dict[str, torch.Tensor]:
        return pruned_state(self, local)

    def mask_points(self) -> dict[str, int]:
        """Mask point -> channels; a block without inner channels has no inner mask point."""
        points = {}
        for s, name in block_names(self.depth):
            block = self.get_submodule(name)
            if block.c_mid > 0:
                points[f"{name}.gate_mid"] = block.c_mid
            points[self._out(s, name)] = block.c_out
        return points

    def layer_widths(self, counts: Mapping[str, object]) -> dict[str, tuple[object, object]]:
        widths: dict[str, tuple[object, object]] = {"conv1": (3, STEM_WIDTH)}
        c_prev: object = STEM_WIDTH
        for s, name in block_names(self.depth):
            out = counts[self._out(s, name)]
            if self.get_submodule(name).c_mid > 0:
                mid = counts.get(f"{name}.gate_mid", 0)
                widths[f"{name}.conv1"] = (c_prev, mid)
                widths[f"{name}.conv2"] = (mid, out)
            c_prev = out
        widths["linear"] = (c_prev, self.num_classes)
        return widths

    def cost(self, counts: Mapping[str, object], input_hw: tuple[int, int]) -> Cost:
        """MACs/params of the network in which each mask point passes `counts[point]` channels."""
        h, w = input_hw
        c = Cost()
        c.conv(3, STEM_WIDTH, 3, (h, w))
        c.batchnorm(STEM_WIDTH)
        c_prev: object = STEM_WIDTH
        for s, name in block_names(self.depth):
            block = self.get_submodule(name)
            stride = block.shortcut.stride
            h, w = conv_out(h, 3, stride, 1), conv_out(w, 3, stride, 1)
            mid = counts.get(f"{name}.gate_mid", 0) if block.c_mid > 0 else 0
            out = counts[self._out(s, name)]
            if int(mid) > 0:
                c.conv(c_prev, mid, 3, (h, w))
                c.batchnorm(mid)
                c.conv(mid, out, 3, (h, w))
                c.batchnorm(out)
            else:
                c.add_params(out)  # branch_bias
            c_prev = out
        c.linear(c_prev, self.num_classes)
        return c


def _check_keep(keep: Mapping[str, Sequence[int]], full: Mapping[str, Sequence[int]]) -> None:
    if set(keep) != set(full):
        missing = shortlist(sorted(set(full) - set(keep)))
        extra = shortlist(sorted(set(keep) - set(full)))
        raise ValueError(f"channel plan does not fit this architecture (missing {missing}; unexpected {extra})")
    for name, idx in keep.items():
        width = len(full[name])
        if list(idx) != sorted(set(idx)) or any(not 0 <= i < width for i in idx):
            raise ValueError(f"channel plan for {name} must be sorted distinct indices below {width}")
        if (name.endswith("gate_out") or name.startswith("stage_gates.")) and not idx:
            raise ValueError(f"channel plan for {name} keeps no channel; the residual stream needs one")


def _rows(t: torch.Tensor, idx: Sequence[int]) -> torch.Tensor:
    return t.index_select(0, torch.tensor(list(idx), dtype=torch.long)).clone()


def _cols(t: torch.Tensor, idx: Sequence[int]) -> torch.Tensor:
    return t.index_select(1, torch.tensor(list(idx), dtype=torch.long)).clone()


def _bn_state(bn: nn.BatchNorm2d, idx: Sequence[int], prefix: str) -> dict[str, torch.Tensor]:
    out = {f"{prefix}.{k}": _rows(getattr(bn, k).detach(), idx) for k in ("weight", "bias", "running_mean", "running_var")}
    out[f"{prefix}.num_batches_tracked"] = bn.num_batches_tracked.detach().clone()
    return out


def bn_at_zero(bn: nn.BatchNorm2d) -> torch.Tensor:
    """What an eval-mode BN outputs for a zero input: beta - mean * gamma / sqrt(var + eps)."""
    return (bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()


def pruned_state(model: CifarResNet, local: Mapping[str, Sequence[int]]) -> dict[str, torch.Tensor]:
    """Weights of the pruned network: `local[point]` are kept positions in `model`'s current widths.

    Exact in eval mode: closed inner channels feed zeros to conv2; closed output channels are
    zeros in the residual stream, so the next conv reads nothing from them and the next
    shortcut's index map sends a zero in their place.
    """
    state: dict[str, torch.Tensor] = {}
    state["conv1.weight"] = model.conv1.weight.detach().clone()
    state.update(_bn_state(model.bn1, range(STEM_WIDTH), "bn1"))
    in_pos: Sequence[int] = range(STEM_WIDTH)
    for s, name in block_names(model.depth):
        block: BasicBlock = model.get_submodule(name)
        mid_pos = local.get(f"{name}.gate_mid", [])
        out_pos = local[model._out(s, name)]
        if block.c_mid > 0 and mid_pos:
            state[f"{name}.conv1.weight"] = _cols(_rows(block.conv1.weight.detach(), mid_pos), in_pos)
            state.update(_bn_state(block.bn1, mid_pos, f"{name}.bn1"))
            state[f"{name}.conv2.weight"] = _cols(_rows(block.conv2.weight.detach(), out_pos), mid_pos)
            state.update(_bn_state(block.bn2, out_pos, f"{name}.bn2"))
        elif block.c_mid > 0:  # every inner channel closed: the branch is the constant bn2(0)
            state[f"{name}.branch_bias"] = _rows(bn_at_zero(block.bn2), out_pos)
        else:  # already a bias-only block
            state[f"{name}.branch_bias"] = _rows(block.branch_bias.detach(), out_pos)
        in_pos = out_pos
    state["linear.weight"] = _cols(model.linear.weight.detach(), in_pos)
    state["linear.bias"] = model.linear.bias.detach().clone()
    return state
