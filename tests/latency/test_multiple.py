"""latency/multiple.py: the channel multiple a device runs fastest at."""

from __future__ import annotations

import json

import pytest

from pdd_edge.latency import multiple
from pdd_edge.profiling.targets import load_target, parse_target


def test_channel_multiple_is_the_smallest_whose_widths_no_wider_width_beats():
    widths = list(range(8, 41))
    # Latency grows with width, except that multiples of 16 are fast (a blocked kernel).
    ms = [0.01 * c * (0.6 if c % 16 == 0 else 1.0) for c in widths]
    rows = multiple.sweep_rows(widths, ms, batch=1)
    assert multiple.recommend(rows) == 16
    assert next(r for r in rows if r["width"] == 24)["dominated_by"] == 32
    assert multiple.recommend(multiple.sweep_rows(widths, [0.01 * c for c in widths], batch=1)) == 1


def test_channel_multiple_here_is_declared_measured_once_per_machine_or_none_for_another_device(tmp_path, monkeypatch):
    from pdd_edge.latency import multiple

    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path))
    assert multiple.here(load_target("x86-server")) == 16  # declared: nothing measured
    assert multiple.here(load_target("rpi4")) is None  # another device (this machine is not a Raspberry Pi)
    calls = []

    def fake_measure(settings, batch, remote=None):
        calls.append((settings.threads, batch))
        return 8, [{"width": 8, "p50_ms": 0.01, "dominated_by": None}]

    monkeypatch.setattr(multiple, "measure_multiple", fake_measure)
    one_thread = parse_target('name = "one"\nthreads = 1\n', source="test", default_name="one")
    assert multiple.here(one_thread) == 8 and multiple.here(one_thread) == 8
    assert calls == [(1, 1)]  # measured once, then read from the cache
    (cached,) = (tmp_path / "latency").glob("multiple-one-b1-t1-*.json")
    assert json.loads(cached.read_text())["multiple"] == 8
    cached.write_text("not json")  # a damaged cache file is measured again
    assert multiple.here(one_thread) == 8 and len(calls) == 2


@pytest.mark.slow
def test_channel_multiple_measured_here_is_a_clean_multiple_of_the_sweep(tmp_path, monkeypatch):
    from pdd_edge.latency import multiple

    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path))
    got = multiple.here(parse_target('name = "one"\nthreads = 1\n', source="test", default_name="one"))
    assert got in multiple.MULTIPLES
    record = json.loads(next((tmp_path / "latency").glob("multiple-one-*.json")).read_text())
    assert [r["width"] for r in record["sweep"]] == list(multiple.SWEEP_WIDTHS) and record["multiple"] == got
