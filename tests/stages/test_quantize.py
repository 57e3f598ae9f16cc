"""stages.quantize: INT8 runs, is smaller, stays within 2 top-1 points on digits, and says how it was made."""

from __future__ import annotations

import onnx
import pytest
from tests.deploy_helpers import tiny_classifier

from pdd_edge.data.options import DataConfig
from pdd_edge.errors import PddError
from pdd_edge.onnx import runtime
from pdd_edge.onnx.meta import read_meta
from pdd_edge.stages import quantize

pytestmark = pytest.mark.one_thread  # a deployment test: one torch thread (tests/conftest.py says why)


@pytest.fixture(scope="module")
def static_int8(trained_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "resnet20.int8.onnx"
    return quantize.quantize_model(quantize.QuantizeConfig(), trained_onnx, out)


def test_run_static_is_smaller_and_within_two_points_of_fp32_on_digits(static_int8, trained_onnx):
    r = static_int8
    assert r.fp32_top1 > 80.0  # the fixture model learned something INT8 could lose
    assert r.val_images == 359 and r.calibration_images == quantize.DEFAULT_CALIBRATION_SIZE
    assert r.int8_top1 >= r.fp32_top1 - 2.0
    assert r.size_int8 < r.size_fp32 == trained_onnx.stat().st_size


def test_run_static_writes_qdq_graph_with_per_channel_conv_weights(static_int8):
    model = onnx.load(static_int8.path)
    ops = runtime.op_counts(model)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    inits = {t.name: t for t in model.graph.initializer}
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    weight_dq = next(n for n in model.graph.node if n.output[0] == conv.input[1])
    assert weight_dq.op_type == "DequantizeLinear"
    scale = inits[weight_dq.input[1]]
    assert list(scale.dims) == [16]  # one scale per output channel of the stem conv
    assert inits[weight_dq.input[0]].data_type == onnx.TensorProto.INT8


def test_run_static_keeps_metadata_and_records_quantization(static_int8, trained_onnx):
    fp32, int8 = read_meta(onnx.load(str(trained_onnx))), read_meta(onnx.load(static_int8.path))
    assert (int8.model, int8.num_classes, int8.classes, int8.preprocess, int8.dataset) == (
        fp32.model, fp32.num_classes, fp32.classes, fp32.preprocess, fp32.dataset)
    assert fp32.quantization is None
    assert int8.quantization == {
        "method": "static", "format": "QDQ", "weights": "int8 per-channel", "activations": "uint8",
        "reduce_range": False,
        "calibration": {"dataset": "digits", "split": "train", "images": 256, "method": "minmax"},
    }


def test_run_dynamic_runs_and_records_no_calibration(trained_onnx, tmp_path):
    r = quantize.quantize_model(quantize.QuantizeConfig(method="dynamic"), trained_onnx, tmp_path / "dyn.onnx")
    assert r.calibration_images == 0 and r.size_int8 < r.size_fp32
    assert r.int8_top1 >= r.fp32_top1 - 2.0
    model = onnx.load(str(tmp_path / "dyn.onnx"))
    assert "DynamicQuantizeLinear" in runtime.op_counts(model)
    assert read_meta(model).quantization["calibration"] is None


def test_run_calibrates_on_requested_images_when_model_has_fixed_batch_of_one(tmp_path):
    src = tiny_classifier(tmp_path / "m.onnx", batch=1)
    r = quantize.quantize_model(quantize.QuantizeConfig(data=DataConfig(name="digits"), calibration_size=40), src,
                     tmp_path / "q.onnx")
    assert r.calibration_images == 40 and r.val_images == 359


def test_quantize_config_rejects_empty_calibration_set_when_size_is_zero():
    with pytest.raises(PddError, match="calibration set is empty"):
        quantize.QuantizeConfig(calibration_size=0)


def test_quantize_config_rejects_int8_activations_when_method_is_dynamic():
    with pytest.raises(PddError, match="dynamic quantization always uses uint8 activations"):
        quantize.QuantizeConfig(method="dynamic", activation_type="int8")


def test_run_refuses_model_when_already_quantized(static_int8, tmp_path):
    with pytest.raises(PddError, match="already quantized"):
        quantize.quantize_model(quantize.QuantizeConfig(), static_int8.path, tmp_path / "again.onnx")
    assert not (tmp_path / "again.onnx").exists()


def test_run_static_qoperator_writes_integer_conv_ops_and_records_its_format(trained_onnx, tmp_path):
    cfg = quantize.QuantizeConfig(format="qoperator", per_channel=False, calibration_size=64)
    r = quantize.quantize_model(cfg, trained_onnx, tmp_path / "qop.onnx")
    model = onnx.load(r.path)
    ops = runtime.op_counts(model)
    assert ops["QLinearConv"] > 0 and ops.get("Conv", 0) == 0
    assert ops.get("DequantizeLinear", 0) < ops["QLinearConv"]  # only where float ops remain, not around every conv
    conv = next(n for n in model.graph.node if n.op_type == "QLinearConv")
    inits = {t.name: t for t in model.graph.initializer}
    assert list(inits[conv.input[4]].dims) in ([], [1])  # one weight scale for the whole tensor
    meta = read_meta(model).quantization
    assert meta["format"] == "QOperator" and meta["weights"] == "int8 per-tensor"
    assert r.int8_top1 >= r.fp32_top1 - 3.0


def test_quantize_config_rejects_unknown_format_and_format_with_dynamic():
    with pytest.raises(PddError, match="unknown INT8 format 'qint'"):
        quantize.QuantizeConfig(format="qint")
    with pytest.raises(PddError, match="--format is for --method static"):
        quantize.QuantizeConfig(method="dynamic", format="qoperator")


@pytest.mark.parametrize("fmt, domains", [("qdq", [""]), ("qoperator", ["", "com.microsoft"])])
def test_int8_file_declares_only_the_opset_domains_its_nodes_use(fmt, domains, tmp_path):
    src = tiny_classifier(tmp_path / "m.onnx", batch=1)
    quantize.quantize_model(quantize.QuantizeConfig(data=DataConfig(name="digits"), calibration_size=40, format=fmt),
                            src, tmp_path / "q.onnx")
    model = onnx.load(str(tmp_path / "q.onnx"))

    assert sorted(o.domain for o in model.opset_import) == domains
    assert {n.domain for n in model.graph.node} == set(domains)
    runtime.session(model)  # onnxruntime still loads it


def test_drop_unused_opsets_changes_nothing_but_the_opset_imports(tmp_path):
    from onnx import helper

    src = onnx.load(str(tiny_classifier(tmp_path / "m.onnx", batch=1)))
    src.opset_import.extend([helper.make_opsetid("ai.onnx.ml", 5), helper.make_opsetid("org.pytorch.aten", 1)])
    model = onnx.ModelProto()
    model.CopyFrom(src)

    dropped = runtime.drop_unused_opsets(model)

    assert dropped == ["ai.onnx.ml", "org.pytorch.aten"]
    assert [(o.domain, o.version) for o in model.opset_import] == [(o.domain, o.version) for o in src.opset_import[:1]]
    del src.opset_import[1:]
    assert model.SerializeToString() == src.SerializeToString()
