"""An image folder read with PIL and numpy alone: what an edge install (no PyTorch) evaluates ONNX models on.

The listing and the decoding are torchvision `ImageFolder`'s: sorted class folders, files in sorted
`os.walk` order, its image extensions, and each image `convert("RGB").resize((w, h), BILINEAR)`. So
this reader gives the very same uint8 pixels, labels and class order as the torch path
(`data.imagefolder`, which decodes with `read_image` too), and an ONNX model scores the same on both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pdd_edge.data.dataset import Augment, Dataset
from pdd_edge.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, height_width
from pdd_edge.errors import PddError, require_torch, shortlist

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's


def read_image(path: str, size: tuple[int, int]) -> np.ndarray:
    """One image as uint8 CHW RGB at `size` (height, width); an unreadable file is a PddError naming it."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pillow is a base dependency; a broken install still gets one line
        raise PddError("reading an image folder needs Pillow; install it: pip install pillow") from None
    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)  # PIL takes (width, height)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise PddError(f"imagefolder: cannot read image {path} ({exc}); remove or replace it") from None


def list_images(split_dir: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """The class names and (path, label) samples of one split, in torchvision ImageFolder's order."""
    classes = sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir())
    if not classes:
        raise PddError(f"imagefolder: no images found under {split_dir} (no class folders)")
    samples: list[tuple[str, int]] = []
    empty = []
    for label, name in enumerate(classes):
        before = len(samples)
        for root, _, files in sorted(os.walk(split_dir / name, followlinks=True)):
            samples += [(os.path.join(root, f), label) for f in sorted(files) if f.lower().endswith(IMG_EXTENSIONS)]
        if len(samples) == before:
            empty.append(name)
    if empty:
        raise PddError(f"imagefolder: no images found under {split_dir} (no image in class folder "
                       f"{shortlist(empty)}; image extensions: {', '.join(IMG_EXTENSIONS)})")
    return classes, samples


def check_same_classes(train: list[str], val: list[str]) -> None:
    if train != val:
        only_train = shortlist(sorted(set(train) - set(val)))
        only_val = shortlist(sorted(set(val) - set(train)))
        raise PddError(
            f"imagefolder: train/ and val/ have different classes (only in train: {only_train}; only in val: {only_val})"
        )


@dataclass
class FileSource:
    """A split decoded batch by batch, in listing order: evaluation only (no shuffle, no augmentation)."""

    samples: list[tuple[str, int]]
    size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.samples)

    def batches(self, batch_size: int, *, shuffle: bool, augment: Augment | None,
                **_: object) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Float32 NCHW images in [0, 1] and int64 labels, as the torch sources give them."""
        if shuffle or augment is not None:
            # A shuffled or augmented epoch must match the torch sources' draws; only torch gives those.
            require_torch("a shuffled or augmented pass over an image folder")
        for start in range(0, len(self.samples), batch_size):
            part = self.samples[start:start + batch_size]
            images = np.stack([read_image(path, self.size) for path, _ in part])
            yield images.astype(np.float32) / np.float32(255.0), np.array([label for _, label in part], dtype=np.int64)


def load_image_files(data_dir: str | Path, *, input_size: int | tuple[int, int] = (32, 32)) -> Dataset:
    """`imagefolder` without torch: the same splits, classes and defaults as `data.imagefolder.load_imagefolder`."""
    size = height_width(input_size)
    root = Path(data_dir)  # check_dataset has seen root, train/ and val/
    (train_classes, train), (val_classes, val) = list_images(root / "train"), list_images(root / "val")
    check_same_classes(train_classes, val_classes)
    return Dataset(
        name="imagefolder",
        train=FileSource(train, size),
        val=FileSource(val, size),
        classes=train_classes,
        preprocess=Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=size),
        augment=Augment.for_size(size, hflip=True),
    )
