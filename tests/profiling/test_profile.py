"""The profile record of a zoo model, and interleaved measurement of several models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.onnx_builders import conv_model, save

from pdd_edge.profiling.inputs import model_inputs
from pdd_edge.profiling.measure import MeasureSettings, measure_models, prepare_model
from pdd_edge.profiling.profile import SCHEMA, ProfileRequest, profile_model
from pdd_edge.profiling.targets import load_target

LEAN = {"warmup": 1, "min_runs": 5, "min_time_s": 0.0}  # behaviour, not timing: keep the shared CPUs free
TOP_KEYS = {"schema", "created_utc", "pdd_edge_version", "model", "target", "settings", "cost", "batches",
            "summary", "environment", "device_check", "runner_version"}


@pytest.fixture(scope="module")
def resnet20_record(zoo_onnx):
    path, torch_model = zoo_onnx["resnet20"]
    record = profile_model(path, ProfileRequest(target=load_target("local"), batch_sizes=(1, 2), threads=1, **LEAN))
    return record, torch_model


def test_profile_model_record_has_schema_and_every_section(resnet20_record):
    record, _ = resnet20_record

    assert record["schema"] == SCHEMA
    assert set(record) == TOP_KEYS
    json.dumps(record, allow_nan=False)  # plain JSON: no NaN or infinities


def test_profile_model_latency_is_sane_per_batch(resnet20_record):
    record, _ = resnet20_record

    assert [b["batch_size"] for b in record["batches"]] == [1, 2]
    for batch in record["batches"]:
        lat = batch["latency"]
        assert lat["runs"] >= LEAN["min_runs"]
        assert 0 < lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert lat["throughput_per_s"] > 0 and lat["cv"] >= 0
        assert batch["memory"]["peak_rss_growth_mb"] > 0
        assert batch["input_shapes"] == {"input": [batch["batch_size"], 3, 32, 32]}


def test_profile_model_counts_match_pytorch_and_summary_uses_first_batch(resnet20_record):
    record, torch_model = resnet20_record

    expected = torch_model.cost(torch_model.mask_points(), (32, 32)).as_ints()
    assert record["cost"]["macs"] == expected["macs"] == record["summary"]["macs"]
    assert record["cost"]["shape_source"] == "onnx+onnxruntime"  # torch's F.pad export defeats onnx inference
    assert record["summary"]["latency_p90_ms"] == record["batches"][0]["latency"]["p90_ms"]
    assert record["summary"]["peak_memory_mb"] == record["batches"][0]["memory"]["peak_rss_growth_mb"]
    assert record["summary"]["model_size_mb"] == record["model"]["file_size_bytes"] / 2**20


def test_profile_model_environment_reports_threads_and_cpu(resnet20_record):
    env = resnet20_record[0]["environment"]

    assert env["intra_op_threads"] == 1
    assert env["execution_provider"] == "CPUExecutionProvider"
    assert env["onnxruntime"] and env["cpu_model"] and env["machine"]


def test_measure_models_interleaves_models_with_equal_run_counts(tmp_path):
    models = []
    for name, width in (("small", 4), ("wide", 16)):
        model = conv_model(["N", 3, 16, 16], (width, 3, 3, 3))
        path = save(model, tmp_path / f"{name}.onnx")
        models.append(prepare_model(name, path, model_inputs(model), [1], None))

    result = measure_models(models, [1], MeasureSettings(threads=1, memory=False, **{"warmup": 1, "min_runs": 4, "min_time_s": 0.0}))

    runs = {m["name"]: m["batches"][0]["latency"]["runs"] for m in result["models"]}
    assert runs["small"] == runs["wide"] >= 4
    assert "memory" not in result["models"][0]["batches"][0]


def test_profile_command_imports_no_torch(tmp_path):
    path = save(conv_model(["N", 3, 8, 8], (4, 3, 3, 3)), tmp_path / "m.onnx")
    code = ("import sys; from pdd_edge.cli.app import main; sys.argv = ['pdd-edge', 'profile', sys.argv[1], "
            "'--min-runs', '2', '--min-time', '0', '--warmup', '0', '--no-memory']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch was imported'")

    proc = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)

    assert proc.returncode == 0, proc.stderr
    assert "MACs 6,912" in proc.stdout  # 4 outputs * 8*8 * 3*3*3
