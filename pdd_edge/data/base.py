"""In-memory and streamed image sources, and the batch iterator the training loop consumes.

Small datasets (digits, CIFAR, a small image folder) live in memory as one uint8 tensor and are
augmented a whole batch at a time: on a 2-core board this is several times faster than
per-image PIL transforms. Large image folders stream through a torch DataLoader with the same
augmentation semantics.

Randomness is derived from (seed, epoch) only, so an epoch replays exactly after a resume, and
`rank`/`world` shard each epoch for DistributedDataParallel (torchrun) without a sampler object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Protocol

import torch
import torch.nn.functional as F

from pdd_edge.data.preprocess import Preprocess


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
    def __len__(self) -> int: ...

    def batches(self, batch_size: int, *, shuffle: bool, augment: Augment | None, seed: int, epoch: int,
                rank: int = 0, world: int = 1, drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed * 100_003 + epoch)
    return g


def shard_order(n: int, shuffle: bool, g: torch.Generator, rank: int, world: int) -> torch.Tensor:
    """This rank's sample order for one epoch.

    Shuffled (training) orders are padded by wrapping, as DistributedSampler does, so that every
    rank runs the same number of steps (DDP needs that); evaluation orders are not padded, so
    each sample is counted exactly once across ranks.
    """
    order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    if world > 1:
        if shuffle:
            per_rank = math.ceil(n / world)
            order = torch.cat([order, order[: per_rank * world - n]])
        order = order[rank::world]
    return order


def random_crop_flip(x: torch.Tensor, aug: Augment, g: torch.Generator) -> torch.Tensor:
    """Batched random crop (after zero padding) and horizontal flip of an NCHW batch."""
    n, _, h, w = x.shape
    if aug.pad > 0:
        p = aug.pad
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,), generator=g)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=g)
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # n,1,h,1
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # n,1,1,w
        batch = torch.arange(n)[:, None, None, None]
        chans = torch.arange(x.shape[1])[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    if aug.hflip:
        flip = torch.rand(n, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


@dataclass
class TensorSource:
    """Images as one uint8 NCHW tensor in memory, labels as int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batches(self, batch_size: int, *, shuffle: bool, augment: Augment | None, seed: int, epoch: int,
                rank: int = 0, world: int = 1, drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = epoch_generator(seed, epoch)
        order = shard_order(len(self), shuffle, g, rank, world)
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            x = self.images[idx].float().div_(255.0)
            if augment is not None:
                x = random_crop_flip(x, augment, g)
            yield x, self.labels[idx]


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


def resize_uint8(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a uint8 NCHW tensor to `size` = (height, width) (bilinear, antialiased when either
    side shrinks)."""
    h, w = size
    if tuple(images.shape[-2:]) == (h, w):
        return images
    out = F.interpolate(images.float(), size=(h, w), mode="bilinear", align_corners=False,
                        antialias=h < images.shape[-2] or w < images.shape[-1])
    return out.round_().clamp_(0, 255).to(torch.uint8)
