"""The training engine shared by `train`, `distill` and `finetune`."""
