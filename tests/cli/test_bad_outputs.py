"""Every command that writes a file refuses, before any work, an output that would overwrite one
of its inputs or that cannot be written; the inputs stay byte-identical."""

import hashlib
import os

import pytest

from tests.helpers import run_cli

# command line with {IN} for the input file and {OUT} for the output path
COMMANDS = {
    "export": ["export", "{IN}", "--out", "{OUT}"],
    "simplify": ["simplify", "{IN}", "--out", "{OUT}"],
    "quantize": ["quantize", "{IN}", "--out", "{OUT}"],
    "prune": ["prune", "{IN}", "--out", "{OUT}"],
    "profile": ["profile", "{IN}", "--json-out", "{OUT}"],
    "gate": ["gate", "{IN}", "--junit", "{OUT}"],
}
SUFFIX = {"export": ".pt", "prune": ".pt", "gate": ".json"}


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_input(tmp_path, name):
    path = tmp_path / f"input{SUFFIX.get(name, '.onnx')}"
    path.write_bytes(os.urandom(256))
    return path


def argv(name, src, dest):
    return [a.replace("{IN}", str(src)).replace("{OUT}", str(dest)) for a in COMMANDS[name]]


@pytest.mark.parametrize("name", COMMANDS)
def test_output_equal_to_input_is_refused_and_the_input_is_untouched(tmp_path, name):
    src = make_input(tmp_path, name)
    before = digest(src)
    result = run_cli(*argv(name, src, src))
    assert result.exit_code == 2 and "is the command's input" in result.stderr
    assert digest(src) == before and sorted(p.name for p in tmp_path.iterdir()) == [src.name]


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("where", ["proc", "folder", "under-a-file"])
def test_unwritable_output_is_refused_before_any_work(tmp_path, name, where):
    src = make_input(tmp_path, name)
    before = digest(src)
    if where == "proc":
        dest, message = "/proc/pdd-edge-test/out.bin", "is not writable"
    elif where == "folder":
        (tmp_path / "a-folder").mkdir()
        dest, message = tmp_path / "a-folder", "is a folder"
    else:
        dest, message = src / "out.bin", "is not a folder"
    result = run_cli(*argv(name, src, dest))
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and digest(src) == before


def test_train_refuses_an_unwritable_out_before_training(tmp_path):
    result = run_cli("train", "--model", "resnet20", "--out", "/proc/pdd-edge-test/t.pt")
    assert result.exit_code == 2 and "is not writable" in result.stderr


# commands that write a folder (a training run or a compress run); {IN} is a checkpoint they read
FOLDER_COMMANDS = {
    "distill": ["distill", "--student", "resnet20", "--teacher-weights", "{IN}", "--out", "{OUT}"],
    "finetune": ["finetune", "{IN}", "--out", "{OUT}"],
    "compress": ["compress", "--teacher-weights", "{IN}", "--out", "{OUT}"],
}


def folder_argv(name, src, dest):
    return [a.replace("{IN}", str(src)).replace("{OUT}", str(dest)) for a in FOLDER_COMMANDS[name]]


@pytest.mark.parametrize("name", FOLDER_COMMANDS)
@pytest.mark.parametrize("where", ["proc", "a-file"])
def test_run_folder_that_cannot_be_one_is_refused_before_any_work(tmp_path, name, where):
    src = tmp_path / "input.pt"
    src.write_bytes(os.urandom(256))
    before = digest(src)
    if where == "proc":
        dest, message = "/proc/pdd-edge-test/run", "is not writable"
    else:
        dest, message = tmp_path / "a-file", "is a file; give a folder"
        dest.write_text("mine")
    result = run_cli(*folder_argv(name, src, dest))
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and digest(src) == before
    if where == "a-file":
        assert dest.read_text() == "mine"


@pytest.mark.parametrize("name", ["distill", "finetune"])
def test_run_folder_whose_best_pt_is_the_input_is_refused(tmp_path, name):
    src = tmp_path / "run" / "best.pt"
    src.parent.mkdir()
    src.write_bytes(os.urandom(256))
    before = digest(src)
    result = run_cli(*folder_argv(name, src, src.parent))
    assert result.exit_code == 2 and "would overwrite the input" in result.stderr
    assert digest(src) == before and [p.name for p in src.parent.iterdir()] == ["best.pt"]


def test_compress_with_a_bad_teacher_file_leaves_nothing_behind(tmp_path):
    bad = tmp_path / "teacher.pt"
    bad.write_bytes(b"not a checkpoint at all")
    result = run_cli("compress", "--teacher-weights", bad, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "teacher stage: checkpoint" in result.stderr
    assert "is not a PyTorch checkpoint" in result.stderr
    assert not (tmp_path / "run").exists()


def test_compress_run_whose_teacher_file_breaks_after_validation_leaves_nothing(tmp_path):
    from pdd_edge import config, pipeline
    from pdd_edge.data.options import DataConfig
    from pdd_edge.errors import PddError

    bad = tmp_path / "teacher.pt"
    bad.write_bytes(b"replaced after validation")
    cfg = config.resolve(config.from_recipe("quick", student="resnet20", teacher="resnet56", data=DataConfig("digits")),
                         teacher_weights=str(bad))
    cfg = config.with_objective(cfg, macs=0.5)  # no latency table to measure before the teacher stage
    with pytest.raises(PddError, match="is not a PyTorch checkpoint"):
        pipeline.run_pipeline(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["evaluate", "{IN}", "--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    (["evaluate", "{IN}", "--batch-size", "-3"], "--batch-size must be a positive integer, got -3"),
    (["evaluate", "{IN}", "--input-size", "0"], ("--input-size must be H (square) or H,W (height,width; or HxW) in "
                                                 "positive pixels, e.g. 32 or 24,40; got '0'")),
    (["train", "--model", "resnet20", "--input-size", "-5", "--out", "{OUT}"], "--input-size must be H (square) or H,W"),
    (["train", "--model", "resnet20", "--input-size", "24,0", "--out", "{OUT}"], "got '24,0'"),
    (["distill", "--student", "resnet20", "--teacher-weights", "{IN}", "--target-macs-reduction", "0.5",
      "--budget-rate", "-1", "--out", "{OUT}"], "--budget-rate must be a positive number, got -1.0"),
])
def test_bad_option_values_are_refused_before_any_work(tmp_path, args, message):
    src = tmp_path / "input.pt"
    src.write_bytes(os.urandom(256))
    before = digest(src)
    dest = tmp_path / "out"
    result = run_cli(*[a.replace("{IN}", str(src)).replace("{OUT}", str(dest)) for a in args])
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert digest(src) == before and not dest.exists()
