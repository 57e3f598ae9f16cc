"""stages.export: every zoo family, pruned and unpruned, exports to an ONNX file equal to PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from tests.deploy_helpers import (
    DIGITS_CLASSES,
    digits_preprocess,
    masked_checkpoint,
    perturb_last_bias,
    save_checkpoint,
    zoo_checkpoint,
)

from pdd_edge import checkpoint
from pdd_edge import zoo
from pdd_edge.data.options import DataConfig
from pdd_edge.errors import FAILURE, PddError
from pdd_edge.onnx import runtime
from pdd_edge.onnx.meta import read_meta
from pdd_edge.onnx.parity import ParityConfig
from pdd_edge.stages import export

pytestmark = pytest.mark.one_thread  # a deployment test: one torch thread (tests/conftest.py says why)

CASES = [("resnet20", False), ("resnet20", True), ("vgg11", False), ("vgg11", True)]


def cfg(**kw) -> export.ExportConfig:
    return export.ExportConfig(parity=ParityConfig(images=96), **kw)


@pytest.mark.parametrize(("name", "pruned"), CASES, ids=[f"{n}-{'pruned' if p else 'unpruned'}" for n, p in CASES])
def test_run_matches_pytorch_within_tolerance(tmp_path, name, pruned):
    ckpt, _ = zoo_checkpoint(name, pruned, tmp_path / "m.pt")
    result = export.export_checkpoint(cfg(), ckpt, tmp_path / "m.onnx")

    assert result.parity_images == 96 and result.parity_max_abs_diff <= 1e-4
    assert result.opset >= 17 and result.pruned == pruned
    assert (read_meta(onnx.load(str(tmp_path / "m.onnx"))).keep is not None) == pruned
    # Independent of the stage's own check: batch sizes other than the traced one, against PyTorch.
    model, _ = checkpoint.load(ckpt)
    sess = runtime.session(str(tmp_path / "m.onnx"))
    for batch in (1, 7):
        x = torch.randn(batch, 3, 32, 32)
        got = sess.run(["logits"], {"input": x.numpy()})[0]
        with torch.no_grad():
            np.testing.assert_allclose(got, model(x).numpy(), atol=1e-4, rtol=0)


def test_run_writes_dynamic_batch_named_io_and_metadata_that_round_trips(tmp_path):
    ckpt, keep = zoo_checkpoint("resnet20", True, tmp_path / "m.pt")
    export.export_checkpoint(cfg(), ckpt, tmp_path / "m.onnx")

    model = onnx.load(str(tmp_path / "m.onnx"))
    io = runtime.graph_io(model, "m.onnx")
    assert (io.input_name, io.output_name, io.dynamic_batch, io.input_shape[1:]) == ("input", "logits", True, (3, 32, 32))
    meta = read_meta(model)
    assert meta.model == "resnet20" and meta.num_classes == 10 and meta.classes == DIGITS_CLASSES
    assert meta.preprocess == digits_preprocess() and meta.dataset == "digits"
    assert meta.keep == keep
    assert zoo.build("resnet20", 10, meta.keep).keep == keep  # the plan rebuilds the same network


def test_run_refuses_checkpoint_when_masks_are_attached(tmp_path):
    ckpt = masked_checkpoint(tmp_path / "masked.pt")
    with pytest.raises(PddError, match=r"still has PDD masks.*pdd-edge prune"):
        export.export_checkpoint(cfg(), ckpt, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_run_writes_nothing_when_onnx_differs_from_pytorch(tmp_path, monkeypatch):
    ckpt, _ = zoo_checkpoint("resnet20", True, tmp_path / "m.pt")
    to_onnx = export.to_onnx
    monkeypatch.setattr(export, "to_onnx", lambda *a: perturb_last_bias(to_onnx(*a), 1e-3))
    with pytest.raises(PddError, match="differs from PyTorch by up to 0.001") as info:
        export.export_checkpoint(cfg(), ckpt, tmp_path / "m.onnx")
    assert info.value.exit_code == FAILURE
    assert list(tmp_path.iterdir()) == [tmp_path / "m.pt"]  # no output, no temporary file


def test_run_asks_for_data_dir_when_recorded_dataset_needs_one(tmp_path):
    model = zoo.build("resnet20", 10)
    ckpt = save_checkpoint(model, "resnet20", tmp_path / "m.pt", dataset="cifar10")
    with pytest.raises(PddError, match="cifar10 needs --data-dir"):
        export.export_checkpoint(cfg(), ckpt, tmp_path / "m.onnx")


def test_run_rejects_dataset_when_class_count_differs(tmp_path):
    ckpt = save_checkpoint(zoo.build("vgg11", 100), "vgg11", tmp_path / "m.pt")
    with pytest.raises(PddError, match="predicts 100 classes but digits has 10"):
        export.export_checkpoint(cfg(), ckpt, tmp_path / "m.onnx")


def test_run_exports_third_party_state_dict_when_model_and_dataset_are_given(tmp_path):
    torch.save({"state_dict": zoo.build("resnet20", 10).state_dict()}, tmp_path / "theirs.pth")
    with pytest.raises(PddError, match="does not record the dataset.*pass --dataset"):
        export.export_checkpoint(cfg(model="resnet20"), tmp_path / "theirs.pth", tmp_path / "m.onnx")
    result = export.export_checkpoint(cfg(model="resnet20", data=DataConfig(name="digits")), tmp_path / "theirs.pth",
                        tmp_path / "m.onnx")
    meta = read_meta(onnx.load(str(tmp_path / "m.onnx")))
    assert result.parity_max_abs_diff <= 1e-4
    assert meta.preprocess == digits_preprocess() and meta.dataset == "digits" and meta.classes == DIGITS_CLASSES


def _loud_checkpoint(path):
    """A model whose logits reach thousands, like a short digits training: float32 rounding alone
    then moves them by more than 1e-4."""
    torch.manual_seed(0)
    model = zoo.build("resnet20", 10)
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight.mul_(3000.0)
    return save_checkpoint(model, "resnet20", path)


def test_run_accepts_float32_rounding_of_large_logits_and_says_which_limit_it_used(tmp_path):
    result = export.export_checkpoint(cfg(), _loud_checkpoint(tmp_path / "m.pt"), tmp_path / "m.onnx")
    assert result.parity_max_abs_diff <= result.tolerance and result.tolerance > 1e-3
    assert result.tolerance_rule.startswith("0.0001 + 1e-05 x max|logit| ")


def test_run_still_catches_a_real_mismatch_in_large_logits(tmp_path, monkeypatch):
    to_onnx = export.to_onnx
    monkeypatch.setattr(export, "to_onnx", lambda *a: perturb_last_bias(to_onnx(*a), 5.0))
    with pytest.raises(PddError, match=r"differs from PyTorch by up to 5\.0\d .*limit 0.0001 \+ 1e-05 x max\|logit\|"):
        export.export_checkpoint(cfg(), _loud_checkpoint(tmp_path / "m.pt"), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
