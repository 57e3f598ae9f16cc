"""Profiling ONNX models for edge CPUs, without torch.

- `graph_cost`: MACs and params counted from the ONNX graph.
- `targets`: device targets (TOML) and their budgets.

Heavy imports (onnx, onnxruntime) happen inside functions.
"""
