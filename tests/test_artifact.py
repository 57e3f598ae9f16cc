"""RunDir: what an unfinished stage leaves behind is resumed only by the same stage; an existing run is
replaced only when asked to resume."""

import pytest

from pdd_edge.artifact import RunDir, StageRecord
from tests.run_fixtures import make_run


def _leave_training_state(run: RunDir, stage: str) -> None:
    folder = run.stage_folder(stage)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "last.pt").write_bytes(b"epoch 5 of 6")


def test_an_unfinished_stage_resumes_with_the_same_hash_and_starts_over_with_another(tmp_path):
    run = RunDir.create(tmp_path / "run", {"student": "resnet20"}, resume=False)
    run.begin("distill", "hash-v0")
    _leave_training_state(run, "distill")  # then the process is killed

    again = RunDir.create(tmp_path / "run", {"student": "resnet20"}, resume=True)
    again.begin("distill", "hash-v0")  # same options and stage version: the epochs are kept
    assert (again.stage_folder("distill") / "last.pt").read_bytes() == b"epoch 5 of 6"

    third = RunDir.create(tmp_path / "run", {"student": "resnet20"}, resume=True)
    third.begin("distill", "hash-v1")  # e.g. the stage's version was bumped: its old state is stale
    assert not third.stage_folder("distill").exists()
    assert RunDir.load(tmp_path / "run").manifest["started"] == {"distill": "hash-v1"}


def test_a_stage_folder_no_attempt_recorded_is_not_resumed(tmp_path):
    run = RunDir.create(tmp_path / "run", {}, resume=False)
    _leave_training_state(run, "distill")  # left by a pdd-edge that did not record its attempts
    run.begin("distill", "hash")
    assert not run.stage_folder("distill").exists()


def test_a_finished_stage_drops_its_attempt_record(tmp_path):
    run = RunDir.create(tmp_path / "run", {}, resume=False)
    run.begin("prune", "hash")
    run.commit(StageRecord(name="prune", config_hash="hash", seconds=1.0, files=[], metrics={}))
    assert RunDir.load(tmp_path / "run").manifest["started"] == {}
    assert run.is_done("prune", "hash")


def test_run_dir_create_refuses_existing_run_without_resume(tmp_path):
    make_run(tmp_path / "run", profile=False)
    from pdd_edge.errors import PddError

    with pytest.raises(PddError, match="already holds a run; add --resume"):
        RunDir.create(tmp_path / "run", {}, resume=False)
