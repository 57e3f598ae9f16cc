"""The epoch loop: best-checkpoint selection and bit-exact resume after an interruption."""

import json

import pytest
import torch

from pdd_edge import checkpoint
from pdd_edge import zoo
from pdd_edge.data.base import Augment, Dataset, TensorSource
from pdd_edge.data.preprocess import Preprocess
from pdd_edge.errors import PddError
from pdd_edge.training import progress as progress_mod
from pdd_edge.training.loop import Fit, OptimConfig, TrainFiles, scaled_milestones
from pdd_edge.training.tasks import SupervisedTask
from pdd_edge.zoo.masked import MaskedNetwork

PRE = Preprocess(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(32, 32))


def tiny_dataset() -> Dataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (40, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(40) % 4
    return Dataset("tiny", TensorSource(images[:32], labels[:32]), TensorSource(images[32:], labels[32:]),
                   classes=list("abcd"), preprocess=PRE, augment=Augment(pad=4, hflip=True))


def make_fit(folder, resume=False, epochs=3):
    torch.manual_seed(0)
    model = zoo.build("vgg11", num_classes=4)  # dropout: resume must restore the global RNG too
    MaskedNetwork.attach(model)
    cfg = OptimConfig(epochs=epochs, lr=0.01, batch_size=8, weight_decay=5e-3, milestones=(2,), seed=5)

    def make_checkpoint(m, best):
        return checkpoint.checkpoint_dict(m, model_name="vgg11", preprocess=PRE, metrics={"val_top1": best["val_top1"]})

    return Fit("test", model, SupervisedTask(PRE), tiny_dataset(), cfg, TrainFiles.in_dir(folder),
               make_checkpoint, PRE, config_hash="h", resume=resume)


def test_fit_resume_after_interruption_matches_uninterrupted_run(tmp_path, monkeypatch):
    make_fit(tmp_path / "full").run()

    calls = {"n": 0}
    original_step = progress_mod.EpochProgress.step

    def crash_in_third_epoch(self, loss):
        calls["n"] += 1
        if calls["n"] == 4 * 2 + 2:  # 4 batches per epoch: dies in the middle of epoch 3
            raise KeyboardInterrupt
        original_step(self, loss)

    monkeypatch.setattr(progress_mod.EpochProgress, "step", crash_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        make_fit(tmp_path / "cut").run()
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["epoch"] == 2
    monkeypatch.setattr(progress_mod.EpochProgress, "step", original_step)

    result = make_fit(tmp_path / "cut", resume=True).run()
    assert result.resumed_from == 2
    full = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert all(torch.equal(full["model"][k], cut["model"][k]) for k in full["model"])
    assert json.loads((tmp_path / "full" / "history.json").read_text())["epochs"][-1]["loss"] == \
        json.loads((tmp_path / "cut" / "history.json").read_text())["epochs"][-1]["loss"]


def test_fit_keeps_checkpoint_of_best_validation_epoch(tmp_path):
    result = make_fit(tmp_path).run()
    best_epoch = max(result.history, key=lambda r: r["val_top1"])["epoch"]
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    assert result.best["epoch"] == best_epoch
    assert saved["metrics"]["val_top1"] == result.best["val_top1"]
    assert saved["masks"] is not None


def test_fit_resume_with_other_config_is_refused(tmp_path):
    make_fit(tmp_path, epochs=1).run()
    fit = make_fit(tmp_path, resume=True, epochs=1)
    fit.config_hash = "other"
    with pytest.raises(PddError, match="different options"):
        fit.run()


def test_optim_config_rejects_bad_values():
    with pytest.raises(PddError, match="epochs"):
        OptimConfig(epochs=0, lr=0.1, batch_size=8, weight_decay=0, milestones=())
    with pytest.raises(PddError, match="milestones"):
        OptimConfig(epochs=5, lr=0.1, batch_size=8, weight_decay=0, milestones=(3, 2))


def test_scaled_milestones_stretch_paper_schedule():
    assert scaled_milestones(50, (0.4, 0.8)) == (20, 40)
    assert scaled_milestones(150, (1 / 3, 2 / 3)) == (50, 100)
    assert scaled_milestones(2, (0.4, 0.8)) == (1,)


def test_optim_config_lr_warms_up_linearly_then_steps_down_at_milestones():
    cfg = OptimConfig(epochs=4, lr=0.1, batch_size=8, weight_decay=0, milestones=(2, 3), warmup_epochs=1)
    assert [cfg.lr_at(0, s, 4) for s in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert [cfg.lr_at(e, 0, 4) for e in (1, 2, 3)] == pytest.approx([0.1, 0.01, 0.001])
    with pytest.raises(PddError, match="warm-up"):
        OptimConfig(epochs=2, lr=0.1, batch_size=8, weight_decay=0, milestones=(), warmup_epochs=3)


def test_cosine_schedule_falls_from_lr_to_zero_over_the_runs_steps():
    cfg = OptimConfig(epochs=2, lr=0.1, batch_size=8, weight_decay=0, milestones=(), schedule="cosine")
    # t = (epoch + step / 4) / 2 for 4 steps per epoch: 0, 1/8, ..., 7/8; lr = 0.1 * (1 + cos(pi t)) / 2
    golden = [0.1, 0.0961940, 0.0853553, 0.0691342, 0.05, 0.0308658, 0.0146447, 0.0038060]
    assert [cfg.lr_at(e, s, 4) for e in range(2) for s in range(4)] == pytest.approx(golden, abs=1e-7)
    assert [cfg.lr_factor(e) for e in range(2)] == pytest.approx([1.0, 0.5])  # at each epoch's start
    warm = OptimConfig(epochs=2, lr=0.1, batch_size=8, weight_decay=0, milestones=(), schedule="cosine", warmup_epochs=1)
    assert [warm.lr_at(0, s, 4) for s in range(4)] == pytest.approx([g * (s + 1) / 4 for s, g in enumerate(golden[:4])])


def test_an_unknown_schedule_or_milestones_with_cosine_are_refused():
    with pytest.raises(PddError, match=r"unknown learning-rate schedule \(--lr-schedule\) 'linear'; choose one of: step, cosine"):
        OptimConfig(epochs=2, lr=0.1, batch_size=8, weight_decay=0, milestones=(), schedule="linear")
    with pytest.raises(PddError, match="milestones \\(1,\\) belong to the step schedule"):
        OptimConfig(epochs=2, lr=0.1, batch_size=8, weight_decay=0, milestones=(1,), schedule="cosine")


def test_a_recipe_gives_the_cosine_schedule_no_milestones():
    from pdd_edge.stages import distill

    assert distill.RECIPE.optim(6).milestones == (2, 5)
    cosine = distill.RECIPE.optim(6, schedule="cosine")
    assert (cosine.schedule, cosine.milestones) == ("cosine", ())


def test_epoch_line_stays_one_line_in_a_narrow_non_terminal_log():
    import io

    from rich.console import Console

    buf = io.StringIO()
    record = {"epoch": 3, "loss": 3.2747, "ce": 1.2211, "kd": 6.3552, "lambda": 0.04, "val_top1": 58.85, "kept_pct": 74.9,
              "masked_macs": 20_461_312, "macs_reduction_pct": 49.5, "lr": 0.0005, "seconds": 58.4, "best": True}
    with progress_mod.EpochProgress("distill resnet20", 10, console=Console(file=buf, width=80)) as progress:
        progress.end_epoch(record)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("epoch 3/10") and lines[0].endswith("*best*")
