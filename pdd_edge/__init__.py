"""pdd-edge: Pruning During Distillation and a verified deployment chain for edge CPUs.

The package imports nothing heavy at the top level: `pdd-edge --help`, `profile`, `report`
and `gate` must start instantly and run on a board that has onnxruntime but no torch.
"""

__version__ = "0.1.0"
