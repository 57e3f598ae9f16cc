"""Failures of the machine (disk full, read-only file system, I/O error): one line, exit code 3,
nothing partial left behind; a genuine bug still shows its traceback."""

from __future__ import annotations

import dataclasses
import errno
import os
import subprocess
from pathlib import Path

import pytest

from pdd_edge.errors import ENVIRONMENT, PddError, environment_error
from tests.helpers import files_in, run_cli
from tests.cli.test_gate import write_report

# What torch.save raises when the disk fills up under it (torch 2.x, checked on /dev/full).
TORCH_DISK_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"


def disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("exc, line", [
    (OSError(errno.ENOSPC, "No space left on device", "/mnt/x.onnx"),
     "cannot access /mnt/x.onnx (ENOSPC): no space left on the device; free space there or write elsewhere, then re-run"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/t.pt"),
     "cannot access /ro/t.pt (EROFS): the file system is read-only; write elsewhere, then re-run"),
    (OSError(errno.EIO, "Input/output error"),
     "file system error (EIO): input/output error; the disk or its connection is failing: check it, then re-run"),
    (RuntimeError(TORCH_DISK_FULL),
     "a checkpoint write failed: the write failed (most often a full disk); free space there or write elsewhere, then re-run"),
])
def test_environment_error_is_one_line_with_exit_code_3(exc, line):
    env = environment_error(exc)
    assert env is not None and env.exit_code == ENVIRONMENT == 3
    assert str(env) == line


@pytest.mark.parametrize("exc", [RuntimeError("size mismatch for conv1.weight"), ValueError("x"), KeyError("y"),
                                 PddError("bad input"), FileNotFoundError(errno.ENOENT, "No such file", "/x")])
def test_environment_error_is_none_for_bugs_and_usage_errors(exc):
    assert environment_error(exc) is None


def test_command_reports_an_os_error_as_one_line_with_exit_code_3(tmp_path, monkeypatch):
    import pdd_edge.report.gate as gate

    monkeypatch.setattr(gate, "find_report", lambda *a: (_ for _ in ()).throw(
        OSError(errno.EIO, "Input/output error", str(tmp_path / "r.json"))))
    result = run_cli("gate", tmp_path / "r.json")
    assert result.exit_code == 3
    assert result.stderr.strip() == f"error: cannot access {tmp_path / 'r.json'} (EIO): input/output error; the disk or " \
                                    "its connection is failing: check it, then re-run"


def test_command_keeps_the_traceback_of_a_bug(tmp_path, monkeypatch):
    import pdd_edge.report.gate as gate

    monkeypatch.setattr(gate, "find_report", lambda *a: (_ for _ in ()).throw(RuntimeError("a genuine bug")))
    result = run_cli("gate", tmp_path / "r.json")
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


def test_gate_junit_on_a_full_disk_exits_3_and_leaves_no_file(tmp_path, budget, monkeypatch):
    report = write_report(tmp_path / "r.json")
    out = tmp_path / "ci" / "gate.xml"
    out.parent.mkdir()
    monkeypatch.setattr(Path, "write_bytes", disk_full)
    result = run_cli("gate", report, "--budget", budget, "--junit", out)
    assert result.exit_code == 3, result.output
    assert f"error: cannot write {out} (ENOSPC): no space left on the device" in result.stderr
    assert "Traceback" not in result.output and files_in(out.parent) == []


USER_MODELS = Path(__file__).parent / "zoo" / "user_models.py"


def _train_args(out: Path) -> list:
    """One epoch of a tiny model (checkpoint ~30 kB, resume state ~60 kB)."""
    return ["train", "--model", f"{USER_MODELS}:branchy", "--model-arg", "width=4", "--epochs", "1",
            "--batch-size", "256", "--out", out]


def test_train_leaves_no_checkpoint_when_its_resume_state_cannot_be_written(tmp_path, monkeypatch):
    """Before: t.pt was renamed into place, then writing t.last.pt filled the disk (exit 1, a
    complete-looking t.pt left). Now an epoch's files appear together or not at all."""
    import torch

    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        if ".last.pt" in str(path):
            raise RuntimeError(TORCH_DISK_FULL)
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    result = run_cli(*_train_args(tmp_path / "t.pt"))
    assert result.exit_code == 3, result.output
    assert f"error: cannot write {tmp_path / 't.last.pt'}: the write failed (most often a full disk)" in result.stderr
    assert files_in(tmp_path) == []


def _stage(name: str, run) -> object:
    from pdd_edge import pipeline

    return dataclasses.replace(next(s for s in pipeline.STAGES if s.name == name), run=run)


def _fake_teacher(run, cfg, setup):
    from pdd_edge.fileio import write_bytes
    from pdd_edge.stages import StageResult

    return StageResult([write_bytes(run.teacher(), b"teacher")])


def _run_with_full_disk_after_the_teacher(tmp_path, monkeypatch, resume: bool):
    from pdd_edge import config, pipeline
    from pdd_edge.data.options import DataConfig

    def baseline_on_full_disk(run, cfg, setup):
        raise OSError(errno.ENOSPC, "No space left on device")

    stages = [_stage("teacher", _fake_teacher), _stage("baseline", baseline_on_full_disk)]
    monkeypatch.setattr(pipeline, "STAGES", stages + [s for s in pipeline.STAGES if s.name not in ("teacher", "baseline")])
    cfg = config.resolve(config.from_recipe("quick", student="resnet20", teacher="resnet56", data=DataConfig("digits")))
    with pytest.raises(OSError):
        pipeline.run_pipeline(cfg, tmp_path / "run", resume=resume)


