import json
from pathlib import Path

import pytest
import torch

from pdd_edge.nn.kd import distillation_loss, kd_term

GOLDEN = json.loads((Path(__file__).with_name("kd_golden.json")).read_text())["cases"]


@pytest.mark.parametrize("case", GOLDEN, ids=lambda c: f"T{c['temperature']}-a{c['alpha']}")
def test_distillation_loss_matches_golden_values(case):
    s = torch.tensor(case["student"], dtype=torch.float64)
    t = torch.tensor(case["teacher"], dtype=torch.float64)
    y = torch.tensor(case["targets"])
    out = distillation_loss(s, t, y, alpha=case["alpha"], temperature=case["temperature"])
    assert out["kd"].item() == pytest.approx(case["kd"], rel=1e-10)
    assert out["ce"].item() == pytest.approx(case["ce"], rel=1e-10)
    assert out["loss"].item() == pytest.approx(case["loss"], rel=1e-10)


def test_kd_term_is_zero_when_student_equals_teacher():
    logits = torch.randn(4, 10)
    assert kd_term(logits, logits.clone(), 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_term_scales_gradients_by_t_squared_so_they_do_not_vanish_at_high_temperature():
    # Hinton et al.: the gradient of T^2 KL is about (s - t)/N for large T, independent of T.
    torch.manual_seed(0)
    t = torch.randn(8, 10)
    grads = []
    for temperature in (10.0, 100.0):
        s = torch.randn(8, 10, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        kd_term(s, t, temperature).backward()
        grads.append(s.grad.norm().item())
    assert grads[0] == pytest.approx(grads[1], rel=0.05)


def test_distillation_loss_does_not_backpropagate_into_teacher():
    t = torch.randn(3, 5, requires_grad=True)
    s = torch.randn(3, 5, requires_grad=True)
    distillation_loss(s, t, torch.tensor([0, 1, 2]))["loss"].backward()
    assert t.grad is None and s.grad is not None
