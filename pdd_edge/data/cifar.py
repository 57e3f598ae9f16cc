"""CIFAR-10 / CIFAR-100 through torchvision, from `--data-dir` (downloaded only with `--download`).

torchvision checks the MD5 of every batch file before it unpickles it, so only the official
files are ever unpickled: a foreign file in the data folder is rejected, not executed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pdd_edge.data.base import Augment, Dataset, TensorSource, resize_uint8
from pdd_edge.data.catalog import check_dataset, cifar_missing
from pdd_edge.data.preprocess import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, Preprocess, height_width
from pdd_edge.errors import PddError

_INFO = {
    "cifar10": ("CIFAR10", CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": ("CIFAR100", CIFAR100_MEAN, CIFAR100_STD),
}


def load_cifar(name: str, *, data_dir: str | Path | None, download: bool,
               input_size: int | tuple[int, int] = (32, 32)) -> Dataset:
    import torchvision.datasets as tvd

    hw = height_width(input_size)
    cls_name, mean, std = _INFO[name]
    check_dataset(name, data_dir=data_dir, download=download)  # --data-dir given, and the folder there
    root = Path(data_dir)
    cls = getattr(tvd, cls_name)
    try:
        train = cls(root=str(root), train=True, download=download)
        val = cls(root=str(root), train=False, download=download)
    except RuntimeError:
        raise cifar_missing(name, root) from None
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
