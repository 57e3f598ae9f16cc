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


def test_watch_at_chance_names_the_diagnosed_cause_instead_of_the_lr(tmp_path):
    watch = Watch("distill resnet20", lr=0.05, warmup_epochs=0, best=tmp_path / "best.pt",
                  diagnose=lambda: "a better teacher: t.pt is itself at chance")
    watch.step(2.3, epoch=1, step=0, classes=10)
    with pytest.raises(Diverged) as caught:
        watch.epoch([epoch(1, 10.0, 10.5), epoch(2, 11.0, 9.0)], val_images=1000)
    assert str(caught.value).endswith("Likely fix: a better teacher: t.pt is itself at chance.")
    assert "--lr" not in str(caught.value)


def _flat_data(classes=4, per_class=40):
    """Images whose brightness is their label: a model that reads it is perfect, Prior is at chance."""
    n = classes * per_class
    labels = torch.arange(n) % classes
    images = (labels * 60).to(torch.uint8)[:, None, None, None].expand(n, 3, 8, 8).contiguous()
    half = n // 2
    return Dataset("flat", TensorSource(images[:half], labels[:half]), TensorSource(images[half:], labels[half:]),
                   classes=[str(c) for c in range(classes)], preprocess=PRE, augment=Augment(pad=0, hflip=False))


class Oracle(nn.Module):
    """Reads the label off the brightness (normalised by PRE): a teacher far above chance."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # a model has parameters (evaluate finds its device by them)

    def forward(self, x):
        level = (x[:, 0, 0, 0] * 0.25 + 0.5) * 255 / 60
        return -(level[:, None] - torch.arange(4.0)[None, :]).abs()


def test_teacher_at_chance_is_named_only_when_the_teacher_is_at_chance():
    from pdd_edge.stages.distill import teacher_at_chance

    data = _flat_data()
    hint = teacher_at_chance(Prior(4), PRE, data, "t.pt")
    assert hint == ("a better teacher: t.pt is itself at chance on this data (validation top-1 25.00 %); "
                    "train it longer (more epochs, a lower --lr) before distilling from it")
    assert teacher_at_chance(Oracle(), PRE, data, "t.pt") is None
    assert teacher_at_chance(Prior(4), PRE, _flat_data(per_class=10), "t.pt") is None  # too few images to judge


def test_model_at_chance_judges_the_chosen_epochs_validation_top1():
    from pdd_edge.training.divergence import model_at_chance

    assert model_at_chance({"epoch": 1, "val_top1": 10.3}, classes=10, val_images=359)
    assert not model_at_chance({"epoch": 1, "val_top1": 12.5}, classes=10, val_images=359)
    assert not model_at_chance({"epoch": 1, "val_top1": 10.3}, classes=10, val_images=100)  # too few to tell
    assert not model_at_chance({}, classes=10, val_images=359)  # no epoch finished


def test_train_at_chance_exits_1_and_keeps_no_model(tmp_path):
    out = tmp_path / "T.pt"
    # the case: one epoch at lr 0.1 leaves ResNet-20 at 10 % on digits
    result = run_cli("train", "--model", "resnet20", "--epochs", "1", "--out", out)
    assert result.exit_code == FAILURE, result.stderr
    assert "error: train resnet20: the model is at chance: best validation top-1 " in result.stderr
    assert f"chance is 10.0 % for 10 classes; {out} was not kept" in result.stderr
    assert "Likely fix: more --epochs, or a lower --lr (this run: 1 epoch at lr 0.1)." in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T.history.json"]


def test_compress_teacher_at_chance_exits_1_and_neither_caches_nor_hands_it_on(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("PDD_EDGE_CACHE", str(cache))
    run = tmp_path / "run"
    # a teacher that barely moves from its initialisation (8x8: the digits' own size, cheap to train)
    result = run_cli("compress", "--teacher", "resnet20", "--teacher-epochs", "1", "--teacher-lr", "1e-6",
                     "--input-size", "8", "--distill-epochs", "1", "--finetune-epochs", "1",
                     "--target-macs-reduction", "0.5", "--out", run)  # no latency table to measure first
    assert result.exit_code == FAILURE, result.stderr
    assert "the model is at chance" in result.stderr
    assert "Likely fix: more --teacher-epochs, or a lower --teacher-lr" in result.stderr
    assert not list((cache / "teachers").glob("*.pt"))  # nothing published for the next run to reuse
    assert not run.joinpath("teacher", "teacher.pt").exists()
    assert "baseline" not in result.stderr


def test_distill_from_a_teacher_at_chance_says_the_teacher_is_the_cause(tmp_path):
    from pdd_edge import checkpoint
    from pdd_edge import zoo

    torch.manual_seed(0)
    teacher = checkpoint.save(tmp_path / "T.pt", checkpoint.checkpoint_dict(  # untrained: at chance
        zoo.build("resnet20"), model_name="resnet20", preprocess=Preprocess((0.5,) * 3, (0.25,) * 3, (8, 8)),
        dataset="digits", classes=[str(i) for i in range(10)]))
    # alpha 0: pure KD, so the student learns only what the teacher knows
    result = run_cli("distill", "--student", "resnet20", "--teacher-weights", teacher, "--alpha", "0", "--epochs", "2",
                     "--input-size", "8", "--out", tmp_path / "d")
    assert result.exit_code == FAILURE, result.stderr
    assert "top-1 stayed at chance" in result.stderr
    assert f"Likely fix: a better teacher: {teacher} is itself at chance on this data (validation top-1 " in result.stderr
    assert "a lower --lr (this run used" not in result.stderr
