"""pdd_edge.onnx (runtime, accuracy, parity): what a graph expects, how it is fed, and the numbers computed from its logits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from tests.deploy_helpers import DIGITS_CLASSES, digits_preprocess, tiny_classifier

from pdd_edge.data import load_dataset
from pdd_edge.data.preprocess import Preprocess
from pdd_edge.errors import PddError
from pdd_edge.onnx import accuracy as onnx_accuracy
from pdd_edge.onnx import parity, runtime
from pdd_edge.onnx.meta import OnnxMeta, read_meta

pytestmark = pytest.mark.one_thread  # a deployment test: one torch thread (tests/conftest.py says why)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def describe(path):
    model = onnx.load(str(path))
    return read_meta(model), runtime.graph_io(model, path)


def test_graph_io_reads_input_name_dynamic_batch_and_class_count(tmp_path):
    _, io = describe(tiny_classifier(tmp_path / "m.onnx", classes=7, hw=(24, 20)))
    assert io.input_name == "input" and io.output_name == "logits"
    assert io.dynamic_batch and io.channels == 3 and io.hw == (24, 20) and io.num_outputs == 7


def test_graph_io_rejects_non_float_input_when_graph_takes_uint8(tmp_path):
    path = tiny_classifier(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.UINT8
    with pytest.raises(PddError, match="takes UINT8 input"):
        runtime.graph_io(model, path)


def test_graph_io_rejects_fixed_batch_when_it_is_not_one(tmp_path):
    _, io = describe(tiny_classifier(tmp_path / "one.onnx", batch=1))
    assert io.batch_size(64) == 1
    with pytest.raises(PddError, match="fixed batch of 8"):
        describe(tiny_classifier(tmp_path / "eight.onnx", batch=8))


def test_resolve_preprocess_uses_metadata_when_present(tmp_path, digits):
    pre = Preprocess(mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6), input_size=(32, 32))
    meta, io = describe(tiny_classifier(tmp_path / "m.onnx", meta=OnnxMeta(preprocess=pre)))
    resolved, source = onnx_accuracy.resolve_preprocess(meta, io, digits)
    assert resolved == pre and source == "model metadata"


def test_resolve_preprocess_falls_back_to_dataset_default_when_model_has_no_metadata(tmp_path, digits):
    meta, io = describe(tiny_classifier(tmp_path / "m.onnx"))
    resolved, source = onnx_accuracy.resolve_preprocess(meta, io, digits)
    assert resolved == digits.preprocess
    assert "no preprocessing metadata" in source


def test_resolve_preprocess_command_line_overrides_metadata(tmp_path, digits):
    meta, io = describe(tiny_classifier(tmp_path / "m.onnx", meta=OnnxMeta(preprocess=digits_preprocess())))
    resolved, source = onnx_accuracy.resolve_preprocess(meta, io, digits, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert resolved.mean == (0.5, 0.5, 0.5) and resolved.std == (0.25, 0.25, 0.25)
    assert source == "command line"


def test_resolve_preprocess_rejects_dataset_size_when_model_expects_64x64(tmp_path, digits):
    meta, io = describe(tiny_classifier(tmp_path / "m.onnx", hw=(64, 64)))
    with pytest.raises(PddError, match="expects 64x64 inputs but digits gives 32x32; pass --input-size 64"):
        onnx_accuracy.resolve_preprocess(meta, io, digits)


def test_resolve_preprocess_rejects_rgb_dataset_when_model_takes_one_channel(tmp_path, digits):
    meta, io = describe(tiny_classifier(tmp_path / "m.onnx", channels=1))
    with pytest.raises(PddError, match="expects 1-channel input"):
        onnx_accuracy.resolve_preprocess(meta, io, digits)


def test_resolve_preprocess_rejects_dataset_when_class_counts_differ(tmp_path, digits):
    meta, io = describe(tiny_classifier(tmp_path / "m.onnx", classes=100))
    with pytest.raises(PddError, match="predicts 100 classes but digits has 10"):
        onnx_accuracy.resolve_preprocess(meta, io, digits)


def test_normalized_batches_normalises_and_stops_at_limit(digits):
    pre = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=(32, 32))
    batches = list(onnx_accuracy.normalized_batches(digits.val, pre, 16, limit=40))
    assert [len(y) for _, y in batches] == [16, 16, 8]
    x_raw, y_raw = next(digits.val.batches(16, shuffle=False, augment=None, seed=0, epoch=0))
    np.testing.assert_allclose(batches[0][0], (x_raw.numpy() - 0.5) / 0.25, rtol=1e-6)
    assert batches[0][0].dtype == np.float32 and (batches[0][1] == y_raw.numpy()).all()


def test_topk_correct_matches_torch_topk():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(200, 10)).astype(np.float32), rng.integers(0, 10, 200)
    for k in (1, 5):
        expected = (torch.from_numpy(logits).topk(k, dim=1).indices == torch.from_numpy(labels)[:, None]).any(1).sum()
        assert onnx_accuracy.numpy_topk_correct(logits, labels, k) == int(expected)


def test_cross_entropy_sum_matches_torch():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(0, 20, size=(64, 10)).astype(np.float32), rng.integers(0, 10, 64)
    expected = F.cross_entropy(torch.from_numpy(logits).double(), torch.from_numpy(labels), reduction="sum")
    assert onnx_accuracy.cross_entropy_sum(logits, labels) == pytest.approx(float(expected), rel=1e-9)


def test_max_abs_diff_is_infinite_when_outputs_have_nan_or_other_shape():
    a = np.zeros((2, 3), dtype=np.float32)
    assert parity.max_abs_diff(a, np.full((2, 3), np.nan, dtype=np.float32)) == float("inf")
    assert parity.max_abs_diff(a, np.zeros((2, 4), dtype=np.float32)) == float("inf")
    assert parity.max_abs_diff(a, a + 0.5) == 0.5


def test_accuracy_counts_every_image_of_the_split(tmp_path, digits):
    path = tiny_classifier(tmp_path / "m.onnx", meta=OnnxMeta(preprocess=digits_preprocess(), classes=DIGITS_CLASSES))
    meta, io = describe(path)
    pre, _ = onnx_accuracy.resolve_preprocess(meta, io, digits)
    result = onnx_accuracy.score(runtime.session(str(path)), io, onnx_accuracy.normalized_batches(digits.val, pre, 100))
    assert result["count"] == len(digits.val)
    assert 0.0 <= result["top1"] <= result["top5"] <= 100.0 and np.isfinite(result["loss"])


def test_onnx_modules_import_without_torch():
    # profile/report run it on boards without torch; a torch import here would break them.
    code = "import sys, pdd_edge.onnx.runtime, pdd_edge.onnx.accuracy, pdd_edge.onnx.parity, pdd_edge.onnx.meta; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_parity_limit_is_absolute_plus_relative_to_the_logits():
    from pdd_edge.tolerance import LogitTolerance

    rounding = parity.Parity(max_abs_diff=7.32e-4, images=359, max_abs_logit=2.35e3)  # the digits model
    assert rounding.require(LogitTolerance(), candidate="c", reference="r", dataset="d") == pytest.approx(0.0236)
    mismatch = parity.Parity(max_abs_diff=7.32e-4, images=359, max_abs_logit=1.0)
    with pytest.raises(PddError, match=r"limit 0.0001 \+ 1e-05 x max\|logit\| 1 = 0.00011"):
        mismatch.require(LogitTolerance(), candidate="c", reference="r", dataset="d")


def _conv_head(path, in_dims, out_dims, spatial_out=False):
    """Conv -> GlobalAveragePool as the classifier: logits (N, 10, 1, 1) like SqueezeNet's; with
    `spatial_out` the pool is left out, so the output is a (N, 10, H, W) map, not logits."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.3, (10, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["input", "w"], ["map" if not spatial_out else "logits"], pads=[1, 1, 1, 1])]
    if not spatial_out:
        nodes.append(helper.make_node("GlobalAveragePool", ["map"], ["logits"]))
    graph = helper.make_graph(nodes, "head", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_dims)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_dims)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("in_dims, out_dims", [
    (["N", 3, 32, 32], ["N", 10, 1, 1]),  # a conv classifier head
    (["N", 3, "H", "W"], ["N", 10, 1, 1]),  # dynamic height and width: fed at the dataset's size
    (["N", 3, "H", "W"], ["N", "C", "h", "w"]),  # everything symbolic: checked on the first run
])
def test_evaluate_squeezes_n_c_1_1_logits_and_feeds_dynamic_hw_at_the_dataset_size(tmp_path, in_dims, out_dims):
    from pdd_edge.data.options import DataConfig
    from pdd_edge.stages.evaluate import evaluate_onnx

    result = evaluate_onnx(_conv_head(tmp_path / "m.onnx", in_dims, out_dims), DataConfig("digits"))
    assert result["count"] == 359 and 0.0 <= result["top1"] <= 100.0 and 0.0 <= result["top5"] <= 100.0


