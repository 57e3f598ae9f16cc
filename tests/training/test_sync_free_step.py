"""The training step without a host sync per step (issue 25): loss sums and the divergence flag
stay on the device and are read every few steps and at epoch end; on the CPU the results are the
ones of the loop that read every loss as a Python float."""

import dataclasses
import hashlib
import math

import pytest
import torch

from pdd_edge.training import loop
from pdd_edge.training.divergence import Diverged
from tests.training.test_training_loop import make_fit

def weights_sha256(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def test_cpu_fit_reading_every_50_steps_is_bit_identical_to_reading_every_step(tmp_path, monkeypatch):
    # The same run twice in one process: the CPU's own loop (every loss read as it comes) and the
    # GPU's (sums kept on the device, read every 50 steps). Same history, same weights, bit for bit.
    # (Golden numbers from another machine would not do: MKL's kernels round differently on an
    # AMD EPYC and an Intel Xeon.)
    every_step = make_fit(tmp_path / "every", epochs=2).run()
    monkeypatch.setattr(loop, "steps_between_reads", lambda device: 50)
    every_50 = make_fit(tmp_path / "fifty", epochs=2).run()
    keys = ("loss", "ce", "train_top1", "val_top1", "val_loss")
    assert [{k: r[k] for k in keys} for r in every_50.history] == [{k: r[k] for k in keys} for r in every_step.history]
    assert all(math.isfinite(r["loss"]) for r in every_step.history) and len(every_step.history) == 2
    a, b = (torch.load(tmp_path / d / "last.pt", weights_only=True)["model"] for d in ("every", "fifty"))
    assert weights_sha256(a) == weights_sha256(b)


class NanAt:
    """The wrapped task, whose loss becomes NaN at one step (0-based) of the run; counts steps."""

    def __init__(self, task, step: int) -> None:
        self.task, self.nan_step, self.calls, self.first = task, step, 0, None

    def to(self, device):
        self.task.to(device)
        return self

    def __call__(self, model, x, y):
        out = self.task(model, x, y)
        if self.first is None:
            self.first = float(out["loss"].detach())
        if self.calls == self.nan_step:
            out["loss"] = out["loss"] * math.nan
        self.calls += 1
        return out


def expected_message(first: float, nan_step: int) -> str:
    return (f"test diverged in epoch 1: the training loss reached nan at step {nan_step + 1} (the first step's was "
            f"{first:.3g}). Stopped without keeping that epoch (no checkpoint was written). "
            "Likely fix: a lower --lr (this run used 0.01).")


# 32 training images in batches of 8: 4 steps per epoch; the NaN comes at the second step.
@pytest.mark.parametrize("read_every, steps_run", [(1, 2), (3, 3), (50, 4)])
def test_nan_at_step_k_stops_by_step_k_plus_n_with_the_same_message_and_no_files(tmp_path, monkeypatch, read_every,
                                                                                 steps_run):
    monkeypatch.setattr(loop, "steps_between_reads", lambda device: read_every)
    fit = make_fit(tmp_path)
    fit.task = task = NanAt(fit.task, 1)
    with pytest.raises(Diverged) as caught:
        fit.run()
    assert str(caught.value) == expected_message(task.first, 1)
    assert task.calls == steps_run <= 1 + read_every  # read every N steps, and at the epoch's end
    assert not (tmp_path / "best.pt").exists() and not (tmp_path / "last.pt").exists()


HOST_READS = ("item", "__float__", "__int__", "__bool__", "__index__", "tolist")


def count_host_reads(monkeypatch) -> dict:
    """Count every read of a tensor's value by Python (each one a host sync on a GPU)."""
    counts = {"n": 0}
    for name in HOST_READS:
        def counted(self, *args, _original=getattr(torch.Tensor, name), **kwargs):
            counts["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def test_host_reads_of_an_epoch_do_not_grow_with_its_steps_when_read_every_50(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "steps_between_reads", lambda device: 50)
    counts = count_host_reads(monkeypatch)
    reads = []
    for batch_size in (8, 4):  # 4, then 8 steps
        fit = make_fit(tmp_path / str(batch_size), epochs=1)
        fit.cfg = dataclasses.replace(fit.cfg, batch_size=batch_size)
        counts["n"] = 0
        fit.run()
        reads.append(counts["n"])
    assert reads[0] == reads[1]  # the per-step float(loss) and float sums read 4 more times per extra step


def test_constraint_step_does_not_read_the_cost_on_the_host(monkeypatch):
    from pdd_edge.nn.constraint import Constraint

    class Fixed(Constraint):
        def relative(self, model):
            return torch.tensor(0.8, requires_grad=True)

    b = Fixed(0.5)
    counts = count_host_reads(monkeypatch)
    b(None)
    b(None)
    assert counts["n"] == 0


def test_steps_between_reads_is_every_step_on_the_cpu_and_sync_every_on_a_gpu():
    assert loop.steps_between_reads(torch.device("cpu")) == 1
    assert loop.steps_between_reads(torch.device("cuda")) == loop.SYNC_EVERY == 50


def test_constraint_on_the_device_gives_the_losses_lambdas_and_gradients_of_the_python_float_controller():
    # Golden values recorded with the controller that read the cost with .item() every step
    # (commit d34938c): 40 steps across the target, a ramp, lr compensation and the anti-windup clamp.
    from pdd_edge.nn.constraint import Constraint

    class Scripted(Constraint):
        def __init__(self, costs, target, **kw):
            super().__init__(target, **kw)
            self.costs, self.last = iter(costs), None

        def relative(self, model):
            self.last = torch.tensor(next(self.costs), requires_grad=True)
            return self.last

    b = Scripted([0.9 - 0.037 * k + 0.01 * math.sin(k) for k in range(40)], 0.5, integral_limit=0.3, ramp_epochs=2)
    rows = []
    for k in range(40):
        if k % 10 == 0:
            b.on_epoch_start(k // 10, 0.1 * 0.1 ** (k // 20), 0.1)
        out = b(None)
        out["loss"].backward()
        rows.append((out["loss"].item().hex(), out["lambda"].item().hex(), b.last.grad.item().hex(),
                     out["lambda"].dtype == torch.float32))
    assert hashlib.sha256(repr(rows).encode()).hexdigest() == \
        "d53393f792cdfc9c22c9ade1ddc27198cbb00d96ac1327d8b89022c8e4252e34"
    assert rows[5] == ("-0x1.25d1360000000p-3", "-0x1.a084f20000000p-3", "-0x1.a084f20000000p-3", True)
    assert b.state_dict() == {"integral": -0.3}
