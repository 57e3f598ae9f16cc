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

from pdd_edge.data.preprocess import height_width
from pdd_edge.errors import PddError, require_torch, torch_installed

if TYPE_CHECKING:
    from pdd_edge.data.base import Dataset

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
DEFAULT_INPUT_SIZE = (32, 32)
# Read with scikit-learn (digits) or torchvision (CIFAR's pickled batches): training installs only.
TORCH_DATASETS = ("digits", "cifar10", "cifar100")
CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}  # what torchvision unpacks


def check_dataset(name: str, *, data_dir: str | Path | None = None, download: bool = False) -> None:
    """What can be known of a dataset without reading it: a known name and the folder it comes from.

    `load_dataset` starts with it; a command that creates a run directory calls it first, so that
    a typo fails before anything is written rather than after the teacher has trained."""
    key = name.lower()
    if key not in DATASETS:
        raise PddError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if key in CIFAR_FOLDERS:
        if data_dir is None:
            raise PddError(f"{key} needs --data-dir: the folder that holds (or will hold, with --download) "
                           f"{CIFAR_FOLDERS[key]}/")
        if not download and not (Path(data_dir) / CIFAR_FOLDERS[key]).is_dir():
            raise cifar_missing(key, Path(data_dir))
    if key == "imagefolder":
        if data_dir is None:
            raise PddError("imagefolder needs --data-dir pointing at a folder with train/ and val/ subfolders")
        for folder in (Path(data_dir), Path(data_dir) / "train", Path(data_dir) / "val"):
            if not folder.is_dir():
                raise imagefolder_missing(folder)


def imagefolder_missing(folder: Path) -> PddError:
    return PddError(f"imagefolder: {folder} is missing; --data-dir must hold train/<class>/ and val/<class>/ folders")


def cifar_missing(key: str, root: Path) -> PddError:
    folder = CIFAR_FOLDERS[key]
    return PddError(f"{key} not found (or corrupted) in {root}: expected {root / folder}/; add --download to fetch "
                    f"it (about 170 MB) or point --data-dir at the folder that contains {folder}/")


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
