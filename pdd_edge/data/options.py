"""Dataset options as the commands give them, and how a model is matched to its data.

`DataConfig` and `NormOverride` are what the command line says; `dataset_for` and
`resolve_preprocess` decide which images a model sees and how they are normalised (command line >
the checkpoint's record > the dataset's default), refusing mismatched sizes and class counts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pdd_edge.data import load_dataset
from pdd_edge.data.catalog import check_dataset
from pdd_edge.data.checkpoint_info import CheckpointInfo
from pdd_edge.data.preprocess import Preprocess, height_width, size_option
from pdd_edge.errors import PddError, shortlist

if TYPE_CHECKING:
    from pdd_edge.data.base import Dataset


@dataclass(frozen=True)
class DataConfig:
    name: str | None = "digits"  # None: the dataset the model records (see `for_model`)
    data_dir: str | None = None
    download: bool = False
    input_size: tuple[int, int] | None = None  # (height, width); an int n means (n, n)

    def __post_init__(self) -> None:
        if self.input_size is not None:
            object.__setattr__(self, "input_size", height_width(self.input_size))

    def for_model(self, dataset: str | None, input_hw: tuple[int, int] | None, what: str,
                  data_dir: str | None = None) -> "DataConfig":
        """This config, completed from what the model `what` records: the dataset when none was
        named (with the folder it was read from, if recorded), and the model's input size (height,
        width) when no --input-size was given."""
        name = self.name if self.name is not None else dataset
        if name is None:
            raise PddError(f"{what} does not record the dataset it was trained on; pass --dataset")
        size = self.input_size if self.input_size is not None else input_hw
        folder = self.data_dir if self.data_dir is not None or name != dataset else data_dir
        return replace(self, name=name, input_size=size, data_dir=folder)

    def check(self) -> None:
        """The cheap checks of `load` (name, data folder), for a command about to create its output."""
        if self.name is not None:
            check_dataset(self.name, data_dir=self.data_dir, download=self.download)

    def load(self) -> "Dataset":
        if self.name is None:
            raise PddError("no dataset given; pass --dataset")
        return load_dataset(self.name, data_dir=self.data_dir, download=self.download, input_size=self.input_size)


@dataclass(frozen=True)
class NormOverride:
    """`--mean/--std` from the command line (None: keep what the checkpoint or dataset says), and
    for a teacher `--teacher-input-size`: the size its third-party weights were trained at."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    input_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.input_size is not None:
            object.__setattr__(self, "input_size", height_width(self.input_size))


def resolve_preprocess(dataset: "Dataset", info: "CheckpointInfo" | None, override: NormOverride,
                       *, any_size: bool = False) -> Preprocess:
    """Command-line override > the checkpoint's own record > the dataset's default.

    `any_size`: the model gets the dataset's images resized to its own input size (a teacher of
    another resolution than the student's), so its size need not be the dataset's."""
    base = info.preprocess if info is not None and info.preprocess is not None else dataset.preprocess
    pre = base.with_overrides(mean=override.mean, std=override.std, input_size=override.input_size)
    if pre.input_size != dataset.input_hw and not any_size:
        raise PddError(
            f"the model expects {pre.input_size[0]}x{pre.input_size[1]} inputs but the dataset gives "
            f"{dataset.input_hw[0]}x{dataset.input_hw[1]}; pass --input-size {size_option(pre.input_size)}"
        )
    return pre


def check_classes(info: "CheckpointInfo", dataset: "Dataset", role: str, *, names: bool = True) -> None:
    """The model's outputs mean the dataset's classes: same count and, where the model records them,
    the same names in the same order (`names=False` for weights that only initialise a student)."""
    if info.num_classes != dataset.num_classes:
        raise PddError(
            f"the {role} ({info.path}) predicts {info.num_classes} classes but {dataset.name} has "
            f"{dataset.num_classes}; use a {role} trained on this dataset"
        )
    if names:
        check_class_names(info.classes, dataset, f"the {role} ({info.path})")


def check_class_names(recorded: "list[str] | None", dataset: "Dataset", what: str) -> None:
    """Refuse a model whose recorded class names are not the dataset's, index for index: with the
    same count, its scores would count a 'cat' prediction on a 'dog' label as right."""
    if not recorded or list(recorded) == list(dataset.classes):
        return
    how = ("the same names in another order" if sorted(recorded) == sorted(dataset.classes) else
           f"only the model has {shortlist(sorted(set(recorded) - set(dataset.classes)))}; only the dataset has "
           f"{shortlist(sorted(set(dataset.classes) - set(recorded)))}")
    i = next(i for i, (a, b) in enumerate(zip(recorded, dataset.classes)) if a != b)
    raise PddError(f"{what} was trained on other class names than {dataset.name}'s ({how}; first difference: "
                   f"output {i} is {recorded[i]!r}, the dataset's class {i} is {dataset.classes[i]!r}); "
                   "its labels would not line up: use the dataset it was trained on")


def dataset_for(info: "CheckpointInfo", data: DataConfig, norm: NormOverride) -> tuple["Dataset", Preprocess]:
    """The dataset a loaded checkpoint is measured on (by default the one it records, at its input
    size) and the preprocessing that feeds it."""
    hw = info.preprocess.input_size if info.preprocess is not None else None
    recorded = info.record.get("data")
    recorded_dir = recorded.get("data_dir") if isinstance(recorded, dict) else None
    dataset = data.for_model(info.dataset, hw, info.path, recorded_dir).load()
    check_classes(info, dataset, "model")
    return dataset, resolve_preprocess(dataset, info, norm)
