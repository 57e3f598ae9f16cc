"""`pdd-edge evaluate`: top-1/top-5 of a checkpoint, or of an ONNX model run with onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from pdd_edge.cli import options
from pdd_edge.cli.console import err, out, print_json

from pdd_edge.errors import PddError, require_torch


def evaluate_command(
    path: Annotated[Optional[Path], typer.Argument(help="A checkpoint (.pt/.pth/.th) or an ONNX model (.onnx); or give it with --weights.")] = None,
    *,
    weights: Annotated[Optional[Path], typer.Option(help="The checkpoint or ONNX model to evaluate (same as PATH).")] = None,
    model: options.ThirdPartyModel = None,
    dataset: options.RecordedDataset = None,
    data_dir: options.DataDir = None,
    download: options.Download = False,
    input_size: options.InputSize = None,
    mean: options.Mean = None,
    std: options.Std = None,
    batch_size: Annotated[int, typer.Option(help="Evaluation batch size.")] = 500,
    device: Annotated[str, typer.Option(
        "--device", metavar="auto|cpu|cuda|cuda:N|mps",
        help="Where a PyTorch checkpoint runs (auto: CUDA when available, else CPU); ONNX models run on onnxruntime's CPU provider.")] = "auto",
    json_out: options.Json = False,
) -> None:
    """Measure top-1/top-5 on the validation split (ONNX models: on the file itself, with onnxruntime)."""
    if (path is None) == (weights is None):
        raise PddError("give the model to evaluate once: as PATH or as --weights PATH")
    path = path or weights
    from pdd_edge.stages.evaluate import evaluate_checkpoint, evaluate_onnx, is_onnx

    if not is_onnx(path):  # an ONNX model runs on onnxruntime: edge installs evaluate it on an image folder
        require_torch("pdd-edge evaluate of a PyTorch checkpoint")
    data, norm = options.data_config(dataset, data_dir, download, input_size), options.norm_override(mean, std)
    if is_onnx(path):
        if model is not None:
            raise PddError("--model names the architecture of third-party PyTorch weights; an ONNX model needs none")
        if device.strip().lower() not in ("auto", "cpu"):
            raise PddError(f"--device {device}: an ONNX model is evaluated with onnxruntime on the CPU; "
                           "drop --device, or evaluate the PyTorch checkpoint on that device")
        result = evaluate_onnx(path, data, norm=norm, batch_size=batch_size)
    else:
        from pdd_edge.training.setup import resolve_device

        result = evaluate_checkpoint(path, data, model_name=model, norm=norm, batch_size=batch_size,
                                     device=resolve_device(device))
    print_result(result, json_out)


def print_result(result: dict, json_out: bool) -> None:
    if json_out:
        print_json(result)
        return
    kind = "masked " if result.get("masked") else ("pruned " if result.get("pruned") else "")
    form = ""
    if result["format"] == "onnx":
        quant = result.get("quantization")
        form = f" (ONNX, INT8 {quant['method']})" if quant else " (ONNX)"
        if not result["preprocess_source"].startswith("model metadata"):
            err.print(f"normalisation from {result['preprocess_source']}: mean {result['preprocess']['mean']}, "
                      f"std {result['preprocess']['std']}")
    out.print(f"{result['path']}: {kind}{result['model']}{form} on {result['dataset']} val ({result['count']} images): "
              f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  loss {result['loss']:.4f}")
