"""`pdd-edge quantize`: INT8 with onnxruntime, top-1 of FP32 and INT8 measured on the files."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from pdd_edge.cli import options
from pdd_edge.cli.console import out, print_json, size

from pdd_edge.errors import PddError, require_torch
from pdd_edge.fileio import check_output


def quantize_command(
    model_path: options.OnnxPath,
    *,
    out_path: options.Out,
    dataset: options.RecordedDataset = None,
    data_dir: options.DataDir = None,
    download: options.Download = False,
    input_size: options.InputSize = None,
    mean: options.Mean = None,
    std: options.Std = None,
    method: Annotated[str, typer.Option(help="static: QDQ with calibrated activation ranges; dynamic: activation ranges at run time.")] = "static",
    calibration_size: Annotated[Optional[int], typer.Option(help="Training images to calibrate on (static only; default 256).")] = None,
    activation_type: Annotated[str, typer.Option(help="Static activations: uint8 (x86) or int8 (ARM).")] = "uint8",
    reduce_range: Annotated[bool, typer.Option("--reduce-range", help="7-bit weights, for x86 CPUs without VNNI.")] = False,
    quant_format: Annotated[str, typer.Option("--format", help="Static INT8 as qdq (Quantize/DequantizeLinear pairs) or qoperator (QLinearConv-style ops).")] = "qdq",
    per_channel: Annotated[bool, typer.Option("--per-channel/--per-tensor", help="One weight scale per output channel, or one per tensor.")] = True,
    json_out: options.Json = False,
) -> None:
    """Quantize to INT8 with onnxruntime; top-1 of the FP32 and INT8 files measured side by side."""
    require_torch("pdd-edge quantize")  # calibration and validation images are read with torch
    from pdd_edge.stages import quantize

    if method == "dynamic" and calibration_size is not None:
        raise PddError("--calibration-size applies to --method static; dynamic quantization uses no calibration data")
    cfg = quantize.QuantizeConfig(
        data=options.data_config(dataset, data_dir, download, input_size), norm=options.norm_override(mean, std), method=method,
        calibration_size=quantize.DEFAULT_CALIBRATION_SIZE if calibration_size is None else calibration_size,
        activation_type=activation_type, reduce_range=reduce_range, format=quant_format, per_channel=per_channel,
    )
    check_output(out_path, model_path)
    r = quantize.quantize_model(cfg, model_path, out_path)
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
