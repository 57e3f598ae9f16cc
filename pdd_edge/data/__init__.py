"""Datasets: `digits` (built in), `cifar10`, `cifar100` and `imagefolder`.

Every dataset yields float RGB images in [0, 1] at its input size and integer labels; the
normalisation belongs to each *model* (a teacher is fed with its own mean/std), so it is
applied in the training step, not here.

Importing this package loads no torch: `data.preprocess` is read by torch-free edge installs, and
there `imagefolder` is read with PIL and numpy (`data.image_files`) to evaluate ONNX models.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pdd_edge.data.catalog import check_dataset
from pdd_edge.data.preprocess import height_width
from pdd_edge.errors import require_torch, torch_installed

if TYPE_CHECKING:
    from pdd_edge.data.base import Dataset

DEFAULT_INPUT_SIZE = (32, 32)
# Read with scikit-learn (digits) or torchvision (CIFAR's pickled batches): training installs only.
TORCH_DATASETS = ("digits", "cifar10", "cifar100")


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    input_size: int | tuple[int, int] | None = None,
) -> "Dataset":
    """Load a dataset by name, its images resized to `input_size` (height, width; default 32x32);
    every failure is a `PddError` that says how to fix it."""
    key = name.lower()
    if key in TORCH_DATASETS:  # before its folder is checked: no folder makes it readable without torch
        require_torch(f"the {key} dataset")
    check_dataset(name, data_dir=data_dir, download=download)
    size = DEFAULT_INPUT_SIZE if input_size is None else height_width(input_size)
    if key == "digits":
        from pdd_edge.data.digits import load_digits

        return load_digits(input_size=size)
    if key in ("cifar10", "cifar100"):
        from pdd_edge.data.cifar import load_cifar

        return load_cifar(key, data_dir=data_dir, download=download, input_size=size)
    if not torch_installed():  # an edge install evaluates ONNX models on image folders too
        from pdd_edge.data.image_files import load_image_files

        return load_image_files(data_dir, input_size=size)
    from pdd_edge.data.imagefolder import load_imagefolder

    return load_imagefolder(data_dir, input_size=size)
