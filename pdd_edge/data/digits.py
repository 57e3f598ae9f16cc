"""`digits`: the 1,797 real 8x8 handwritten digits that ship inside scikit-learn.

Upsampled to 32x32 (or `input_size`, height by width) and replicated to RGB so that CIFAR
architectures take them unchanged. The train/val split is stratified and fixed (seed 0, 20 %
validation) whatever the training seed, so results of different runs are comparable. No
horizontal flip: a mirrored digit is another glyph.
"""

from __future__ import annotations

import numpy as np
import torch

from pdd_edge.data.base import Augment, Dataset, TensorSource, resize_uint8
from pdd_edge.data.preprocess import Preprocess, height_width

VAL_FRACTION = 0.2
SPLIT_SEED = 0


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def load_digits(input_size: int | tuple[int, int] = (32, 32)) -> Dataset:
    from sklearn.datasets import load_digits as sk_load_digits

    size = height_width(input_size)
    bunch = sk_load_digits()
    pixels = np.asarray(bunch.images, dtype=np.float64) / 16.0  # values 0..16
    labels = np.asarray(bunch.target, dtype=np.int64)
    gray = torch.from_numpy(np.round(pixels * 255.0).astype(np.uint8))[:, None]  # N,1,8,8
    images = resize_uint8(gray, size).expand(-1, 3, -1, -1).contiguous()
    train_idx, val_idx = stratified_split(labels, VAL_FRACTION, SPLIT_SEED)
    train_x = images[torch.from_numpy(train_idx)]
    mean = round(float(train_x.float().mean() / 255.0), 4)
    std = round(float(train_x.float().std() / 255.0), 4)
    return Dataset(
        name="digits",
        train=TensorSource(train_x, torch.from_numpy(labels[train_idx])),
        val=TensorSource(images[torch.from_numpy(val_idx)], torch.from_numpy(labels[val_idx])),
        classes=[str(d) for d in range(10)],
        preprocess=Preprocess(mean=(mean,) * 3, std=(std,) * 3, input_size=size),
        augment=Augment.for_size(size, hflip=False),
    )
