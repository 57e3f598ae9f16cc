"""`pdd-edge evaluate` through the CLI: checkpoints and ONNX files, and every bad input as one line with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch

from pdd_edge import zoo
from tests.conftest import AKAMASTER, CIFAR_JPEG, shared_file
from tests.deploy_helpers import tiny_classifier
from tests.helpers import assert_usage_error, cli_json, run_cli

IMAGENET = ["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"]


@pytest.mark.parametrize("filename, name, top1", [("resnet20-12fca82f.th", "resnet20", 85.65),
                                                  ("resnet56-4bfd9763.th", "resnet56", 88.50)])
def test_evaluate_akamaster_checkpoint_on_cifar_jpeg_val(filename, name, top1):
    ckpt = shared_file(AKAMASTER / filename)
    data = shared_file(CIFAR_JPEG)
    result = cli_json("evaluate", "--model", name, "--weights", ckpt, "--dataset", "imagefolder",
                      "--data-dir", data, *IMAGENET, "--json")
    # ../shared/datasets/README.md: the ResNet20 checkpoint scores about 85.7 % on these JPEG copies.
    assert result["count"] == 2000
    assert result["top1"] == pytest.approx(top1, abs=0.1)


def test_train_writes_checkpoint_that_evaluate_reads_without_model_name(teacher):
    result = cli_json("evaluate", teacher, "--json")
    assert result["model"] == "resnet20" and result["count"] == 359
    best = torch.load(teacher, weights_only=True)["metrics"]["val_top1"]
    assert result["top1"] == pytest.approx(best, abs=1e-9)


def test_evaluate_missing_data_dir_says_how_to_get_data(teacher, tmp_path):
    result = run_cli("evaluate", teacher, "--dataset", "cifar10", "--data-dir", tmp_path / "nothing")
    assert_usage_error(result, "--download")


def test_evaluate_missing_checkpoint_is_usage_error(tmp_path):
    assert_usage_error(run_cli("evaluate", tmp_path / "nope.pt"), "checkpoint not found")


def test_evaluate_corrupt_checkpoint_is_usage_error(teacher, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(teacher.read_bytes()[:1000])
    assert_usage_error(run_cli("evaluate", bad), "not a readable PyTorch checkpoint")


def test_evaluate_checkpoint_for_another_architecture_is_usage_error(tmp_path):
    path = tmp_path / "r20.pth"
    torch.save(zoo.build("resnet20").state_dict(), path)
    assert_usage_error(run_cli("evaluate", path, "--model", "resnet56"), "does not fit model resnet56")


def test_evaluate_malformed_mean_is_usage_error(teacher):
    assert_usage_error(run_cli("evaluate", teacher, "--mean", "0.5,abc,0.5"), "--mean must be comma-separated numbers")


@pytest.mark.one_thread
def test_evaluate_onnx_runs_third_party_model_when_user_gives_what_is_missing(tmp_path):
    model = tiny_classifier(tmp_path / "third_party.onnx")
    assert_usage_error(run_cli("evaluate", model), "does not record the dataset it was trained on; pass --dataset")
    result = run_cli("evaluate", model, "--dataset", "digits", "--mean", "0.3,0.3,0.3", "--std", "0.3,0.3,0.3")
    assert result.exit_code == 0, result.output
    assert "(ONNX) on digits val (359 images): top-1" in result.stdout
    assert "normalisation from command line" in result.stderr


@pytest.mark.one_thread
def test_evaluate_onnx_matches_pytorch_checkpoint(trained_onnx, trained_checkpoint):
    onnx_result = json.loads(run_cli("evaluate", trained_onnx, "--json").stdout)
    torch_result = json.loads(run_cli("evaluate", trained_checkpoint, "--json").stdout)
    assert onnx_result["top1"] == torch_result["top1"] and onnx_result["top5"] == torch_result["top5"]
    assert onnx_result["loss"] == pytest.approx(torch_result["loss"], abs=1e-4)
    assert onnx_result["preprocess"] == torch_result["preprocess"]
