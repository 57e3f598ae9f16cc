"""A dataset as the commands see it: its two splits, class names and default preprocessing.

Torch-free, so that an edge install (no PyTorch) can describe an image folder it evaluates an ONNX
model on (`data.image_files`); the torch-backed sources live in `data.base`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Protocol

from pdd_edge.data.preprocess import Preprocess

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Augment:
    """Random crop with zero padding and optional horizontal flip (the PDD/CIFAR recipe)."""

    pad: int = 4
    hflip: bool = True

    @classmethod
    def for_size(cls, size: tuple[int, int], hflip: bool) -> Augment:
        """The PDD/CIFAR padding (4 px at 32x32) scaled to the shorter side."""
        return cls(pad=min(size) // 8, hflip=hflip)


class Source(Protocol):
    """A split's images and labels (the torch-backed ones are in `data.base`); here, beside the
    Dataset that holds two of them, so that this module needs nothing of `data.base`."""

    def __len__(self) -> int: ...

    def batches(self, batch_size: int, *, shuffle: bool, augment: Augment | None, seed: int, epoch: int,
                rank: int = 0, world: int = 1, drop_last: bool = False, device: torch.device | None = None,
                workers: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


@dataclass
class Dataset:
    name: str
    train: Source
    val: Source
    classes: list[str]
    preprocess: Preprocess  # the dataset's default normalisation and input size
    augment: Augment = field(default_factory=Augment)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.preprocess.input_size
