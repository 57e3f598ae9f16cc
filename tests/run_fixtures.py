"""A small but real run directory for report/gate tests, built without torch or training.

The three variants are tiny hand-built ONNX classifiers (conv -> global pool -> flatten ->
gemm) of different widths; the profile is measured for real with the interleaved profiler.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pdd_edge.artifact import RunDir, StageRecord
from pdd_edge.data.preprocess import Preprocess
from pdd_edge.fileio import write_json
from pdd_edge.onnx.meta import OnnxMeta, write_meta

TOP1 = {"baseline": 97.5, "baseline-int8": 97.4, "pruned": 97.2, "int8": 96.9}
WIDTH = {"baseline": 32, "baseline-int8": 32, "pruned": 12, "int8": 12}
INT8 = {"int8": "pruned", "baseline-int8": "baseline"}  # variant -> the model it quantizes
LAYERS = {"layer1.0.gate_mid": {"kept": 9, "total": 16, "reopened": 0},
          "layer1.0.gate_out": {"kept": 12, "total": 16, "reopened": 1}}


def classifier(width: int, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((width, 3, 3, 3)).astype(np.float32), "W")
    g = numpy_helper.from_array(rng.standard_normal((10, width)).astype(np.float32), "G")
    nodes = [helper.make_node("Conv", ["input", "W"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "G"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], [w, g])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    write_meta(model, OnnxMeta(model="resnet20", num_classes=10, dataset="digits",
                               preprocess=Preprocess((0.5,) * 3, (0.25,) * 3, (16, 16))))
    return model


def make_run(root: Path, *, profile: bool = True, variants=("baseline", "pruned", "int8")) -> RunDir:
    """A run directory with manifest, ONNX variants, accuracy record and (optionally) a local profile."""
    run = RunDir.create(root, {"student": "resnet20", "teacher": "resnet56", "data": {"name": "digits"}}, resume=False)
    files = {}
    for name in variants:
        path = run.int8(INT8[name]) if name in INT8 else run.simplified(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(classifier(WIDTH[name]), str(path))
        files[name] = run.rel(path)
    for stage, metrics in (("teacher", {"val_top1": 98.9}), ("baseline", {"val_top1": TOP1["baseline"]}),
                           ("distill", {"val_top1": 96.0}), ("finetune", {"val_top1": TOP1["pruned"]}),
                           ("prune", {"macs_before": 40_551_040, "macs_after": 20_000_000, "params_before": 269_722,
                                      "params_after": 120_000, "macs_reduction_pct": 50.68, "params_reduction_pct": 55.5,
                                      "max_abs_diff": 1e-6, "reopened_channels": 1, "notes": [], "layers": LAYERS})):
        run.commit(StageRecord(name=stage, config_hash="h", seconds=1.0, files=[], metrics=metrics))
    accuracy = {name: {"top1": TOP1[name], "top5": 100.0, "count": 359, "file": rel} for name, rel in files.items()}
    write_json(run.accuracy(), {"schema": "pdd-edge.accuracy/1", "variants": accuracy})
    run.commit(StageRecord(name="evaluate", config_hash="h", seconds=1.0, files=[run.rel(run.accuracy())]))
    if profile:
        from pdd_edge.stages.profile import profile_variants, request

        record = profile_variants({k: run.path(v) for k, v in files.items()}, request("local", min_runs=5, min_time_s=0.0))
        write_json(run.profile("local"), record)
    return run


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:  # flip bytes in the middle: same size, other content
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 16]) + data[middle + 16:])
