"""latency/layers.py: one layer as a small ONNX model."""

from __future__ import annotations

from pdd_edge.latency import layers


def test_layer_onnx_runs_with_the_requested_channels_and_output_size():
    import numpy as np
    import onnxruntime as ort

    shape = layers.Shape("conv", 32, 32, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (16, 16), groups=32)
    session = ort.InferenceSession(layers.layer_onnx(shape, 16, 16).SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"input": np.zeros(layers.input_shape(shape, 16, 3), np.float32)})
    assert y.shape == (3, 16, 8, 8) and shape.out_hw == (8, 8)
