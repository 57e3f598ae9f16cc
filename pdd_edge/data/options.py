"""Pieces several training stages share: dataset options, preprocessing resolution, model checks."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from pdd_edge.checkpoint import CheckpointInfo
from pdd_edge.data import load_dataset
from pdd_edge.data.base import Dataset
from pdd_edge.errors import PddError
from pdd_edge.nn.masks import kept_fraction, mask_points, open_counts
from pdd_edge.preprocess import Preprocess


@dataclass(frozen=True)
class DataConfig:
    name: str | None = "digits"  # None: the dataset the model records (see `for_model`)
    data_dir: str | None = None
    download: bool = False
    input_size: int | None = None

    def for_model(self, dataset: str | None, input_hw: tuple[int, int] | None, what: str,
                  data_dir: str | None = None) -> "DataConfig":
        """This config, completed from what the model `what` records: the dataset when none was
        named (with the folder it was read from, if recorded), and the model's (square) input
        size when no --input-size was given."""
        name = self.name if self.name is not None else dataset
        if name is None:
            raise PddError(f"{what} does not record the dataset it was trained on; pass --dataset")
        size = self.input_size
        if size is None and input_hw is not None and input_hw[0] == input_hw[1]:
            size = input_hw[0]
        folder = self.data_dir if self.data_dir is not None or name != dataset else data_dir
        return replace(self, name=name, input_size=size, data_dir=folder)

    def load(self) -> Dataset:
        if self.name is None:
            raise PddError("no dataset given; pass --dataset")
        return load_dataset(self.name, data_dir=self.data_dir, download=self.download, input_size=self.input_size)


@dataclass(frozen=True)
class NormOverride:
    """`--mean/--std` from the command line (None: keep what the checkpoint or dataset says)."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


def resolve_preprocess(dataset: Dataset, info: CheckpointInfo | None, override: NormOverride) -> Preprocess:
    """Command-line override > the checkpoint's own record > the dataset's default."""
    base = info.preprocess if info is not None and info.preprocess is not None else dataset.preprocess
    pre = base.with_overrides(mean=override.mean, std=override.std)
    if pre.input_size != dataset.input_hw:
        raise PddError(
            f"the model expects {pre.input_size[0]}x{pre.input_size[1]} inputs but the dataset gives "
            f"{dataset.input_hw[0]}x{dataset.input_hw[1]}; pass --input-size {pre.input_size[0]}"
        )
    return pre


def check_classes(info: CheckpointInfo, dataset: Dataset, role: str) -> None:
    if info.num_classes != dataset.num_classes:
        raise PddError(
            f"the {role} ({info.path}) predicts {info.num_classes} classes but {dataset.name} has "
            f"{dataset.num_classes}; use a {role} trained on this dataset"
        )


def dataset_for(info: CheckpointInfo, data: DataConfig, norm: NormOverride) -> tuple[Dataset, Preprocess]:
    """The dataset a loaded checkpoint is measured on (by default the one it records, at its input
    size) and the preprocessing that feeds it."""
    hw = info.preprocess.input_size if info.preprocess is not None else None
    recorded = info.record.get("data")
    recorded_dir = recorded.get("data_dir") if isinstance(recorded, dict) else None
    dataset = data.for_model(info.dataset, hw, info.path, recorded_dir).load()
    check_classes(info, dataset, "model")
    return dataset, resolve_preprocess(dataset, info, norm)


def mask_stats(model: nn.Module, input_hw: tuple[int, int], dense_macs: int) -> dict[str, Any]:
    """Kept channels and MACs/params of the masked network (only open channels counted)."""
    cost = model.cost(open_counts(model), input_hw).as_ints()  # type: ignore[operator]
    return {
        "kept_pct": 100.0 * kept_fraction(model),
        "masked_macs": cost["macs"],
        "masked_params": cost["params"],
        "macs_reduction_pct": 100.0 * (1 - cost["macs"] / dense_macs),
    }


def dense_cost(model: nn.Module, input_hw: tuple[int, int]) -> dict[str, int]:
    return model.cost(mask_points(model), input_hw).as_ints()  # type: ignore[operator]
