"""Issue 22 items 7 and 8 (and item 6 in compress): checks that came too late and hints that pointed the wrong way.

Each test names the old behaviour it guards against; the fixtures are untrained networks (no
training), so every test runs in seconds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pdd_edge import checkpoint
from pdd_edge import zoo
from pdd_edge.cli.console import command
from pdd_edge.errors import FAILURE, PddError
from pdd_edge.training.divergence import Diverged
from tests.helpers import assert_usage_error, files_in, run_cli

USER = Path(__file__).parents[1] / "zoo" / "user_models.py"


def _digits_preprocess():
    from pdd_edge.data import load_dataset

    return load_dataset("digits").preprocess


def _save(path: Path, model, name: str, **extra) -> Path:
    checkpoint.save(path, checkpoint.checkpoint_dict(model, model_name=name, preprocess=_digits_preprocess(),
                                               dataset="digits", **extra))
    return path


@pytest.fixture
def file_model(tmp_path) -> tuple[Path, Path]:
    """(checkpoint of a user's file model, that file): what `path/to/file.py:fn` training leaves."""
    source = tmp_path / "net.py"
    shutil.copy(USER, source)
    return _save(tmp_path / "fm.pt", zoo.build(f"{source}:branchy"), f"{source}:branchy"), source


@pytest.fixture
def teacher(tmp_path) -> Path:
    return _save(tmp_path / "teacher.pt", zoo.build("resnet20"), "resnet20")


# --- item 7: refused before anything is written ----------------------------------------------

@pytest.mark.parametrize("args, message", [
    (("--dataset", "nosuch"), "unknown dataset 'nosuch'"),
    (("--dataset", "cifar10", "--data-dir", "/missing"), "cifar10 not found (or corrupted) in /missing"),
    (("--dataset", "cifar10"), "cifar10 needs --data-dir"),
    (("--dataset", "imagefolder", "--data-dir", "."), "imagefolder: train is missing"),
    (("--round-to", "0"), "distill stage: --round-to must be a positive integer, got 0"),
    (("--device", "cpu", "--amp", "fp16"), "--amp fp16 on the CPU runs many times slower than float32"),
])
def test_compress_refuses_bad_data_round_to_and_amp_before_the_run_folder_exists(tmp_path, monkeypatch, args, message):
    # Before: the dataset failed at the baseline stage (a run folder left behind), --round-to 0 was
    # taken as 1 and fp16 ran on the CPU 70x slower than float32.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path / "cache"))
    assert_usage_error(run_cli("compress", *args, "--out", tmp_path / "run"), message)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("code, shown", [("sys.exit(0)", "sys.exit(0)"), ("sys.exit()", "sys.exit(None)"),
                                         ("raise SystemExit('bye')", "sys.exit('bye')")])
def test_a_model_builder_that_calls_sys_exit_is_a_usage_error_not_a_success(tmp_path, monkeypatch, teacher, code, shown):
    # Before: `models` and `distill` exited with the builder's status (0) and wrote nothing.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quits.py").write_text(f"import sys\n\ndef build(num_classes=10):\n    {code}\n")
    assert_usage_error(run_cli("models", "quits.py:build"), f"the model builder quits.py:build called {shown}")
    result = run_cli("distill", "--student", "quits.py:build", "--teacher-weights", teacher, "--out", tmp_path / "d")
    assert_usage_error(result, f"the model builder quits.py:build called {shown}")
    assert not (tmp_path / "d").exists()


def test_a_model_file_that_calls_sys_exit_on_import_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quits_early.py").write_text("import sys\nsys.exit(3)\n")
    assert_usage_error(run_cli("models", "quits_early.py:build"), "the model file quits_early.py called sys.exit(3)")


# --- item 8: hints that name the fix ---------------------------------------------------------

def test_student_weights_of_a_file_model_name_the_student_spec_to_pass(tmp_path, file_model, teacher):
    # Before: "drop --student", after which click said --student was missing.
    ckpt, source = file_model
    result = run_cli("distill", "--student", "resnet20", "--student-weights", ckpt, "--teacher-weights", teacher,
                     "--out", tmp_path / "d")
    assert_usage_error(result, f"holds a {source}:branchy, not a resnet20: pass --student {source}:branchy")
    assert "drop" not in result.stderr and not (tmp_path / "d").exists()


def test_compress_teacher_weights_of_a_file_model_name_the_teacher_spec_to_pass(tmp_path, file_model):
    # Before: "drop --teacher", but --teacher defaults to resnet56: the fix is --teacher file.py:fn.
    ckpt, source = file_model
    result = run_cli("compress", "--teacher-weights", ckpt, "--out", tmp_path / "run")
    assert_usage_error(result, f"not a resnet56: pass --teacher {source}:branchy")
    assert not (tmp_path / "run").exists()


def test_prune_with_another_model_file_says_it_is_another_file_not_a_changed_one(tmp_path, file_model, monkeypatch):
    from pdd_edge.zoo import specs
    from pdd_edge.zoo.masked import MaskedNetwork

    _, source = file_model
    masked = zoo.build(f"{source}:branchy")
    MaskedNetwork.attach(masked, "open")
    ckpt = _save(tmp_path / "masked.pt", masked, f"{source}:branchy")
    monkeypatch.setattr(specs, "_TRUSTED", set())  # as in a new process: only the file named below is trusted
    other = tmp_path / "other.py"
    other.write_text(source.read_text() + "\n# another model file\n")
    result = run_cli("prune", ckpt, "--model", f"{other}:branchy", "--out", tmp_path / "p.pt")
    assert_usage_error(result, f"{other} is not the file the checkpoint's model was made from ({source}, sha256 ")
    assert "has changed" not in result.stderr and not (tmp_path / "p.pt").exists()
    source.write_text(source.read_text() + "\n# edited\n")  # the same file, edited: that one has changed
    result = run_cli("prune", ckpt, "--model", f"{source}:branchy", "--out", tmp_path / "p.pt")
    assert_usage_error(result, f"{source} has changed since the checkpoint was written")


@pytest.mark.parametrize("command_args", [("models", "torchvision:resnet18"),
                                          ("train", "--model", "torchvision:resnet18", "--out", "t.pt")])
def test_model_arg_num_classes_says_where_the_class_count_comes_from(tmp_path, monkeypatch, command_args):
    # Before: "got multiple values for keyword argument 'num_classes'".
    monkeypatch.chdir(tmp_path)
    result = run_cli(*command_args, "--model-arg", "num_classes=5")
    assert_usage_error(result, "the class count is not a --model-arg; it comes from --num-classes")
    assert files_in(tmp_path) == []


# A teacher at chance named as the cause of a stuck distillation: tests/test_divergence.py.


# --- item 8: under torchrun, an error every rank meets is printed once -----------------------

def _app(exc: BaseException) -> typer.Typer:
    app = typer.Typer()

    @command(app, "work")
    def work(resume: bool = False) -> None:
        raise exc

    return app


@pytest.mark.parametrize("exc, rank1_prints", [
    (PddError("bad option"), False),  # usage error: the same on every rank
    (Diverged("stuck at chance", every_rank=True), False),  # seen in the all-reduced epoch: every rank stops
    (Diverged("loss exploded", every_rank=False), True),  # this rank's own step loss
    (PddError("this rank's shard is unreadable", exit_code=FAILURE), True),
    (KeyboardInterrupt(), False),  # torchrun passes Ctrl-C to every rank
])
def test_only_rank_0_reports_an_error_every_rank_meets(monkeypatch, exc, rank1_prints):
    # Before: a divergence (exit 1) and an interrupt printed once per rank.
    monkeypatch.setenv("RANK", "1")
    rank1 = CliRunner().invoke(_app(exc), [])
    monkeypatch.setenv("RANK", "0")
    rank0 = CliRunner().invoke(_app(exc), [])
    assert rank1.exit_code == rank0.exit_code != 0
    assert rank0.stderr.strip() != ""
    assert (rank1.stderr.strip() != "") is rank1_prints, rank1.stderr
    if rank1_prints:
        assert rank1.stderr.startswith("error (rank 1): ")


def test_compress_names_a_bad_target_file_itself_before_the_run_folder_exists(tmp_path, monkeypatch):
    # Item 6 where a target is used: before, the file was refused as "prune stage: ..." (threads = 100000
    # was not refused at all).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "board.toml").write_text("threads = 100000\n")
    result = run_cli("compress", "--target", "board.toml", "--out", tmp_path / "run")
    assert_usage_error(result, "error: board.toml: key 'threads' must be an integer from 1 to")
    assert files_in(tmp_path) == ["board.toml"]
