"""Typer option declarations shared by several commands (one definition, one help text)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Dataset = Annotated[str, typer.Option("--dataset", "-d", help="digits (built in), cifar10, cifar100 or imagefolder.")]
RecordedDataset = Annotated[Optional[str], typer.Option(
    "--dataset", "-d", help="digits (built in), cifar10, cifar100 or imagefolder (default: the dataset the model records).")]
DataDir = Annotated[Optional[Path], typer.Option(help="Folder with the dataset (CIFAR batches, or train/ and val/ for imagefolder).")]
Download = Annotated[bool, typer.Option("--download", help="Download CIFAR into --data-dir if it is missing.")]
InputSize = Annotated[Optional[int], typer.Option(help="Resize images to this square size (default: the model's input size where it records one, else 32).")]
Mean = Annotated[Optional[str], typer.Option(help="Override the model's normalisation mean, e.g. 0.485,0.456,0.406.")]
Std = Annotated[Optional[str], typer.Option(help="Override the model's normalisation std, e.g. 0.229,0.224,0.225.")]
Epochs = Annotated[Optional[int], typer.Option(help="Training epochs.")]
Lr = Annotated[Optional[float], typer.Option("--lr", help="Initial SGD learning rate.")]
BatchSize = Annotated[Optional[int], typer.Option(help="Training batch size.")]
WeightDecay = Annotated[Optional[float], typer.Option(help="SGD weight decay (masks get the same, as in PDD).")]
Milestones = Annotated[Optional[str], typer.Option(help="Epochs at which lr is multiplied by 0.1, e.g. 20,40 (default: the paper's, scaled to --epochs).")]
Seed = Annotated[int, typer.Option(help="Random seed (weights, masks, data order, augmentation).")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from the last finished epoch in the output location.")]
ParityImages = Annotated[int, typer.Option(help="Validation images on which the output is compared with its source.")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Warmup = Annotated[Optional[int], typer.Option(help="Epochs of linear learning-rate warm-up at the start (default 0).")]
