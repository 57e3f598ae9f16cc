"""What one training step computes, separated from the loop that runs it (timm's task idea).

A task maps `(model, images in [0, 1], labels)` to a dict with at least `loss` and `output`
(the student's logits); other entries (`ce`, `kd`, `cost`) are logged. The loop never knows
whether it is distilling. Under mixed precision only the forward passes run in bf16/fp16: the
logits are cast to float32 before any loss, so the losses are the float32 ones.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pdd_edge.data.preprocess import Preprocess
from pdd_edge.nn.kd import DEFAULT_ALPHA, DEFAULT_TEMPERATURE, distillation_loss


class Normalize:
    """`(x - mean) / std` for one model's preprocessing (cached as NCHW-broadcastable tensors),
    after resizing to the model's input size where the batch has another (a teacher trained at
    another resolution than its student's; bilinear with antialiasing, as torchvision's Resize)."""

    def __init__(self, pre: Preprocess) -> None:
        self.mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(pre.std).view(1, 3, 1, 1)
        self.size = tuple(pre.input_size)

    def to(self, device: torch.device) -> "Normalize":
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        return (x - self.mean) / self.std


class SupervisedTask:
    """Plain cross-entropy training (teachers, and the paper's fine-tuning without a teacher)."""

    def __init__(self, preprocess: Preprocess) -> None:
        self.normalize = Normalize(preprocess)

    def to(self, device: torch.device) -> "SupervisedTask":
        self.normalize.to(device)
        return self

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = model(self.normalize(x)).float()
        ce = F.cross_entropy(logits, y)
        return {"loss": ce, "ce": ce, "output": logits}


ExtraLoss = Callable[[nn.Module], dict[str, torch.Tensor]]


class DistillTask:
    """`alpha * CE + (1 - alpha) * T^2 KL` against a frozen teacher fed with its own preprocessing.

    `extra_loss(student)` may add terms (the MACs constraint of `distill --target-macs-reduction`);
    its `loss` entry is added to the total and its other entries are logged.
    """

    def __init__(
        self,
        teacher: nn.Module,
        teacher_preprocess: Preprocess,
        student_preprocess: Preprocess,
        alpha: float = DEFAULT_ALPHA,
        temperature: float = DEFAULT_TEMPERATURE,
        extra_loss: ExtraLoss | None = None,
    ) -> None:
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.t_norm = Normalize(teacher_preprocess)
        self.s_norm = Normalize(student_preprocess)
        self.alpha = alpha
        self.temperature = temperature
        self.extra_loss = extra_loss

    def to(self, device: torch.device) -> "DistillTask":
        self.teacher.to(device)
        self.t_norm.to(device)
        self.s_norm.to(device)
        return self

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        self.teacher.eval()  # frozen: BN statistics and dropout of the teacher never change
        with torch.no_grad():
            t_logits = self.teacher(self.t_norm(x)).float()
        s_logits = model(self.s_norm(x)).float()
        out = distillation_loss(s_logits, t_logits, y, self.alpha, self.temperature)
        if self.extra_loss is not None:
            with torch.autocast(x.device.type, enabled=False):  # the cost model is float32 arithmetic
                extra = self.extra_loss(model)
            out["loss"] = out["loss"] + extra.pop("loss")
            out.update(extra)
        out["output"] = s_logits
        return out
