"""The self-contained measurement core: statistics, interleaving, CPU names, memory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.onnx_builders import conv_model, save

from pdd_edge.profiling import runner

X86_CPUINFO = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9454 48-Core Processor\n"
RPI4_CPUINFO = ("processor\t: 0\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n"
                "processor\t: 1\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n"
                "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n")
ARMV7_CPUINFO = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n"


@pytest.mark.parametrize("text, device, expected", [
    (X86_CPUINFO, None, "AMD EPYC 9454 48-Core Processor"),
    (RPI4_CPUINFO, None, "Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)"),
    (ARMV7_CPUINFO, "Raspberry Pi 4 Model B", "Cortex-A72 (Raspberry Pi 4 Model B)"),
    ("processor : 0\nCPU implementer : 0x41\nCPU part : 0xd42\n", "NVIDIA Jetson Orin Nano", "Cortex-A78AE (NVIDIA Jetson Orin Nano)"),
    ("processor : 0\nCPU implementer : 0x41\nCPU part : 0xfff\n", None, "ARM part 0xfff"),
])
def test_cpu_model_names_the_core_from_cpuinfo(text, device, expected):
    assert runner.cpu_model(text, device) == expected


def test_latency_stats_orders_percentiles_and_flags_noise():
    times_ns = [1_000_000] * 90 + [5_000_000] * 10

    stats = runner.latency_stats(times_ns, batch_size=4)

    assert stats["runs"] == 100
    assert stats["min_ms"] <= stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"] <= stats["max_ms"]
    assert stats["p50_ms"] == 1.0 and stats["p99_ms"] == 5.0
    assert stats["mean_ms"] == pytest.approx(1.4)
    assert stats["noisy"] is True and stats["cv"] > runner.NOISY_CV
    assert stats["throughput_per_s"] == pytest.approx(4 * 100 / 0.14)


def test_latency_stats_steady_times_are_not_noisy():
    stats = runner.latency_stats([2_000_000, 2_010_000, 1_990_000], batch_size=1)

    assert stats["noisy"] is False and stats["std_ms"] > 0


class _CountingSession:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def run(self, outputs, feeds):
        self.log.append(self.name)


def test_time_interleaved_alternates_models_and_gives_each_the_same_runs():
    log: list[str] = []
    runs = [(_CountingSession(log, "a"), {}, "a.onnx"), (_CountingSession(log, "b"), {}, "b.onnx")]

    times = runner.time_interleaved(runs, warmup=2, min_runs=5, min_time_s=0.0)

    assert [len(t) for t in times] == [5, 5]
    assert log[:4] == ["a", "a", "b", "b"]  # warm-up of each
    assert log[4:] == ["a", "b", "b", "a", "a", "b", "b", "a", "a", "b"]  # rounds rotate the first model


def test_time_interleaved_keeps_running_until_min_time():
    log: list[str] = []

    times = runner.time_interleaved([(_CountingSession(log, "a"), {}, "a.onnx")], warmup=0, min_runs=1, min_time_s=0.05)

    assert len(times[0]) > 1


def test_make_session_rejects_unavailable_provider(tmp_path):
    path = save(conv_model([1, 3, 8, 8], (4, 3, 3, 3)), tmp_path / "m.onnx")

    with pytest.raises(runner.RunnerError, match="NoSuchExecutionProvider is not available"):
        runner.make_session(path, "NoSuchExecutionProvider", 1)


def test_runner_script_measures_a_model_from_a_spec_file(tmp_path):
    path = save(conv_model(["N", 3, 16, 16], (8, 3, 3, 3)), tmp_path / "m.onnx")
    spec = {"provider": "CPUExecutionProvider", "threads": 1, "warmup": 1, "min_runs": 3, "min_time_s": 0.0,
            "memory": True, "batch_sizes": [2],
            "models": [{"name": "m", "path": path, "inputs": {"2": [{"name": "X", "shape": [2, 3, 16, 16], "dtype": "float32"}]}}]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))

    proc = subprocess.run([sys.executable, runner.__file__, str(tmp_path / "spec.json")], capture_output=True, text=True)

    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    batch = result["models"][0]["batches"][0]
    assert batch["batch_size"] == 2 and batch["latency"]["runs"] >= 3
    assert batch["memory"]["peak_rss_growth_mb"] > 0
    assert result["environment"]["intra_op_threads"] == 1


def test_runner_script_reports_a_broken_model_on_stderr_with_exit_3(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    spec = {"provider": "CPUExecutionProvider", "threads": 1, "warmup": 0, "min_runs": 1, "min_time_s": 0.0,
            "batch_sizes": [1], "models": [{"name": "m", "path": str(bad), "inputs": {"1": []}}]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))

    proc = subprocess.run([sys.executable, runner.__file__, str(tmp_path / "spec.json")], capture_output=True, text=True)

    assert proc.returncode == runner.ERROR_EXIT
    assert "onnxruntime cannot load" in proc.stderr and proc.stdout == ""


def _runner_tree():
    import ast

    source = open(runner.__file__, encoding="utf-8").read()
    # Jetson boards on JetPack 5 ship Python 3.8; the grammar check allows down to 3.7.
    return ast.parse(source, feature_version=(3, 7))


def test_runner_imports_only_stdlib_numpy_and_onnxruntime():
    import ast

    allowed = {"__future__", "json", "os", "platform", "subprocess", "sys", "time", "resource", "numpy", "onnxruntime"}
    imported = set()
    for node in ast.walk(_runner_tree()):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])

    assert imported <= allowed, f"runner.py must run alone on a board; it imports {sorted(imported - allowed)}"


def test_time_interleaved_in_blocks_settles_each_turn_before_timing():
    log: list[str] = []
    runs = [(_CountingSession(log, "a"), {}, "a.onnx"), (_CountingSession(log, "b"), {}, "b.onnx")]

    times = runner.time_interleaved(runs, warmup=0, min_runs=3, min_time_s=0.0, block=3)

    assert [len(t) for t in times] == [3, 3]
    assert log == ["a"] * 4 + ["b"] * 4  # one untimed settling run, then the block of three


def test_sequential_measurement_times_each_model_alone(tmp_path):
    path = save(conv_model([1, 3, 8, 8], (4, 3, 3, 3)), tmp_path / "m.onnx")
    inputs = {"1": [{"name": "X", "shape": [1, 3, 8, 8], "dtype": "float32"}]}
    spec = {"provider": "CPUExecutionProvider", "threads": 1, "warmup": 1, "min_runs": 4, "min_time_s": 0.0,
            "memory": False, "sequential": True, "batch_sizes": [1],
            "models": [{"name": "a", "path": str(path), "inputs": inputs}, {"name": "b", "path": str(path), "inputs": inputs}]}
    result = runner.measure(spec)
    assert [m["name"] for m in result["models"]] == ["a", "b"]
    assert all(m["batches"][0]["latency"]["runs"] == 4 for m in result["models"])
