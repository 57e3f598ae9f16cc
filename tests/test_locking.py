"""One writer per run folder, training output and cached teacher (pdd_edge/locking.py), with the
lock held by a real second process."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from pdd_edge import locking
from pdd_edge.artifact import RunDir
from pdd_edge.data.preprocess import Preprocess
from pdd_edge.errors import PddError
from tests.helpers import run_cli

PRE = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=(32, 32))
# Holds a lock until stdin closes (or the process is killed); says "held" once it has it.
HOLDER = ("import sys; from pdd_edge import locking; "
          "cm = locking.hold(sys.argv[1], 'x', wait=sys.argv[2] == 'keep'); cm.__enter__(); print('held', flush=True); "
          "sys.stdin.read(); cm.__exit__(None, None, None)")


@pytest.fixture
def holder():
    """Start a process holding a lock file; yields a function path -> Popen."""
    procs = []

    def start(lock_path, keep: bool = False):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_path), "keep" if keep else "remove"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def assert_in_use(result, what: str, pid: int) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert f"{what} is in use by another pdd-edge process (pid {pid}); wait for it to finish" in result.stderr
    assert "choose another --out" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def _teacher_file(path):
    from pdd_edge import zoo
    from pdd_edge import checkpoint

    return checkpoint.save(path, checkpoint.checkpoint_dict(zoo.build("resnet20"), model_name="resnet20", preprocess=PRE,
                                                      dataset="digits", classes=[str(i) for i in range(10)]))


def test_compress_into_a_run_folder_another_process_holds_is_refused_writing_nothing(tmp_path, holder, monkeypatch):
    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    proc = holder(locking.folder_lock(out))
    result = run_cli("compress", "--teacher", "resnet20", "--teacher-epochs", "1", "--distill-epochs", "1",
                     "--finetune-epochs", "1", "--out", out)
    assert_in_use(result, f"run folder {out}", proc.pid)
    assert sorted(p.name for p in out.iterdir()) == [".pdd-edge.lock", ".pdd-edge.lock.pid"]  # the holder's only
    assert not (tmp_path / "cache").exists()


def test_distill_into_a_folder_another_process_holds_is_refused_writing_nothing(tmp_path, holder):
    teacher = _teacher_file(tmp_path / "t.pt")
    out = tmp_path / "d"
    proc = holder(locking.folder_lock(out))
    result = run_cli("distill", "--student", "resnet20", "--teacher-weights", teacher, "--epochs", "1", "--out", out)
    assert_in_use(result, str(out), proc.pid)
    assert sorted(p.name for p in out.iterdir()) == [".pdd-edge.lock", ".pdd-edge.lock.pid"]


def test_train_to_a_checkpoint_another_process_writes_is_refused_writing_nothing(tmp_path, holder):
    out = tmp_path / "T.pt"
    proc = holder(locking.file_lock(out))
    result = run_cli("train", "--model", "resnet20", "--epochs", "1", "--out", out)
    assert_in_use(result, str(out), proc.pid)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".T.pt.lock", ".T.pt.lock.pid"]


def test_lock_of_a_sigkilled_process_neither_blocks_nor_counts_as_run_content(tmp_path, holder):
    out = tmp_path / "run"
    proc = holder(locking.folder_lock(out))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The killed holder left its files; the OS released its lock.
    assert sorted(p.name for p in out.iterdir()) == [".pdd-edge.lock", ".pdd-edge.lock.pid"]
    with locking.hold(locking.folder_lock(out), str(out)):
        RunDir.create(out, {"student": "resnet20"}, resume=False)  # not "is not empty and holds no run"
    with locking.hold(locking.folder_lock(out), str(out)):
        assert RunDir.create(out, {"student": "resnet20"}, resume=True).manifest["config"] == {"student": "resnet20"}
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]  # a released lock leaves nothing


def test_lock_refusal_names_no_pid_when_the_recorded_holder_is_gone(tmp_path, holder):
    lock = locking.folder_lock(tmp_path)
    proc = holder(lock)
    pid_file = lock.with_name(lock.name + locking.PID_SUFFIX)
    pid_file.write_text("999999999\n")  # a stale record: no such process
    with pytest.raises(PddError, match=r"^x is in use by another pdd-edge process; wait") as caught:
        with locking.hold(lock, "x"):
            pass
    assert "pid" not in str(caught.value)
    proc.stdin.close()
    proc.wait()


def test_teacher_stage_waits_for_another_run_training_the_same_teacher_then_reuses_it(tmp_path, holder, monkeypatch, capfd):
    from pdd_edge import config
    from pdd_edge.data.options import DataConfig
    from pdd_edge.stages import teacher
    from pdd_edge.training.setup import TrainSetup

    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path / "cache"))
    cfg = config.resolve(config.from_recipe(None, student="resnet20", teacher="resnet20", data=DataConfig("digits")),
                         teacher_epochs=1)
    cached = teacher.cached_teacher(cfg, teacher.config(cfg))
    proc = holder(cached.with_suffix(".lock"), keep=True)
    _teacher_file(cached)  # the other run publishes its teacher ...
    # ... and finishes once this one is waiting: a thread closes its stdin after the wait message.
    import threading
    import time

    seen = []

    def release_when_waiting():
        deadline = time.time() + 60
        while not seen and time.time() < deadline:
            err = capfd.readouterr().err
            if f"the cached teacher {cached} is in use by another pdd-edge process (pid {proc.pid}); waiting" in err:
                seen.append(err)
            time.sleep(0.1)
        proc.stdin.close()

    closer = threading.Thread(target=release_when_waiting)
    closer.start()
    run = RunDir.create(tmp_path / "run", {}, resume=False)
    result = teacher.run(run, cfg, TrainSetup())
    closer.join()
    assert seen, "the teacher stage did not say that it waits"
    assert result.metrics["cached"] is True  # reused, not trained a second time
    assert not cached.with_suffix(".training").exists()
    assert run.teacher().read_bytes() == cached.read_bytes()


def test_released_lock_removes_the_folders_it_created_when_nothing_was_written(tmp_path):
    with locking.hold(locking.folder_lock(tmp_path / "a" / "b"), "b"):
        assert (tmp_path / "a" / "b").is_dir()
    assert list(tmp_path.iterdir()) == []
    with locking.hold(locking.folder_lock(tmp_path / "a" / "b"), "b"):
        (tmp_path / "a" / "b" / "best.pt").write_bytes(b"x")
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["best.pt"]
