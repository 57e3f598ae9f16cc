"""`imagefolder`: a user's own `train/<class>/*` and `val/<class>/*` images.

Images are resized to `input_size` (height, width). A folder that fits in `MEMORY_LIMIT_BYTES` at
that size is decoded once into memory (the fast path, same batched augmentation as CIFAR);
a larger one streams through a DataLoader with worker processes: they decode with PIL, or, when
training on CUDA, only read the files, and the JPEGs of a batch are decoded together on the GPU
(`jpeg_decoder`).
Default normalisation is ImageNet's mean/std; override it with `--mean/--std`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import torch

from pdd_edge.data.base import Augment, Dataset, EpochPlan, TensorSource, to_device
from pdd_edge.data.catalog import check_dataset
from pdd_edge.data.dataset import Source
from pdd_edge.data.image_files import check_same_classes, read_image
from pdd_edge.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, height_width
from pdd_edge.errors import PddError

MEMORY_LIMIT_BYTES = 2 * 1024**3


def _folder(root: Path, split: str):
    from torchvision.datasets import ImageFolder

    path = root / split  # a folder: check_dataset has seen it
    try:
        return ImageFolder(str(path))
    except (FileNotFoundError, RuntimeError) as exc:
        raise PddError(f"imagefolder: no images found under {path} ({exc})") from None


def _load_image(path: str, size: tuple[int, int]) -> torch.Tensor:
    return torch.from_numpy(read_image(path, size))  # the edge reader's decoding: the same pixels on both installs


class MemorySource:
    """Decodes the whole split into memory the first time it is iterated (evaluation never
    pays for decoding the training split), then serves batches from the tensor."""

    def __init__(self, folder, size: tuple[int, int], what: str) -> None:
        self.samples = list(folder.samples)
        self.size = size
        self.what = what
        self._tensor: TensorSource | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def decoded(self) -> TensorSource:
        if self._tensor is None:
            from rich.console import Console
            from rich.progress import Progress

            console = Console(stderr=True)
            images = torch.empty((len(self.samples), 3, *self.size), dtype=torch.uint8)
            with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
                task = progress.add_task(f"decoding {self.what} images", total=len(self.samples))
                for i, (path, _) in enumerate(self.samples):
                    images[i] = _load_image(path, self.size)
                    progress.advance(task)
            self._tensor = TensorSource(images, torch.tensor([t for _, t in self.samples], dtype=torch.long))
        return self._tensor

    def batches(self, batch_size: int, **kwargs) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.decoded().batches(batch_size, **kwargs)


def jpeg_decoder(device: torch.device | None) -> str:
    """Who decodes a streamed folder's JPEGs for batches on `device`: "nvjpeg" on CUDA
    (torchvision.io.decode_jpeg, a batch per call: PIL in a few CPU workers caps a GPU at a few
    thousand 224x224 images/s), "pil" elsewhere (the DataLoader workers, as always)."""
    return "nvjpeg" if device is not None and device.type == "cuda" else "pil"


class StreamSource:
    """Decodes images on the fly in DataLoader workers; for folders too large for memory."""

    def __init__(self, folder, size: tuple[int, int], workers: int | None = None) -> None:
        self.samples = list(folder.samples)
        self.size = size
        self.workers = min(4, os.cpu_count() or 1) if workers is None else workers

    def __len__(self) -> int:
        return len(self.samples)

    def batches(self, batch_size: int, *, shuffle: bool, augment: Augment | None, seed: int, epoch: int,
                rank: int = 0, world: int = 1, drop_last: bool = False, device: torch.device | None = None,
                workers: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from torch.utils.data import DataLoader

        plan = EpochPlan.draw(len(self), shuffle=shuffle, augment=augment, seed=seed, epoch=epoch, rank=rank, world=world)
        samples = [self.samples[i] for i in plan.order.tolist()]
        on_gpu = jpeg_decoder(device) == "nvjpeg"
        subset = _Encoded(samples, self.size) if on_gpu else _Indexed(samples, self.size)
        cuda = device is not None and device.type == "cuda"
        loader = DataLoader(subset, batch_size=batch_size, shuffle=False, drop_last=drop_last,
                            num_workers=self.workers if workers is None else workers, pin_memory=cuda and not on_gpu,
                            collate_fn=_encoded_batch if on_gpu else None)
        for part, (x, y) in zip(plan.batch_slices(batch_size, drop_last), loader):
            x = decode_batch(x, self.size, device) if on_gpu else to_device(x, device)
            yield plan.augment(x.float().div_(255.0), part, augment), to_device(y, device)


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, samples, size: tuple[int, int]) -> None:
        self.samples, self.size = samples, size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        return _load_image(path, self.size), label


JPEG_MAGIC = b"\xff\xd8\xff"


class _Encoded(_Indexed):
    """A worker's share of GPU decoding: a JPEG's bytes as read (decoded in the batch on the GPU),
    any other image decoded here with PIL, as the CPU path does."""

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise PddError(f"imagefolder: cannot read image {path} ({exc}); remove or replace it") from None
        if data.startswith(JPEG_MAGIC):
            return (path, torch.frombuffer(bytearray(data), dtype=torch.uint8)), label
        return (path, _load_image(path, self.size)), label


def _encoded_batch(items):
    """DataLoader collation of `_Encoded` items: the (path, bytes or pixels) list and the labels."""
    return [item for item, _ in items], torch.tensor([label for _, label in items], dtype=torch.long)


def decode_batch(items: list[tuple[str, torch.Tensor]], size: tuple[int, int],
                 device: torch.device | None) -> torch.Tensor:
    """uint8 (N, 3, H, W) on `device` from `_Encoded` items: the JPEGs decoded by one batched
    `decode_jpeg` call there, then each resized to `size` (bilinear with antialiasing, as PIL's)."""
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms.v2.functional import resize

    device = device or torch.device("cpu")
    jpegs = [i for i, (_, t) in enumerate(items) if t.dim() == 1]  # bytes; decoded pixels are (3, H, W)
    images = [t.to(device, non_blocking=True) for _, t in items]
    if jpegs:
        try:
            decoded = decode_jpeg([items[i][1] for i in jpegs], mode=ImageReadMode.RGB, device=device)
        except RuntimeError:
            decoded = [_decode_one(*items[i], device) for i in jpegs]  # names the file that fails
        for i, img in zip(jpegs, decoded):
            images[i] = resize(img, list(size), antialias=True)
    return torch.stack(images)


def _decode_one(path: str, data: torch.Tensor, device: torch.device) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as exc:
        raise PddError(f"imagefolder: cannot read image {path} ({exc}); remove or replace it") from None


def load_imagefolder(data_dir: str | Path, *, input_size: int | tuple[int, int] = (32, 32),
                     memory_limit: int = MEMORY_LIMIT_BYTES) -> Dataset:
    size = height_width(input_size)
    root = Path(data_dir)
    check_dataset("imagefolder", data_dir=root)
    train, val = _folder(root, "train"), _folder(root, "val")
    check_same_classes(train.classes, val.classes)
    per_image = 3 * size[0] * size[1]
    in_memory = (len(train.samples) + len(val.samples)) * per_image <= memory_limit
    train_src: Source
    val_src: Source
    if in_memory:
        train_src, val_src = MemorySource(train, size, "train"), MemorySource(val, size, "val")
    else:
        train_src, val_src = StreamSource(train, size), StreamSource(val, size)
    return Dataset(
        name="imagefolder",
        train=train_src,
        val=val_src,
        classes=list(train.classes),
        preprocess=Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=size),
        augment=Augment.for_size(size, hflip=True),
    )
