"""training/tasks.py: what a training step computes (here: a distillation step with a teacher of another input size)."""

from __future__ import annotations

import torch


def test_teacher_of_another_resolution_sees_the_batch_at_its_own_size():
    from pdd_edge.data.preprocess import Preprocess
    from pdd_edge.training.tasks import DistillTask

    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 4)

        def forward(self, x):
            seen.append(tuple(x.shape))
            return self.fc(x.mean((2, 3)))

    teacher_pre = Preprocess(mean=(0.5,) * 3, std=(0.5,) * 3, input_size=(32, 32))
    student_pre = Preprocess(mean=(0.5,) * 3, std=(0.5,) * 3, input_size=(48, 40))
    task = DistillTask(Probe(), teacher_pre, student_pre)
    out = task(Probe(), torch.rand(2, 3, 48, 40), torch.tensor([0, 1]))
    assert seen == [(2, 3, 32, 32), (2, 3, 48, 40)] and out["output"].shape == (2, 4)