@pytest.mark.parametrize("out_dims, message", [
    (["N", 10, 32, 32], r"output 'logits' has shape \(\?, 10, 32, 32\); pdd-edge expects classifier logits"),
    (["N", 10, "h", "w"], r"output 'logits' has shape \(359, 10, 32, 32\) for a batch of 359"),
])
def test_evaluate_refuses_an_output_that_is_not_logits(tmp_path, out_dims, message):
    from pdd_edge.data.options import DataConfig
    from pdd_edge.stages.evaluate import evaluate_onnx

    path = _conv_head(tmp_path / "seg.onnx", ["N", 3, 32, 32], out_dims, spatial_out=True)
    with pytest.raises(PddError, match=message):
        evaluate_onnx(path, DataConfig("digits"))


def _with_external_data(tmp_path):
    model = onnx.load(str(tiny_classifier(tmp_path / "inline.onnx")))
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="ext.weights", size_threshold=0)
    return path


def test_load_onnx_reads_external_data_and_names_a_missing_data_file(tmp_path):
    from pdd_edge.onnx.meta import load_onnx

    path = _with_external_data(tmp_path)
    assert all(len(t.raw_data) > 0 for t in load_onnx(path).graph.initializer)
    (tmp_path / "ext.weights").rename(tmp_path / "elsewhere")
    with pytest.raises(PddError, match=r"keeps its weights in the external data file 'ext.weights', which is missing "
                                       r"\(expected .*ext.weights\); copy it next to the model"):
        load_onnx(path)


def test_remote_staging_inlines_external_data_the_renamed_copy_would_lose(tmp_path):
    from pdd_edge.profiling.remote import _stage_model

    (tmp_path / "staged").mkdir()
    _stage_model(_with_external_data(tmp_path), tmp_path / "staged" / "model0.onnx")
    staged = onnx.load(str(tmp_path / "staged" / "model0.onnx"))  # loads with nothing beside it
    assert not any(onnx.external_data_helper.uses_external_data(t) for t in staged.graph.initializer)
    assert runtime.session(str(tmp_path / "staged" / "model0.onnx")) is not None