def test_fresh_compress_that_fails_on_a_full_disk_leaves_no_run_folder(tmp_path, monkeypatch):
    _run_with_full_disk_after_the_teacher(tmp_path, monkeypatch, resume=False)
    assert not (tmp_path / "run").exists()


def test_resumed_compress_that_fails_on_a_full_disk_keeps_its_finished_stages(tmp_path, monkeypatch):
    (tmp_path / "run").mkdir()  # the folder was there before this command: not its to remove
    _run_with_full_disk_after_the_teacher(tmp_path, monkeypatch, resume=True)
    assert files_in(tmp_path / "run") == ["manifest.json", "teacher.pt"]


def _small_disk(tmp_path, free_kb: int):
    """A real 1 MiB file system with `free_kb` left (needs root and mount; skipped where that is
    not possible). Yields a folder on it; the filler lies beside that folder."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    (mnt / "filler").write_bytes(b"\0" * (1024 - free_kb) * 1024)
    (mnt / "out").mkdir()
    yield mnt / "out"
    # lazy: torch may still hold the file its failed write opened
    subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.fixture
def nearly_full_disk(tmp_path):
    """64 kB free: room for a tiny model's checkpoint, not for the resume state beside it."""
    yield from _small_disk(tmp_path, 64)


@pytest.fixture
def full_disk(tmp_path):
    """Nothing free: a file can be created (the output checks pass), not filled."""
    yield from _small_disk(tmp_path, 0)


def test_train_on_a_really_full_disk_exits_3_and_leaves_nothing(nearly_full_disk):
    result = run_cli(*_train_args(nearly_full_disk / "t.pt"))
    assert result.exit_code == 3, result.output
    assert f"error: cannot write {nearly_full_disk / 't.last.pt'}" in result.stderr
    assert files_in(nearly_full_disk) == []


def _export_args(tmp_path, out):
    from tests.deploy_helpers import zoo_checkpoint

    return ["export", zoo_checkpoint("resnet20", False, tmp_path / "in.pt")[0], "--out", out / "m.onnx"], out / "m.onnx"


def _prune_args(tmp_path, out):
    from tests.deploy_helpers import masked_checkpoint

    return ["prune", masked_checkpoint(tmp_path / "in.pt"), "--out", out / "p.pt"], out / "p.pt"


def _profile_args(tmp_path, out):
    from tests.deploy_helpers import tiny_classifier

    return ["profile", tiny_classifier(tmp_path / "in.onnx"), "--json-out", out / "p.json", "--warmup", "0",
            "--min-runs", "3", "--min-time", "0", "--no-memory"], out / "p.json"


def _gate_args(tmp_path, out):
    budget = tmp_path / "b.toml"
    budget.write_text("[budget]\nmodel_size_mb = 1\n")
    return ["gate", write_report(tmp_path / "r.json"), "--budget", budget, "--junit", out / "gate.xml"], out / "gate.xml"


@pytest.mark.parametrize("make_args", [_export_args, _prune_args, _profile_args, _gate_args],
                         ids=["export", "prune", "profile", "gate"])
def test_command_on_a_really_full_disk_exits_3_with_one_line_and_leaves_nothing(tmp_path, full_disk, make_args):
    args, written = make_args(tmp_path, full_disk)
    result = run_cli(*args)
    assert result.exit_code == 3, result.output
    line = result.stderr.strip().splitlines()[-1]  # torch.save's failure names no errno: its own cause
    assert line in (f"error: cannot write {written} (ENOSPC): no space left on the device; free space there or write "
                    "elsewhere, then re-run",
                    f"error: cannot write {written}: the write failed (most often a full disk); free space there or "
                    "write elsewhere, then re-run")
    assert "Traceback" not in result.output and files_in(full_disk) == []


def test_all_or_nothing_shows_no_file_when_a_later_write_of_the_group_fails(tmp_path):
    from pdd_edge.fileio import all_or_nothing, write_bytes, write_text

    write_text(tmp_path / "history.json", "epoch 1")
    with pytest.raises(PddError, match="cannot write"):
        with all_or_nothing():
            write_bytes(tmp_path / "best.pt", b"epoch 2")
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(Path, "write_text", disk_full)
                write_text(tmp_path / "history.json", "epoch 2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json"]
    assert (tmp_path / "history.json").read_text() == "epoch 1"


def test_fresh_compress_whose_first_manifest_write_fails_leaves_no_run_folder(tmp_path, monkeypatch):
    from pdd_edge import config, pipeline
    from pdd_edge.data.options import DataConfig

    monkeypatch.setattr(Path, "write_text", disk_full)  # the lock's pid file, then the manifest, are its first files
    cfg = config.resolve(config.from_recipe("quick", student="resnet20", teacher="resnet56", data=DataConfig("digits")))
    with pytest.raises(PddError, match=r"cannot write .*/run/\S* \(ENOSPC\)"):
        pipeline.run_pipeline(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
