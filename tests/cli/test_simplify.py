"""`pdd-edge simplify` through the CLI."""

from __future__ import annotations

import pytest

from tests.deploy_helpers import DIGITS_META, tiny_classifier
from tests.helpers import run_cli


@pytest.mark.one_thread
def test_simplify_prints_node_and_batchnorm_counts(tmp_path):
    model = tiny_classifier(tmp_path / "m.onnx", meta=DIGITS_META)
    result = run_cli("simplify", model, "--out", tmp_path / "m.sim.onnx")
    assert result.exit_code == 0, result.output
    assert "nodes 6 -> 5, BatchNormalization 1 -> 0" in result.stdout
    assert "parity vs" in result.stdout and "on 359 digits val images" in result.stdout
