"""Multiply-accumulates and parameters of a network from its channel counts.

Convention (shared with fvcore, the paper's thop figures and our ONNX counter): MACs are the
multiply-accumulates of convolution and fully-connected layers only; BN, ReLU, pooling and
additions are not counted. Params are all learnable weights and biases (BN running statistics
excluded).

Counts may be ints or 0-d tensors (sums of straight-through mask gates): then the result is a
tensor whose gradient reaches the masks, which is what the MACs budget term of `distill` needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Cost:
    macs: Any = 0  # int, or a 0-d tensor when counts are soft
    params: Any = 0

    def conv(self, c_in: Any, c_out: Any, kernel: int, out_hw: tuple[int, int], bias: bool = False) -> None:
        area = out_hw[0] * out_hw[1]
        self.macs = self.macs + c_in * c_out * kernel * kernel * area
        self.params = self.params + c_in * c_out * kernel * kernel + (c_out if bias else 0)

    def linear(self, c_in: Any, c_out: Any) -> None:
        self.macs = self.macs + c_in * c_out
        self.params = self.params + c_in * c_out + c_out

    def batchnorm(self, channels: Any) -> None:
        self.params = self.params + 2 * channels

    def add_params(self, n: Any) -> None:
        self.params = self.params + n

    def as_ints(self) -> dict[str, int]:
        return {"macs": int(self.macs), "params": int(self.params)}


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1
