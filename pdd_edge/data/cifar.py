"""CIFAR-10 / CIFAR-100 through torchvision, from `--data-dir` (downloaded only with `--download`).

torchvision checks the MD5 of every batch file before it unpickles it, so only the official
files are ever unpickled: a foreign file in the data folder is rejected, not executed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pdd_edge.data.base import Augment, Dataset, TensorSource, resize_uint8
from pdd_edge.data.preprocess import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, Preprocess, height_width
from pdd_edge.errors import PddError

_INFO = {
    "cifar10": ("CIFAR10", "cifar-10-batches-py", CIFAR10_MEAN, CIFAR10_STD, "about 170 MB"),
    "cifar100": ("CIFAR100", "cifar-100-python", CIFAR100_MEAN, CIFAR100_STD, "about 170 MB"),
}


def load_cifar(name: str, *, data_dir: str | Path | None, download: bool,
               input_size: int | tuple[int, int] = (32, 32)) -> Dataset:
    import torchvision.datasets as tvd

    hw = height_width(input_size)
    cls_name, folder, mean, std, size = _INFO[name]
    if data_dir is None:
        raise PddError(f"{name} needs --data-dir: the folder that holds (or will hold, with --download) {folder}/")
    root = Path(data_dir)
    cls = getattr(tvd, cls_name)
    try:
        train = cls(root=str(root), train=True, download=download)
        val = cls(root=str(root), train=False, download=download)
    except RuntimeError:
        raise PddError(
            f"{name} not found (or corrupted) in {root}: expected {root / folder}/; "
            f"add --download to fetch it ({size}) or point --data-dir at the folder that contains {folder}/"
        ) from None
    except OSError as exc:
        raise PddError(f"cannot read {name} from {root}: {exc}") from None

    def source(ds) -> TensorSource:
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
        return TensorSource(resize_uint8(x, hw), torch.tensor(ds.targets, dtype=torch.long))

    return Dataset(
        name=name,
        train=source(train),
        val=source(val),
        classes=list(train.classes),
        preprocess=Preprocess(mean=mean, std=std, input_size=hw),
        augment=Augment.for_size(hw, hflip=True),
    )
