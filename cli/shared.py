"""What several commands share: error reporting, option types, small parsers and printers.

One command per module lives beside this file (`cli/<command>.py`); anything two of them
need is defined here once.

Every command is registered through `command(app)`, which turns a `PddError` raised anywhere
below it into one line on stderr and the error's exit code (2 for bad input), a failure of the
machine (disk full, read-only file system: `errors.environment_error`) into one line with exit
code 3, and an interrupt into a short hint about `--resume` with exit code 130. Nothing else is
caught.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer
from rich.console import Console

from pdd_edge.errors import PddError, environment_error

F = TypeVar("F", bound=Callable[..., Any])

# stdout carries results (tables, JSON); stderr carries progress, warnings and errors, so that
# `pdd-edge ... --json > out.json` gives a clean file.
# Piped output (CI logs, files) gets wide tables instead of rich's default of 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


def fail(message: str, exit_code: int, every_rank: bool | None = None) -> typer.Exit:
    """One error line and the exit; `every_rank` as PddError's (default: true of usage errors)."""
    rank = _rank()
    if rank == 0:
        err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    elif not (exit_code == 2 if every_rank is None else every_rank):
        # Under torchrun rank 0 speaks for all; an error every rank meets (bad input, a divergence
        # seen in the all-reduced epoch) is printed once, but a failure of this rank alone (its
        # GPU, its shard) must still be seen.
        Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH).print(
            f"[bold red]error (rank {rank}):[/] {message}", markup=True, highlight=False)
    return typer.Exit(exit_code)


def _rank() -> int:
    """This process's rank under torchrun (0 without it)."""
    return int(os.environ.get("RANK", "0") or 0)


@contextlib.contextmanager
def training_runtime(device: str, amp: str, workers: int | None = None, sync_bn: bool = False,
                     channels_last: bool = False, fused_sgd: bool = False, compile_mode: str = "off"):
    """The Runtime of a training command: options checked before any work, torchrun's process
    group joined for the command's duration, and every rank but 0 silent (rank 0 prints and
    writes for all)."""
    from pdd_edge.training.runtime import Runtime

    rt = Runtime.from_options(device, amp, workers, sync_bn, channels_last, fused_sgd, compile_mode)
    quiet = out.quiet, err.quiet
    with rt.started():
        if not rt.dist.is_main:
            out.quiet = err.quiet = True
        try:
            yield rt
        finally:
            out.quiet, err.quiet = quiet


def warn_foreign(check: dict | None) -> None:
    """The loud warning of a `device_check` (profiling/provenance.py) whose measuring machine is not
    the target's device."""
    if check and check.get("foreign"):
        err.print(f"[bold yellow]warning: {_escape(check['message'])}[/]")


def command(app: typer.Typer, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """Register `fn` as a command of `app`, reporting user errors as one line."""

    def decorate(fn: F) -> F:
        # Only commands that can continue an interrupted run may promise it.
        resumable = "resume" in inspect.signature(fn).parameters
        on_interrupt = ("interrupted: finished stages and epochs are kept; re-run with --resume" if resumable
                        else "interrupted: nothing half-written was left behind")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            try:
                return fn(*args, **kw)
            except PddError as exc:
                raise fail(_escape(str(exc)), exc.exit_code, exc.every_rank) from None
            except KeyboardInterrupt:
                if _rank() == 0:  # torchrun passes Ctrl-C to every rank: one hint is enough
                    err.print(on_interrupt)
                raise typer.Exit(130) from None
            except (OSError, RuntimeError) as exc:
                env = environment_error(exc)  # disk full, read-only, no permission: exit 3
                if env is None:
                    raise  # a bug: its traceback is what gets it fixed
                raise fail(_escape(str(env)), env.exit_code) from None

        app.command(name, **kwargs)(wrapper)
        return fn

    return decorate


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


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
        raise fail(_escape(exc.message), 2) from None


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
        raise fail(_escape(str(exc)), exc.exit_code) from None
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


def optim_overrides(lr, batch_size, weight_decay, milestones, seed, warmup_epochs=None) -> dict[str, Any]:
    return {"lr": lr, "batch_size": batch_size, "weight_decay": weight_decay, "seed": seed,
            "milestones": parse_ints(milestones, "--milestones"), "warmup_epochs": warmup_epochs}


def print_fit_summary(result, best_path: Path, json_out: bool) -> None:
    best = result.summary()
    summary = {"checkpoint": str(best_path), "best_epoch": best.pop("epoch", None)}
    summary |= {k: v for k, v in best.items() if k != "epochs_run"}
    if json_out:
        print_json(summary)
    else:
        line = f"best epoch {summary['best_epoch']}: val top-1 {summary['val_top1']:.2f}%"
        if "masked_macs" in summary:
            line += (f", kept {summary['kept_pct']:.1f}% of channels, masked MACs {summary['masked_macs']:,}"
                     f" (-{summary['macs_reduction_pct']:.1f}%)")
        out.print(line)
        out.print(f"checkpoint: {best_path}")


# --- the deployment commands' file arguments and printers --------------------------------
Out = Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write (only once every check passed).")]
OnnxPath = Annotated[Path, typer.Argument(help="The FP32 ONNX model (e.g. from `pdd-edge export`).")]


def size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def print_json(result) -> None:
    """A result (dict, list or dataclass) as strict JSON on stdout: NaN or inf become null."""
    from pdd_edge.fileio import json_text

    data = asdict(result) if is_dataclass(result) and not isinstance(result, type) else result
    out.print_json(json_text(data, indent=None))


def print_parity(r, reference: str) -> None:
    out.print(f"parity vs {reference} on {r.parity_images} {r.dataset} val images: max |logit difference| "
              f"{r.parity_max_abs_diff:.2e} (limit {r.tolerance_rule})")
