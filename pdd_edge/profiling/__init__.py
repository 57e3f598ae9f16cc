"""Profiling ONNX models for edge CPUs, without torch.

- `graph_cost`: MACs and params counted from the ONNX graph.
- `inputs`: a model's inputs and their concrete shapes per batch size.
- `targets`: device targets (TOML) and their budgets.
- `runner`: the self-contained measurement core (latency, peak memory, environment), also
  copied to a board by `remote`.
- `measure`: measuring one or several models, interleaved, here or remotely.
- `profile`: the versioned profile record of one model.

Heavy imports (onnx, onnxruntime) happen inside functions.
"""
