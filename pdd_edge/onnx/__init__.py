"""ONNX files: pdd-edge's metadata, onnxruntime sessions, accuracy and parity measured on a file."""
