"""A diverged run is a failure: NaN/inf/exploding losses and chance-level accuracy stop training
with exit 1, one line naming the epoch and the fix, and the last good epoch kept."""

import math

import pytest
import torch
from torch import nn

from pdd_edge.data.base import Augment, Dataset, TensorSource
from pdd_edge.data.preprocess import Preprocess
from pdd_edge.errors import FAILURE
from pdd_edge.training.divergence import Diverged, Watch, exploded, stuck_at_chance
from pdd_edge.training.loop import Fit, OptimConfig, TrainFiles
from pdd_edge.training.tasks import SupervisedTask
from tests.helpers import run_cli

PRE = Preprocess(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(8, 8))


def epoch(n, val, train):
    return {"epoch": n, "val_top1": val, "train_top1": train}


@pytest.mark.parametrize("loss, reference, expected", [(2.3, 2.3, False), (2.3e4, 2.3, False), (2.4e4, 2.3, True),
                                                       (9e3, 0.01, False), (1.1e4, 0.01, True),
                                                       (math.nan, 2.3, True), (math.inf, 2.3, True)])
def test_a_loss_four_orders_of_magnitude_above_the_first_step_or_not_finite_has_exploded(loss, reference, expected):
    assert exploded(loss, reference) is expected


def test_stuck_at_chance_needs_two_epochs_after_warm_up_at_chance_on_train_and_val():
    at_chance = [epoch(1, 10.0, 10.5), epoch(2, 11.0, 9.0)]
    assert stuck_at_chance(at_chance, classes=10, warmup_epochs=0, val_images=1000)
    assert not stuck_at_chance(at_chance, classes=10, warmup_epochs=1, val_images=1000)  # epoch 1 is warm-up
    assert not stuck_at_chance(at_chance[:1], classes=10, warmup_epochs=0, val_images=1000)
    assert not stuck_at_chance([epoch(1, 10.0, 10.0), epoch(2, 12.5, 10.0)], 10, 0, 1000)  # val left chance
    assert not stuck_at_chance([epoch(1, 10.0, 10.0), epoch(2, 10.0, 30.0)], 10, 0, 1000)  # train is learning
    assert not stuck_at_chance(at_chance, classes=10, warmup_epochs=0, val_images=100)  # too few to tell


def test_watch_names_the_epoch_the_loss_and_the_fix(tmp_path):
    watch = Watch("distill resnet20", lr=1000.0, warmup_epochs=0, best=tmp_path / "best.pt")
    watch.step(2.5, epoch=1, step=0, classes=10)
    with pytest.raises(Diverged) as caught:
        watch.step(3.6e19, epoch=1, step=1, classes=10)
    assert caught.value.exit_code == FAILURE
    assert str(caught.value) == ("distill resnet20 diverged in epoch 1: the training loss reached 3.6e+19 at step 2 "
                                 "(the first step's was 2.5). Stopped without keeping that epoch (no checkpoint was "
                                 "written). Likely fix: a lower --lr (this run used 1000).")


class Prior(nn.Module):
    """Logits that ignore the image: the best it can learn is the class prior, i.e. chance."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(classes))

    def forward(self, x):
        return self.bias.expand(len(x), -1)


def test_fit_stuck_at_chance_stops_after_two_epochs_and_keeps_the_written_ones(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (160, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(160) % 4  # balanced: predicting one class scores 25 %
    data = Dataset("flat", TensorSource(images[:80], labels[:80]), TensorSource(images[80:], labels[80:]),
                   classes=list("abcd"), preprocess=PRE, augment=Augment(pad=0, hflip=False))
    model = Prior(4)
    cfg = OptimConfig(epochs=5, lr=0.1, batch_size=16, weight_decay=0.0, milestones=(), seed=0)
    files = TrainFiles.in_dir(tmp_path)
    fit = Fit("train prior", model, SupervisedTask(PRE), data, cfg, files,
              lambda m, best: {"model": m.state_dict(), "metrics": dict(best)}, PRE, config_hash="h")
    with pytest.raises(Diverged, match=r"train prior diverged in epoch 2: top-1 stayed at chance \(25.0 % for 4 "
                                       r"classes\) for 2 epochs after the warm-up"):
        fit.run()
    assert torch.load(files.last, weights_only=True)["epoch"] == 1  # epoch 2 was not written
    assert files.best.exists()


def test_distill_with_a_huge_lr_exits_1_without_files_or_a_next_step(digits_teacher, tmp_path):
    out = tmp_path / "d"
    result = run_cli("distill", "--student", "resnet20", "--teacher-weights", digits_teacher, "--dataset", "digits",
                     "--epochs", "2", "--lr", "1000", "--out", out)
    assert result.exit_code == 1
    assert "diverged in epoch 1: the training loss reached" in result.stderr
    assert "Likely fix: a lower --lr (this run used 1000)" in result.stderr
    assert "next:" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert not (out / "best.pt").exists()
