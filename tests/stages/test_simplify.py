"""stages.simplify: onnxsim output equals its input, BatchNormalization is folded, metadata is kept."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from tests.deploy_helpers import DIGITS_CLASSES, digits_preprocess, perturb_last_bias, tiny_classifier, zoo_checkpoint

from pdd_edge.errors import FAILURE, PddError
from pdd_edge.onnx import runtime
from pdd_edge.onnx.meta import OnnxMeta, read_meta
from pdd_edge.onnx.parity import ParityConfig
from pdd_edge.stages import export, simplify

pytestmark = pytest.mark.one_thread  # a deployment test: one torch thread (tests/conftest.py says why)

META = OnnxMeta(model="tiny", num_classes=10, classes=DIGITS_CLASSES, preprocess=digits_preprocess(), dataset="digits")


def cfg(**kw) -> simplify.SimplifyConfig:
    return simplify.SimplifyConfig(parity=ParityConfig(images=96), **kw)


def test_run_folds_batchnorm_into_conv_and_preserves_outputs(tmp_path):
    src = tiny_classifier(tmp_path / "m.onnx", meta=META)
    result = simplify.simplify_model(cfg(), src, tmp_path / "m.sim.onnx")

    assert (result.batchnorm_before, result.batchnorm_after) == (1, 0)
    assert result.nodes_after < result.nodes_before
    assert result.parity_max_abs_diff <= 1e-4 and result.parity_images == 96
    ops = runtime.op_counts(onnx.load(str(tmp_path / "m.sim.onnx")))
    assert "BatchNormalization" not in ops and ops["Conv"] == 1
    x = np.random.default_rng(0).normal(size=(5, 3, 32, 32)).astype(np.float32)
    before = runtime.session(str(src)).run(None, {"input": x})[0]
    after = runtime.session(str(tmp_path / "m.sim.onnx")).run(None, {"input": x})[0]
    np.testing.assert_allclose(after, before, atol=1e-4, rtol=0)


def test_run_keeps_pdd_metadata_and_drops_onnxsim_keys(tmp_path):
    src = tiny_classifier(tmp_path / "m.onnx", meta=META)
    simplify.simplify_model(cfg(), src, tmp_path / "m.sim.onnx")
    model = onnx.load(str(tmp_path / "m.sim.onnx"))
    assert read_meta(model) == read_meta(onnx.load(str(src)))
    assert not [p.key for p in model.metadata_props if p.key.startswith("onnxsim")]


def test_run_preserves_outputs_of_exported_pruned_resnet(tmp_path):
    ckpt, keep = zoo_checkpoint("resnet20", True, tmp_path / "m.pt")
    export.export_checkpoint(export.ExportConfig(parity=ParityConfig(images=96)), ckpt, tmp_path / "m.onnx")
    result = simplify.simplify_model(cfg(), tmp_path / "m.onnx", tmp_path / "m.sim.onnx")
    assert result.parity_max_abs_diff <= 1e-4
    assert result.nodes_after <= result.nodes_before and result.batchnorm_after == 0
    assert read_meta(onnx.load(str(tmp_path / "m.sim.onnx"))).keep == keep


def test_run_uses_dataset_option_when_model_has_no_metadata(tmp_path):
    src = tiny_classifier(tmp_path / "m.onnx")
    with pytest.raises(PddError, match="does not record the dataset.*pass --dataset"):
        simplify.simplify_model(cfg(), src, tmp_path / "out.onnx")
    from pdd_edge.data.options import DataConfig

    result = simplify.simplify_model(cfg(data=DataConfig(name="digits")), src, tmp_path / "out.onnx")
    assert result.dataset == "digits" and result.batchnorm_after == 0


def test_run_writes_nothing_when_simplified_model_differs(tmp_path, monkeypatch):
    src = tiny_classifier(tmp_path / "m.onnx", meta=META)
    simplify_proto = simplify.simplify_proto
    monkeypatch.setattr(simplify, "simplify_proto", lambda m: perturb_last_bias(simplify_proto(m), 1e-3))
    with pytest.raises(PddError, match="differs from .* by up to 0.001") as info:
        simplify.simplify_model(cfg(), src, tmp_path / "m.sim.onnx")
    assert info.value.exit_code == FAILURE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
