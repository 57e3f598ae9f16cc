"""`pdd-edge export` through the CLI: the parity it prints, and a checkpoint it refuses."""

from __future__ import annotations

import pytest

from tests.deploy_helpers import masked_checkpoint
from tests.helpers import assert_usage_error, run_cli


@pytest.mark.one_thread
def test_export_prints_parity_in_text_mode(trained_checkpoint, tmp_path):
    result = run_cli("export", trained_checkpoint, "--out", tmp_path / "m.onnx", "--parity-images", 50)
    assert result.exit_code == 0, result.output
    assert "resnet20, ONNX opset 18" in result.stdout
    assert "parity vs PyTorch on 50 digits val images: max |logit difference|" in result.stdout


@pytest.mark.one_thread
def test_export_rejects_checkpoint_when_it_still_has_masks(tmp_path):
    out = tmp_path / "m.onnx"
    assert_usage_error(run_cli("export", masked_checkpoint(tmp_path / "masked.pt"), "--out", out), "pdd-edge prune")
    assert not out.exists()
