"""The layer kinds a traced network is cut along, and their channel widths."""

from __future__ import annotations

from torch import nn

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
SLICEABLE = (*CONV, nn.Linear, *BN)
TRANSPOSED = nn.modules.conv._ConvTransposeNd  # never sliced: its input and output keep their width


def mixes_channels(module: nn.Module) -> bool:
    """Whether every output channel reads every input channel (dense conv, linear): where a mask gates."""
    return isinstance(module, nn.Linear) or (isinstance(module, CONV) and module.groups == 1)


def dims(module: nn.Module) -> tuple[int, int]:
    """(input channels, output channels) of a sliceable layer."""
    if isinstance(module, CONV):
        return module.in_channels, module.out_channels
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return module.num_features, module.num_features


def sliceable_dims(net: nn.Module) -> dict[str, tuple[int, int]]:
    """(input, output) channels of every sliceable layer of `net`, by name."""
    return {n: dims(m) for n, m in net.named_modules() if isinstance(m, SLICEABLE)}
