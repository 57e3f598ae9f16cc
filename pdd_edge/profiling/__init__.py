"""Profiling ONNX models for edge CPUs, without torch.

- `graph_cost`: MACs and params counted from the ONNX graph.

Heavy imports (onnx, onnxruntime) happen inside functions.
"""
