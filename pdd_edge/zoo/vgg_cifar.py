"""CIFAR VGG-BN as the PDD authors define it.

`features`: conv3x3 (with bias) + BN + ReLU per configuration entry, 2x2 max-pool at each 'M';
`classifier`: Dropout, Linear(512, 512), ReLU, Dropout, Linear(512, 512), ReLU,
Linear(512, classes). Module indices match the authors' code, so their checkpoints load with
`strict=True`. Conv weights start from N(0, sqrt(2 / (k*k*out))), biases at zero (as theirs).

The one addition is a global average pool before the classifier: identical at 32x32 input (the
feature map is 1x1 there) and it lets the same network take larger inputs.

PDD mask points `gates.i` sit after the ReLU of the i-th conv; `keep` (see resnet_cifar) gives
each conv's kept output channels for a pruned network.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import nn

from pdd_edge.zoo.cost import Cost

CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
HIDDEN = 512


def conv_widths(depth: int) -> list[int]:
    return [v for v in CONFIGS[depth] if v != "M"]  # type: ignore[misc]


def full_keep(depth: int) -> dict[str, list[int]]:
    return {f"gates.{i}": list(range(w)) for i, w in enumerate(conv_widths(depth))}


class CifarVGG(nn.Module):
    refused: tuple[str, ...] = ()  # every channel group of the hand-written zoo is prunable

    def __init__(self, depth: int, num_classes: int = 10, keep: Mapping[str, Sequence[int]] | None = None) -> None:
        super().__init__()
        if depth not in CONFIGS:
            raise ValueError(f"VGG depth must be one of {sorted(CONFIGS)}, got {depth}")
        self.depth = depth
        self.num_classes = num_classes
        full = full_keep(depth)
        self.keep = {k: list(v) for k, v in (keep or full).items()}
        if set(self.keep) != set(full):
            raise ValueError("channel plan does not fit this architecture")
        for name, idx in self.keep.items():
            if not idx or list(idx) != sorted(set(idx)) or idx[-1] >= len(full[name]):
                raise ValueError(f"channel plan for {name} must be 1 or more sorted distinct valid indices")

        layers: list[nn.Module] = []
        c_in, i = 3, 0
        for v in CONFIGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            c_out = len(self.keep[f"gates.{i}"])
            layers += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in, i = c_out, i + 1
        self.features = nn.Sequential(*layers)
        # Mask points live outside `features` so that its module indices stay the authors'.
        self.gates = nn.ModuleList(nn.Identity() for _ in range(i))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(),
            nn.Linear(c_in, HIDDEN),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(True),
            nn.Linear(HIDDEN, num_classes),
        )
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = 0
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                x = self.gates[gate](x)
                gate += 1
        return self.classifier(self.pool(x).flatten(1))

    def arch_args(self) -> dict:
        return {"num_classes": self.num_classes, "keep": self.keep}

    def point_label(self, point: str) -> str:
        return point  # the mask points are named after the layers they follow

    def is_pruned(self) -> bool:
        return any(len(self.keep[k]) != len(v) for k, v in full_keep(self.depth).items())

    def may_vanish(self, point: str) -> bool:
        return False  # every conv layer feeds the next: it needs at least one channel

    def pruned_state(self, local: Mapping[str, Sequence[int]]) -> dict[str, torch.Tensor]:
        return pruned_state(self, local)

    def mask_points(self) -> dict[str, int]:
        return {name: len(idx) for name, idx in self.keep.items()}

    def layer_widths(self, counts: Mapping[str, object]) -> dict[str, tuple[object, object]]:
        widths: dict[str, tuple[object, object]] = {}
        c_prev: object = 3
        gate = 0
        for j, layer in enumerate(self.features):
            if isinstance(layer, nn.Conv2d):
                out = counts[f"gates.{gate}"]
                widths[f"features.{j}"] = (c_prev, out)
                c_prev, gate = out, gate + 1
        linears = [j for j, layer in enumerate(self.classifier) if isinstance(layer, nn.Linear)]
        for j, (c_in, c_out) in zip(linears, [(c_prev, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, self.num_classes)]):
            widths[f"classifier.{j}"] = (c_in, c_out)
        return widths

    def cost(self, counts: Mapping[str, object], input_hw: tuple[int, int]) -> Cost:
        h, w = input_hw
        c = Cost()
        c_prev: object = 3
        i = 0
        for v in CONFIGS[self.depth]:
            if v == "M":
                h, w = h // 2, w // 2
                continue
            out = counts[f"gates.{i}"]
            c.conv(c_prev, out, 3, (h, w), bias=True)
            c.batchnorm(out)
            c_prev, i = out, i + 1
        c.linear(c_prev, HIDDEN)
        c.linear(HIDDEN, HIDDEN)
        c.linear(HIDDEN, self.num_classes)
        return c


def pruned_state(model: CifarVGG, local: Mapping[str, Sequence[int]]) -> dict[str, torch.Tensor]:
    """Weights of the pruned VGG: `local[point]` are kept positions in `model`'s current widths."""

    def pick(t: torch.Tensor, dim: int, idx: Sequence[int]) -> torch.Tensor:
        return t.detach().index_select(dim, torch.tensor(list(idx), dtype=torch.long)).clone()

    state = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("gates.")}
    in_pos: Sequence[int] = range(3)
    gate = 0
    for i, layer in enumerate(model.features):
        if isinstance(layer, nn.Conv2d):
            out_pos = local[f"gates.{gate}"]
            state[f"features.{i}.weight"] = pick(pick(layer.weight, 0, out_pos), 1, in_pos)
            state[f"features.{i}.bias"] = pick(layer.bias, 0, out_pos)
            bn = model.features[i + 1]
            for k in ("weight", "bias", "running_mean", "running_var"):
                state[f"features.{i + 1}.{k}"] = pick(getattr(bn, k), 0, out_pos)
            in_pos, gate = out_pos, gate + 1
    # The pooled feature vector has one entry per last-conv channel: drop the removed columns.
    state["classifier.1.weight"] = pick(model.classifier[1].weight, 1, in_pos)
    return state
