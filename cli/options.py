"""The command-line options several commands share (one definition, one help text each), the
parsers of their values, and their conversion into the library's configs.

A parser that meets a malformed value raises PddError (a usage error, exit code 2), except the
callbacks typer runs while it reads the command line (`--input-size`, a model spec), which stop
the command before any work through `console.fail`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from pdd_edge.cli.console import fail
from pdd_edge.errors import PddError


def parse_floats(text: str | None, what: str, count: int | None = None) -> tuple[float, ...] | None:
    """Parse '0.485,0.456,0.406' into floats; a malformed list is a usage error."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise PddError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not values or (count is not None and len(values) != count):
        want = f"{count} " if count else ""
        raise PddError(f"{what} needs {want}comma-separated numbers, got {text!r}")
    return values


def parse_ints(text: str | None, what: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise PddError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise PddError(f"{what} needs at least one integer, got {text!r}")
    return values


def parse_input_size(text: str | None, option: str = "--input-size") -> tuple[int, int] | None:
    """`--input-size` as (height, width): '32' is a square, '24,40' or '24x40' is height by width."""
    if text is None:
        return None
    found = re.fullmatch(r"\s*([0-9]+)\s*(?:[,xX]\s*([0-9]+)\s*)?", text)
    hw = (int(found[1]), int(found[2] or found[1])) if found else (0, 0)
    if min(hw) < 1:
        raise typer.BadParameter(f"{option} must be H (square) or H,W (height,width; or HxW) in positive pixels, "
                                 f"e.g. 32 or 24,40; got {text!r}", param_hint=option)
    return hw


def _input_size_option(param: typer.CallbackParam, text: str | None) -> tuple[int, int] | None:
    """Parse while the command line is read, so a bad size stops the command before any work, and
    report it as one line like every other usage error (typer would draw a box around it)."""
    try:
        return parse_input_size(text, "--" + str(param.name).replace("_", "-"))
    except typer.BadParameter as exc:
        raise fail(escape(exc.message), 2) from None


# --- option types shared by several commands (one definition, one help text) -----------------
Dataset = Annotated[str, typer.Option("--dataset", "-d", help="digits (built in), cifar10, cifar100 or imagefolder.")]
RecordedDataset = Annotated[Optional[str], typer.Option(
    "--dataset", "-d", help="digits (built in), cifar10, cifar100 or imagefolder (default: the dataset the model records).")]
DataDir = Annotated[Optional[Path], typer.Option(help="Folder with the dataset (CIFAR batches, or train/ and val/ for imagefolder).")]
Download = Annotated[bool, typer.Option("--download", help="Download CIFAR into --data-dir if it is missing.")]
InputSize = Annotated[Optional[str], typer.Option(
    metavar="H|H,W", callback=_input_size_option,
    help="Resize images to H (square) or H,W (height,width; HxW also works) (default: the model's input size where it records one, else 32).")]
TeacherInputSize = Annotated[Optional[str], typer.Option(
    metavar="H|H,W", callback=_input_size_option,
    help="Input size the teacher was trained at, for third-party teacher weights that do not record it "
         "(its batches are resized to it; default: the teacher's record, else the data's size).")]
Mean = Annotated[Optional[str], typer.Option(help="Override the model's normalisation mean, e.g. 0.485,0.456,0.406.")]
Std = Annotated[Optional[str], typer.Option(help="Override the model's normalisation std, e.g. 0.229,0.224,0.225.")]
Lr = Annotated[Optional[float], typer.Option("--lr", help="Initial SGD learning rate.")]
BatchSize = Annotated[Optional[int], typer.Option(help="Training batch size.")]
WeightDecay = Annotated[Optional[float], typer.Option(help="SGD weight decay (masks get the same, as in PDD).")]
Milestones = Annotated[Optional[str], typer.Option(help="Epochs at which lr is multiplied by 0.1, e.g. 20,40 (default: the paper's, scaled to --epochs).")]
LrSchedule = Annotated[str, typer.Option(
    metavar="step|cosine", help="Learning-rate schedule: step (x0.1 at --milestones) or cosine (from --lr to 0 over the run, no milestones).")]
Seed = Annotated[int, typer.Option(help="Random seed (weights, masks, data order, augmentation).")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from the last finished epoch in the output location.")]
ParityImages = Annotated[int, typer.Option(help="Validation images on which the output is compared with its source.")]
SPEC_FORMS = ("a zoo name (`pdd-edge models`), torchvision:NAME, timm:NAME, or path/to/file.py:FUNCTION "
              "(runs that file's code)")


def trusted_spec(text: str | None) -> str | None:
    """A model spec from the command line; naming a file here is what allows pdd-edge to run it
    (also when a checkpoint of that file's model is loaded)."""
    if text is None:
        return None
    from pdd_edge.zoo import specs

    try:
        specs.trust(specs.parse(text))
    except PddError as exc:
        raise fail(escape(str(exc)), exc.exit_code) from None
    return text


def model_args(items: list[str] | None) -> dict:
    """`--model-arg KEY=VALUE ...` as builder keyword arguments (a malformed item: PddError)."""
    from pdd_edge.zoo.specs import parse_model_args

    return parse_model_args(items)


ModelArg = Annotated[Optional[list[str]], typer.Option(
    "--model-arg", metavar="KEY=VALUE",
    help="Argument for a torchvision:/timm:/file.py: model's builder, e.g. width_mult=0.5 (repeatable; JSON literal or string).")]
FileModel = Annotated[Optional[str], typer.Option(
    "--model", "-m", callback=trusted_spec,
    help="The path/to/file.py:FUNCTION of a checkpoint made from your own model file: naming it allows pdd-edge to run that file.")]
ThirdPartyModel = Annotated[Optional[str], typer.Option(
    "--model", "-m", callback=trusted_spec,
    help=f"The model of third-party weights, or the file of a checkpoint made from your own model file: {SPEC_FORMS}.")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Device = Annotated[str, typer.Option(
    "--device", metavar="auto|cpu|cuda|cuda:N|mps",
    help="Where to train: auto = CUDA when available, else CPU (under torchrun: each rank's cuda:LOCAL_RANK). "
         "Checkpoints are always written with CPU tensors.")]
Amp = Annotated[str, typer.Option(
    "--amp", metavar="auto|bf16|fp16|off",
    help="Mixed precision of the forward passes: auto = bf16 on a CUDA GPU that supports it, else off; "
         "fp16 adds a gradient scaler. Losses and mask gates stay float32.")]
Workers = Annotated[Optional[int], typer.Option(
    "--workers", help="DataLoader worker processes decoding a streamed imagefolder (default: min(4, cores)); "
                      "in-memory datasets are batched in the training process.")]
SyncBn = Annotated[bool, typer.Option(
    "--sync-bn", help="Under torchrun on CUDA: BatchNorm statistics over the global batch (SyncBatchNorm).")]
# Opt-in speed-ups of the training step (issue 25): off until a GPU measurement decides the defaults.
ChannelsLast = Annotated[bool, typer.Option(
    "--channels-last", help="Train in channels-last (NHWC) memory format (opt-in; for GPU tensor cores).")]
FusedSgd = Annotated[bool, typer.Option(
    "--fused-sgd", help="Use torch's fused SGD kernel (opt-in; refused where this torch has none for the device).")]
Compile = Annotated[str, typer.Option(
    "--compile", metavar="off|on|cudagraphs",
    help="torch.compile the training step (on), or compile it into CUDA graphs (cudagraphs, CUDA only). Default off.")]
Warmup = Annotated[Optional[int], typer.Option(help="Epochs of linear learning-rate warm-up at the start (default 0).")]


# --- dataset and optimiser options as library configs --------------------------------------

def data_config(dataset: Optional[str], data_dir: Optional[Path], download: bool,
                input_size: tuple[int, int] | None):
    """The dataset options as a DataConfig; no --dataset (None) means the one the model records."""
    from pdd_edge.data.options import DataConfig

    return DataConfig(name=dataset.lower() if dataset else None, data_dir=str(data_dir) if data_dir else None, download=download,
                      input_size=input_size)


def norm_override(mean: Optional[str], std: Optional[str], what: str = "", input_size: tuple[int, int] | None = None):
    from pdd_edge.data.options import NormOverride

    return NormOverride(mean=parse_floats(mean, f"--{what}mean", 3), std=parse_floats(std, f"--{what}std", 3),
                        input_size=input_size)


def optim_overrides(lr, batch_size, weight_decay, milestones, seed, warmup_epochs=None, schedule="step") -> dict[str, Any]:
    return {"lr": lr, "batch_size": batch_size, "weight_decay": weight_decay, "seed": seed,
            "milestones": parse_ints(milestones, "--milestones"), "warmup_epochs": warmup_epochs, "schedule": schedule}


# --- the deployment commands' file arguments -----------------------------------------------
Out = Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write (only once every check passed).")]
OnnxPath = Annotated[Path, typer.Argument(help="The FP32 ONNX model (e.g. from `pdd-edge export`).")]
