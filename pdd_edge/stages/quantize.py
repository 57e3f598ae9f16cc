"""`quantize`: INT8 with onnxruntime's quantization tools, judged by accuracy measured on the artifact.

- Pre-processing first: `quant_pre_process` (symbolic shape inference and onnxruntime's basic
  graph optimisations). onnxruntime's guide recommends it, and the quantizer needs the shapes it
  infers to quantize every tensor.
- `static` (default): QDQ format, which onnxruntime's CPU kernels are optimised for; int8
  weights quantized per output channel (conv filters of a pruned network differ in scale far
  more than a per-tensor scale can serve); uint8 activations, the guide's choice for x86 CPUs
  (`int8` suits ARM's symmetric kernels); MinMax ranges calibrated on the first N images of a
  fixed shuffle of the training split, so every class is seen and the validation split,
  which measures the result, is never used to make it.
- `dynamic`: int8 per-channel weights, activations quantized at run time; no calibration data.

The FP32 input and the INT8 output are both evaluated with onnxruntime on the validation split;
no accuracy is inferred from PyTorch.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TYPE_CHECKING

import numpy as np

from pdd_edge.artifact import RunDir
from pdd_edge.config import CompressConfig
from pdd_edge.data.options import DataConfig, NormOverride
from pdd_edge.errors import PddError
from pdd_edge.fileio import atomic_path
from pdd_edge.onnx import accuracy as onnx_accuracy
from pdd_edge.onnx import runtime
from pdd_edge.onnx.meta import copy_meta, write_meta
from pdd_edge.onnx.quiet import quiet
from pdd_edge.onnx.source import OnnxInput, open_onnx
from pdd_edge.stages import StageResult

if TYPE_CHECKING:
    from pdd_edge.training.setup import TrainSetup  # noqa: F401 (the stage signature)

METHODS = ("static", "dynamic")
FORMATS = ("qdq", "qoperator")  # static: QuantizeLinear/DequantizeLinear pairs, or QLinearConv-style ops
ACTIVATION_TYPES = ("uint8", "int8")
DEFAULT_CALIBRATION_SIZE = 256
CALIBRATION_BATCH = 32
# Ops that only a quantized graph contains: quantizing one again is refused.
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "ConvInteger",
                           "MatMulInteger", "QLinearMatMul"})


@dataclass(frozen=True)
class QuantizeConfig:
    data: DataConfig = field(default_factory=lambda: DataConfig(name=None))  # None: the model's dataset
    norm: NormOverride = field(default_factory=NormOverride)
    method: str = "static"
    calibration_size: int = DEFAULT_CALIBRATION_SIZE  # static only
    activation_type: str = "uint8"  # static only; dynamic quantization always uses uint8 activations
    reduce_range: bool = False  # 7-bit weights, for x86 CPUs without VNNI (onnxruntime's guide)
    format: str = "qdq"  # static only
    per_channel: bool = True  # int8 weights with one scale per output channel (else one per tensor)
    batch_size: int = 100  # evaluation batch

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise PddError(f"unknown quantization method {self.method!r}; choose one of: {', '.join(METHODS)}")
        if self.activation_type not in ACTIVATION_TYPES:
            raise PddError(f"unknown activation type {self.activation_type!r}; choose one of: {', '.join(ACTIVATION_TYPES)}")
        if self.method == "dynamic" and self.activation_type != "uint8":
            raise PddError("dynamic quantization always uses uint8 activations; --activation-type is for --method static")
        if self.format not in FORMATS:
            raise PddError(f"unknown INT8 format {self.format!r}; choose one of: {', '.join(FORMATS)}")
        if self.method == "dynamic" and self.format != "qdq":
            raise PddError("--format is for --method static; dynamic quantization writes integer ops itself")
        if self.method == "static" and self.calibration_size < 1:
            raise PddError(f"the calibration set is empty (calibration size {self.calibration_size}); "
                           "static quantization needs at least 1 training image")


@dataclass(frozen=True)
class QuantizeResult:
    path: str
    method: str
    dataset: str
    calibration_images: int  # 0 for dynamic quantization
    val_images: int
    fp32_top1: float
    fp32_top5: float
    int8_top1: float
    int8_top5: float
    size_fp32: int
    size_int8: int
    preprocess_source: str


def calibration_batches(src: OnnxInput, size: int) -> list[np.ndarray]:
    batches = [x for x, _ in src.train_batches(CALIBRATION_BATCH, size)]
    if not batches:
        raise PddError(f"the calibration set is empty: {src.data.name} has no training images")
    return batches


def _reader(batches: list[np.ndarray], input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._batches, None)
            return None if x is None else {input_name: x}

    return Reader()


@contextlib.contextmanager
def _working_dir(path: Path):
    """`contextlib.chdir` (Python 3.11+) for 3.10 too."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _quantize(cfg: QuantizeConfig, src: OnnxInput, calibration: list[np.ndarray], workdir: Path):
    """Pre-process and quantize `src` with onnxruntime; the INT8 ModelProto."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_dynamic,
        quantize_static,
    )

    prepared, int8 = workdir / "prepared.onnx", workdir / "int8.onnx"
    # onnxruntime's shape inference drops scratch files (sym_shape_infer_temp.onnx, <uuid>.data)
    # into the current directory: run it in our temporary folder, not the user's.
    source = Path(src.path).resolve()  # before leaving the caller's directory
    with quiet("", "onnxruntime"), _working_dir(workdir):
        try:
            try:
                quant_pre_process(src.model, str(prepared))
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises a bare Exception here
                if "symbolic shape inference" not in str(exc):
                    raise
                # Its symbolic shape inference gives up on some graphs (e.g. a Resize whose scales are
                # computed); ONNX's own shape inference still types them, which is all quantization needs.
                # Given a ModelProto, this path of quant_pre_process loses its weights: give it the file.
                quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            if cfg.method == "static":
                activations = QuantType.QUInt8 if cfg.activation_type == "uint8" else QuantType.QInt8
                quantize_static(
                    str(prepared), str(int8), _reader(calibration, src.io.input_name),
                    quant_format=QuantFormat.QDQ if cfg.format == "qdq" else QuantFormat.QOperator,
                    per_channel=cfg.per_channel, reduce_range=cfg.reduce_range, activation_type=activations,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                )
            else:
                quantize_dynamic(str(prepared), str(int8), per_channel=cfg.per_channel, reduce_range=cfg.reduce_range,
                                 weight_type=QuantType.QInt8)
        except Exception as exc:  # onnxruntime.quantization raises ValueError, RuntimeError, its own types
            raise PddError(f"onnxruntime cannot quantize {src.path}: {runtime.first_line(exc)}") from None
    return onnx.load(str(int8))


def quantization_record(cfg: QuantizeConfig, src: OnnxInput, calibration_images: int) -> dict[str, Any]:
    """What goes into the `pdd_edge.quantization` metadata key."""
    static = cfg.method == "static"
    return {
        "method": cfg.method,
        "format": ("QDQ" if cfg.format == "qdq" else "QOperator") if static
        else "dynamic (integer ops, activation ranges computed at run time)",
        "weights": "int8 per-channel" if cfg.per_channel else "int8 per-tensor",
        "activations": cfg.activation_type if static else "uint8",
        "reduce_range": cfg.reduce_range,
        "calibration": {"dataset": src.data.name, "split": "train", "images": calibration_images, "method": "minmax"}
        if static else None,
    }


def quantize_model(cfg: QuantizeConfig, model_path: str | Path, out: str | Path) -> QuantizeResult:
    import onnx

    src = open_onnx(model_path, cfg.data, cfg.norm)
    if src.meta.quantization is not None or QUANTIZED_OPS & set(runtime.op_counts(src.model)):
        raise PddError(f"{model_path} is already quantized; quantize the FP32 model it was made from")
    calibration = calibration_batches(src, cfg.calibration_size) if cfg.method == "static" else []
    n_calibration = sum(len(x) for x in calibration)
    with tempfile.TemporaryDirectory(prefix="pdd-edge-quantize-") as workdir:
        int8 = _quantize(cfg, src, calibration, Path(workdir))
    runtime.drop_unused_opsets(int8)  # a deployed file declares only what it needs (checked below)
    copy_meta(src.model, int8)
    # The preprocessing recorded is the one the ranges were calibrated with (--mean/--std included).
    write_meta(int8, replace(src.meta, preprocess=src.preprocess,
                             quantization=quantization_record(cfg, src, n_calibration)))
    runtime.check_graph(int8, f"the INT8 model of {model_path}")

    fp32 = onnx_accuracy.score(src.session(), src.io, src.val_batches(cfg.batch_size))
    int8_io = runtime.graph_io(int8, out)
    int8_metrics = onnx_accuracy.score(runtime.session(int8, what=f"the INT8 model of {model_path}"), int8_io,
                                      src.val_batches(cfg.batch_size))
    with atomic_path(out) as tmp:
        onnx.save(int8, tmp)
    return QuantizeResult(
        path=str(out), method=cfg.method, dataset=src.data.name, calibration_images=n_calibration,
        val_images=int8_metrics["count"], fp32_top1=fp32["top1"], fp32_top5=fp32["top5"],
        int8_top1=int8_metrics["top1"], int8_top5=int8_metrics["top5"], size_fp32=src.path.stat().st_size,
        size_int8=Path(out).stat().st_size, preprocess_source=src.preprocess_source,
    )


# --- the pipeline stage ------------------------------------------------------------------------

def config(cfg: CompressConfig) -> QuantizeConfig:
    """Static INT8 in the first target's declared format (QOperator for `int8-qoperator`, else QDQ)."""
    from pdd_edge.profiling.targets import load_target

    fmt = "qoperator" if load_target(cfg.targets[0]).quantization == "int8-qoperator" else "qdq"
    return QuantizeConfig(data=cfg.data, calibration_size=cfg.calibration_size, format=fmt)


def run(run: RunDir, cfg: CompressConfig, setup: TrainSetup) -> StageResult:
    """INT8 of the pruned model and of the unpruned one: both are deployment candidates (a pruned
    model must beat the unpruned model in the same format to be worth shipping)."""
    qcfg = config(cfg)
    res = quantize_model(qcfg, run.simplified("pruned"), run.int8())
    base = quantize_model(qcfg, run.simplified("baseline"), run.int8("baseline"))
    metrics = {k: v for k, v in vars(res).items() if k != "path"}
    metrics["baseline"] = {k: v for k, v in vars(base).items() if k != "path"}
    return StageResult([run.int8(), run.int8("baseline")], metrics)
