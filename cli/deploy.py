"""`pdd-edge export`, `simplify` and `quantize`: the deployment chain, each artifact checked itself."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer

from pdd_edge.cli import options as o
from pdd_edge.cli._common import command, err, out
from pdd_edge.cli.app import app
from pdd_edge.cli.training import data_config, norm_override
from pdd_edge.errors import PddError, require_torch

Out = Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write (only once every check passed).")]
OnnxPath = Annotated[Path, typer.Argument(help="The FP32 ONNX model (e.g. from `pdd-edge export`).")]


def size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def print_json(result) -> None:
    out.print_json(json.dumps(asdict(result)))


def print_parity(r, reference: str) -> None:
    out.print(f"parity vs {reference} on {r.parity_images} {r.dataset} val images: max |logit difference| "
              f"{r.parity_max_abs_diff:.2e} (limit {r.tolerance:g})")


@command(app, "export")
def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="A pruned (or never-masked) checkpoint.")],
    *,
    out_path: Out,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Zoo model, for third-party weights only.")] = None,
    dataset: o.RecordedDataset = None,
    data_dir: o.DataDir = None,
    download: o.Download = False,
    input_size: o.InputSize = None,
    mean: o.Mean = None,
    std: o.Std = None,
    parity_images: o.ParityImages = 512,
    json_out: o.Json = False,
) -> None:
    """Export to ONNX (opset 18, dynamic batch, preprocessing in the metadata) and check it against PyTorch."""
    require_torch("pdd-edge export")
    from pdd_edge.onnx_eval import ParityConfig
    from pdd_edge.stages import export

    cfg = export.ExportConfig(data=data_config(dataset, data_dir, download, input_size), model=model,
                              norm=norm_override(mean, std), parity=ParityConfig(images=parity_images))
    r = export.run(cfg, checkpoint, out_path)
    if json_out:
        print_json(r)
        return
    out.print(f"{r.path}: {'pruned ' if r.pruned else ''}{r.model}, ONNX opset {r.opset}, {r.nodes} nodes, "
              f"{size(r.size_bytes)}")
    print_parity(r, "PyTorch")


@command(app, "simplify")
def simplify_command(
    model_path: OnnxPath,
    *,
    out_path: Out,
    dataset: o.RecordedDataset = None,
    data_dir: o.DataDir = None,
    download: o.Download = False,
    input_size: o.InputSize = None,
    mean: o.Mean = None,
    std: o.Std = None,
    parity_images: o.ParityImages = 512,
    json_out: o.Json = False,
) -> None:
    """Simplify with onnxsim (BatchNormalization folded into Conv) and check it against the original."""
    require_torch("pdd-edge simplify")  # the parity images are read with torch
    from pdd_edge.onnx_eval import ParityConfig
    from pdd_edge.stages import simplify

    cfg = simplify.SimplifyConfig(data=data_config(dataset, data_dir, download, input_size),
                                  norm=norm_override(mean, std), parity=ParityConfig(images=parity_images))
    r = simplify.run(cfg, model_path, out_path)
    if json_out:
        print_json(r)
        return
    out.print(f"{r.path}: nodes {r.nodes_before} -> {r.nodes_after}, BatchNormalization {r.batchnorm_before} -> "
              f"{r.batchnorm_after}, {size(r.size_before)} -> {size(r.size_after)}")
    print_parity(r, str(model_path))
    if r.batchnorm_after:
        err.print(f"note: {r.batchnorm_after} BatchNormalization nodes could not be folded "
                  "(their input is not the only use of a Conv output)")


@command(app, "quantize")
def quantize_command(
    model_path: OnnxPath,
    *,
    out_path: Out,
    dataset: o.RecordedDataset = None,
    data_dir: o.DataDir = None,
    download: o.Download = False,
    input_size: o.InputSize = None,
    mean: o.Mean = None,
    std: o.Std = None,
    method: Annotated[str, typer.Option(help="static: QDQ with calibrated activation ranges; dynamic: activation ranges at run time.")] = "static",
    calibration_size: Annotated[Optional[int], typer.Option(help="Training images to calibrate on (static only; default 256).")] = None,
    activation_type: Annotated[str, typer.Option(help="Static activations: uint8 (x86) or int8 (ARM).")] = "uint8",
    reduce_range: Annotated[bool, typer.Option("--reduce-range", help="7-bit weights, for x86 CPUs without VNNI.")] = False,
    json_out: o.Json = False,
) -> None:
    """Quantize to INT8 with onnxruntime; top-1 of the FP32 and INT8 files measured side by side."""
    require_torch("pdd-edge quantize")  # calibration and validation images are read with torch
    from pdd_edge.stages import quantize

    if method == "dynamic" and calibration_size is not None:
        raise PddError("--calibration-size applies to --method static; dynamic quantization uses no calibration data")
    cfg = quantize.QuantizeConfig(
        data=data_config(dataset, data_dir, download, input_size), norm=norm_override(mean, std), method=method,
        calibration_size=quantize.DEFAULT_CALIBRATION_SIZE if calibration_size is None else calibration_size,
        activation_type=activation_type, reduce_range=reduce_range,
    )
    r = quantize.run(cfg, model_path, out_path)
    if json_out:
        print_json(r)
        return
    how = (f"static QDQ, per-channel int8 weights, {activation_type} activations, calibrated on "
           f"{r.calibration_images} {r.dataset} train images" if r.method == "static"
           else "dynamic, per-channel int8 weights")
    out.print(f"{r.path}: INT8 ({how}), {size(r.size_int8)} (FP32 {size(r.size_fp32)}, "
              f"{r.size_fp32 / r.size_int8:.1f}x smaller)")
    out.print(f"top-1 on {r.dataset} val ({r.val_images} images, onnxruntime): FP32 {r.fp32_top1:.2f}%  "
              f"INT8 {r.int8_top1:.2f}%  ({r.int8_top1 - r.fp32_top1:+.2f} points)")
