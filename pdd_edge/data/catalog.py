"""The datasets pdd-edge knows, and what can be checked of one without reading it.

A module of its own, below the loaders: `load_dataset` (the package) and the loaders it picks
(`cifar`, `imagefolder`) all check a dataset first, and none of them needs to import another.
"""

from __future__ import annotations

from pathlib import Path

from pdd_edge.errors import PddError

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
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
