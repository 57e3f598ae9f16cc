"""JSON written or printed by pdd-edge is strict JSON: no NaN or Infinity tokens."""

import json
import math
import os

from pdd_edge.fileio import json_text, write_json


def test_json_text_writes_non_finite_numbers_as_null_at_any_depth():
    obj = {"top1": math.nan, "speedup": math.inf, "rows": [1.5, -math.inf, {"x": math.nan}], "n": 3}
    text = json_text(obj, indent=None)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"top1": None, "speedup": None, "rows": [1.5, None, {"x": None}], "n": 3}


def test_write_json_output_parses_with_a_strict_parser(tmp_path):
    path = write_json(tmp_path / "r.json", {"gate": {"top1": math.nan}})

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    assert json.loads(path.read_text(), parse_constant=refuse) == {"gate": {"top1": None}}


def test_atomic_write_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    import stat

    from pdd_edge.fileio import write_text

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.fstat(fd).st_ino,
                                                                stat.S_ISDIR(os.fstat(fd).st_mode))), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace",)), real_replace(a, b))[1])

    path = write_text(tmp_path / "out.json", "{}\n")

    assert events == [("fsync", path.stat().st_ino, False), ("replace",), ("fsync", tmp_path.stat().st_ino, True)]


def test_write_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    from pdd_edge.fileio import check_output, write_text

    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "latest.json"
    target.write_text("old\n")
    link = tmp_path / "out.json"
    link.symlink_to(target)

    write_text(check_output(link, option="--json"), "new\n")

    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "store"]  # no temp file left in either folder
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["latest.json"]


def test_check_output_refuses_a_symlink_whose_target_folder_is_not_writable(tmp_path):
    import pytest

    from pdd_edge.errors import PddError
    from pdd_edge.fileio import check_output

    link = tmp_path / "out.json"
    link.symlink_to("/proc/pdd-edge-nowhere/latest.json")

    with pytest.raises(PddError, match=r"cannot write --json .*out.json: /proc is not writable"):
        check_output(link, option="--json")
