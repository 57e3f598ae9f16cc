"""`pdd-edge latency-table` through the CLI: measuring, fitting, caching, and the refusals before any measurement."""

from __future__ import annotations

import json

import pytest

from pdd_edge.latency import multiple
from tests.helpers import assert_usage_error, files_in, run_cli


@pytest.mark.slow
def test_latency_table_measures_fits_caches_and_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path / "cache"))
    first = run_cli("latency-table", "resnet20", "--threads", "1", "--min-runs", "5", "--min-time", "0", "--json")
    assert first.exit_code == 0, first.stderr
    table = json.loads(first.stdout)
    assert not table["reused"] and table["key"]["threads"] == 1 and table["key"]["batch_size"] == 1
    assert table["channel_multiple"] in multiple.MULTIPLES and table["sweep"]  # local has no channel_multiple
    assert [n["kind"] for n in table["networks"]] == ["dense"] + ["fit"] * 4 + ["check"] * 4 + ["floor"]
    floor = table["networks"][-1]
    assert floor["measured_ms"] > 0 and table["floor"]["measured_ms"] == floor["measured_ms"]
    assert floor["measured_ms"] < table["dense"]["measured_ms"] and floor["layers"] < 20  # blocks gone
    assert len(table["layers"]) == 20  # 19 convs and the classifier
    files = files_in(tmp_path / "cache")
    assert len(files) == 1 and files[0].startswith("local-resnet20-32x32-b1-t1-ort")
    second = run_cli("latency-table", "resnet20", "--threads", "1", "--json")
    assert second.exit_code == 0 and json.loads(second.stdout)["reused"]


def test_latency_table_for_another_device_refuses_before_measuring(tmp_path, monkeypatch):
    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path / "cache"))
    result = run_cli("latency-table", "resnet20", "--target", "rpi4")
    assert_usage_error(result, "is not rpi4")
    assert "--remote USER@HOST" in result.stderr and files_in(tmp_path) == []


def test_latency_table_refuses_to_overwrite_a_file_that_is_not_a_table(tmp_path):
    precious = tmp_path / "notes.json"
    precious.write_text('{"mine": true}')
    result = run_cli("latency-table", "resnet20", "--out", precious)
    assert_usage_error(result, "exists and is not a latency table")
    assert precious.read_text() == '{"mine": true}'


@pytest.mark.parametrize("args, message", [
    (("--num-classes", "0"), "--num-classes must be positive"),
    (("--threads", "0"), "--threads must be from 1 to"),
    (("--threads", "100000"), "--threads must be from 1 to"),
    (("--batch-size", "0"), "--batch-size must be positive"),
    (("--target", "pi9000"), "unknown target 'pi9000'"),
])
def test_latency_table_bad_options_are_usage_errors_before_measuring(tmp_path, args, message):
    result = run_cli("latency-table", "resnet20", "--out", tmp_path / "t.json", *args)
    assert_usage_error(result, message)
    assert files_in(tmp_path) == []
