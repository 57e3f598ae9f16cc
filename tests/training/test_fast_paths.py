"""Opt-in speed-ups of the training step (issue 25): --channels-last, --fused-sgd and --compile.
Off by default; refused with one line and exit 2 where they cannot work."""

import pytest
import torch

from pdd_edge import zoo
from pdd_edge.training.setup import TrainSetup
from pdd_edge.zoo.masked import MaskedNetwork
from tests.helpers import files_in, run_cli
from tests.training.test_training_loop import make_fit


def distill(out, *options):
    # A teacher file that does not exist: the options must be refused before it is even read.
    return run_cli("distill", "--student", "resnet20", "--teacher-weights", out.parent / "missing.pt",
                   "--dataset", "digits", "--device", "cpu", "--out", out, *options)


@pytest.mark.parametrize("options, message", [
    (["--compile", "cudagraphs"], "--compile cudagraphs needs a CUDA GPU (this run trains on cpu); "
                                  "use --compile on or --compile off"),
    (["--compile", "fast"], "--compile must be one of off, on, cudagraphs; got 'fast'"),
])
def test_unsupported_compile_mode_is_one_line_and_exit_2_before_any_work(tmp_path, options, message):
    result = distill(tmp_path / "run", *options)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {message}"
    assert files_in(tmp_path) == []


def test_fused_sgd_where_torch_has_none_is_one_line_and_exit_2(tmp_path, monkeypatch):
    def no_fused(params, lr, fused=False, **kw):
        raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")

    monkeypatch.setattr(torch.optim, "SGD", no_fused)
    result = distill(tmp_path / "run", "--fused-sgd")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: --fused-sgd: torch {torch.__version__} has no fused SGD on cpu (")
    assert "drop --fused-sgd" in result.stderr and "Traceback" not in result.stderr
    assert files_in(tmp_path) == []


def test_channels_last_with_a_value_is_a_usage_error(tmp_path):
    result = distill(tmp_path / "run", "--channels-last=yes")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert files_in(tmp_path) == []


def test_fast_paths_are_off_by_default():
    setup = TrainSetup.from_options("cpu", "off")
    assert (setup.channels_last, setup.fused_sgd, setup.compile) == (False, False, "off")
    assert setup.sgd_options() == {}


def test_channels_last_and_fused_sgd_train_the_same_numbers_within_float_rounding(tmp_path):
    plain = make_fit(tmp_path / "plain", epochs=1).run().history[0]
    fit = make_fit(tmp_path, epochs=1)
    fit.setup = TrainSetup(channels_last=True, fused_sgd=True)
    record = fit.run().history[0]
    assert fit.model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert record["loss"] == pytest.approx(plain["loss"], abs=1e-5)
    assert record["val_loss"] == pytest.approx(plain["val_loss"], abs=1e-5)
    # the checkpoint of an NHWC model loads into a fresh (NCHW) one
    fresh = zoo.build("vgg11", num_classes=4)
    MaskedNetwork.attach(fresh)
    fresh.load_state_dict(torch.load(tmp_path / "last.pt", weights_only=True)["model"])
