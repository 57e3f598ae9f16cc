"""Knowledge-distillation loss (Hinton et al. 2015), as PDD trains with it.

    loss = alpha * CE(student, y) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))

with batch-mean reduction. The PDD reference code calls `F.kl_div` on two *log*-probabilities
without `log_target=True` and drops the T^2 factor; that expression is not a KL divergence, and
without T^2 the soft-target gradients shrink as 1/T^2 (Hinton et al., section 2). We use the
standard form; alpha and T stay configurable (defaults 0.6 and 3 as in the reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_ALPHA = 0.6
DEFAULT_TEMPERATURE = 3.0


def kd_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """`T^2 * KL(softmax(t/T) || softmax(s/T))`, averaged over the batch."""
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = DEFAULT_ALPHA,
    temperature: float = DEFAULT_TEMPERATURE,
) -> dict[str, torch.Tensor]:
    """Returns `{"loss", "ce", "kd"}` so the training loop can log the parts."""
    ce = F.cross_entropy(student_logits, targets)
    kd = kd_term(student_logits, teacher_logits.detach(), temperature)
    return {"loss": alpha * ce + (1 - alpha) * kd, "ce": ce, "kd": kd}
