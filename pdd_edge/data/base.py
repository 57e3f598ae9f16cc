"""In-memory and streamed image sources, and the batch iterator the training loop consumes.

Small datasets (digits, CIFAR, a small image folder) live in memory as one uint8 tensor and are
augmented a whole batch at a time: on a 2-core board this is several times faster than
per-image PIL transforms. Large image folders stream through a torch DataLoader with the same
augmentation semantics.

Randomness is derived from (seed, epoch) only (`EpochPlan`), so an epoch replays exactly after a
resume, and `rank`/`world` shard each epoch for DistributedDataParallel (torchrun) without a
sampler object. `device` puts each batch where the model is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from pdd_edge.data.dataset import Augment, Dataset  # noqa: F401 (re-exported; torch-free there)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed * 100_003 + epoch)
    return g


@dataclass(frozen=True)
class EpochPlan:
    """One rank's share of one epoch: which samples, in what order, and each one's augmentation.

    Everything is drawn on the CPU from (seed, epoch) for the whole epoch before it is split by
    rank, and augmentation belongs to a sample's position in the epoch order, not to the batch
    it lands in. So an epoch replays exactly after a resume, on any device, and the union of the
    ranks' k-th batches (rank r takes positions r, r + world, ...) is exactly the k-th batch of a
    single process with the global batch size: the same images with the same crops and flips.
    """

    order: torch.Tensor  # sample indices, this rank's share
    shift_y: torch.Tensor | None = None  # crop offsets into the zero-padded image, per sample
    shift_x: torch.Tensor | None = None
    flip: torch.Tensor | None = None  # horizontal flip, per sample

    @classmethod
    def draw(cls, n: int, *, shuffle: bool, augment: Augment | None, seed: int, epoch: int,
             rank: int = 0, world: int = 1) -> "EpochPlan":
        """Shuffled (training) orders are padded by wrapping, as DistributedSampler does, so that
        every rank runs the same number of steps (DDP needs that); evaluation orders are not
        padded, so each sample is counted exactly once across ranks."""
        g = epoch_generator(seed, epoch)
        order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
        if world > 1 and shuffle:
            order = torch.cat([order, order[: math.ceil(n / world) * world - n]])
        m = len(order)
        dy = dx = flip = None
        if augment is not None and augment.pad > 0:
            dy = torch.randint(0, 2 * augment.pad + 1, (m,), generator=g)
            dx = torch.randint(0, 2 * augment.pad + 1, (m,), generator=g)
        if augment is not None and augment.hflip:
            flip = torch.rand(m, generator=g) < 0.5
        mine = slice(rank, None, world)
        return cls(order[mine], *(None if t is None else t[mine] for t in (dy, dx, flip)))

    def batch_slices(self, batch_size: int, drop_last: bool = False) -> Iterator[slice]:
        stop = len(self.order) - (len(self.order) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            yield slice(start, start + batch_size)

    def augment(self, x: torch.Tensor, part: slice, aug: Augment | None) -> torch.Tensor:
        """The planned crops and flips of the samples at `part`, applied to their float batch
        `x` (on whatever device `x` lives)."""
        if aug is None:
            return x
        if self.shift_y is not None and self.shift_x is not None:
            x = crop_shifted(x, aug.pad, self.shift_y[part].to(x.device), self.shift_x[part].to(x.device))
        if self.flip is not None:
            flip = self.flip[part].to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x


def crop_shifted(x: torch.Tensor, pad: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Each image of an NCHW batch zero-padded by `pad` and cropped back to its size at (dy, dx)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dev = x.device
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # n,1,h,1
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]  # n,1,1,w
    batch = torch.arange(n, device=dev)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=dev)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def to_device(t: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    """A CPU batch on `device`; pinned first for CUDA, so that the copy runs asynchronously."""
    if device is None or device.type == "cpu":
        return t
    if device.type == "cuda":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


@dataclass
class TensorSource:
    """Images as one uint8 NCHW tensor in memory, labels as int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batches(self, batch_size: int, *, shuffle: bool, augment: Augment | None, seed: int, epoch: int,
                rank: int = 0, world: int = 1, drop_last: bool = False, device: torch.device | None = None,
                workers: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        plan = EpochPlan.draw(len(self), shuffle=shuffle, augment=augment, seed=seed, epoch=epoch, rank=rank, world=world)
        for part in plan.batch_slices(batch_size, drop_last):
            idx = plan.order[part]
            # The uint8 batch travels (a quarter of the float bytes); scaling and augmentation run on the device.
            x = to_device(self.images[idx], device).float().div_(255.0)
            yield plan.augment(x, part, augment), to_device(self.labels[idx], device)


def resize_uint8(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a uint8 NCHW tensor to `size` = (height, width) (bilinear, antialiased when either
    side shrinks)."""
    h, w = size
    if tuple(images.shape[-2:]) == (h, w):
        return images
    out = F.interpolate(images.float(), size=(h, w), mode="bilinear", align_corners=False,
                        antialias=h < images.shape[-2] or w < images.shape[-1])
    return out.round_().clamp_(0, 255).to(torch.uint8)
