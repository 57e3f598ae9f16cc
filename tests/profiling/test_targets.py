"""Device targets: every built-in file loads, and malformed files are errors naming file and key."""

from __future__ import annotations

import pytest

from pdd_edge.errors import PddError
from pdd_edge.profiling.targets import BUDGET_KEYS, builtin_names, load_target
from pdd_edge.profiling.targets import parse_target

REQUIRED_BUILTINS = {"local", "x86-server", "rpi4", "rpi5", "jetson-orin-nano-cpu", "aarch64-generic"}


def test_builtin_names_include_the_documented_devices():
    assert REQUIRED_BUILTINS <= set(builtin_names())


@pytest.mark.parametrize("name", sorted(REQUIRED_BUILTINS))
def test_load_target_parses_every_builtin(name):
    target = load_target(name)

    assert target.name == name
    assert target.source == "built-in"
    assert set(target.budget) <= set(BUDGET_KEYS)
    assert target.batch_sizes and all(b > 0 for b in target.batch_sizes)


def test_load_target_local_uses_all_cpus_by_default():
    assert load_target("local").threads is None


def test_load_target_reads_a_user_file_and_defaults_its_name_to_the_stem(tmp_path):
    path = tmp_path / "my-board.toml"
    path.write_text('threads = 3\nbatch_sizes = [1, 4]\ninput_shape = [3, 64, 64]\nquantization = "int8-qdq"\n'
                    "[budget]\nlatency_p90_ms = 12.5\nmin_top1 = 90\n")

    target = load_target(str(path))

    assert (target.name, target.threads, target.batch_sizes, target.input_shape) == ("my-board", 3, (1, 4), (3, 64, 64))
    assert target.budget == {"latency_p90_ms": 12.5, "min_top1": 90.0}
    assert target.source == str(path)


@pytest.mark.parametrize("text, key", [
    ("thread = 4\n", "thread"),
    ("threads = 0\n", "threads"),
    ('threads = "4"\n', "threads"),
    ("threads = 100000\n", "threads"),  # issue 22: profile started 5,068 threads
    ("cores = 2\nthreads = 9\n", "threads"),
    ("cores = 100000\n", "cores"),
    ("channel_multiple = 0\n", "channel_multiple"),
    ("channel_multiple = 4096\n", "channel_multiple"),
    ("batch_sizes = []\n", "batch_sizes"),
    ("batch_sizes = [1, -8]\n", "batch_sizes"),
    ("batch_sizes = [1, 100000]\n", "batch_sizes"),
    ("batch_sizes = [8, 8]\n", "batch_sizes"),
    ("input_shape = [3, 0, 32]\n", "input_shape"),
    ("input_shape = [3, 100000, 100000]\n", "input_shape"),
    ("input_shape = [1, 1, 1, 1, 1, 1, 1, 1, 1]\n", "input_shape"),
    ("[budget]\nlatency_p90_ms = nan\n", "budget.latency_p90_ms"),
    ("[budget]\nmodel_size_mb = inf\n", "budget.model_size_mb"),
    ('quantization = "int4"\n', "quantization"),
    ("[budget]\nlatency_p90 = 5\n", "budget.latency_p90"),
    ("[budget]\nlatency_p90_ms = -1\n", "budget.latency_p90_ms"),
    ('[budget]\nmodel_size_mb = "small"\n', "budget.model_size_mb"),
    ("[budget]\nmin_top1 = true\n", "budget.min_top1"),
    ("[budget]\nmin_macs_reduction = 150\n", "budget.min_macs_reduction"),
    ("budget = 3\n", "budget"),
])
def test_load_target_rejects_malformed_file_naming_file_and_key(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)

    with pytest.raises(PddError) as info:
        load_target(str(path))

    assert str(path) in str(info.value)
    assert repr(key) in str(info.value)


def test_load_target_bounds_threads_by_declared_cores_else_by_this_machines_cpus(tmp_path, monkeypatch):
    from pdd_edge.profiling import runner

    monkeypatch.setattr(runner, "resolve_threads", lambda threads: 2)
    path = tmp_path / "board.toml"
    path.write_text("cores = 16\nthreads = 64\n")
    assert load_target(str(path)).threads == 64  # another device's cores, not this machine's 2 CPUs
    path.write_text("threads = 8\n")
    assert load_target(str(path)).threads == 8
    path.write_text("threads = 9\n")
    with pytest.raises(PddError) as info:
        load_target(str(path))
    assert str(info.value) == (f"{path}: key 'threads' must be an integer from 1 to 8 (4 x the 2 CPUs of this "
                               "machine; a target for another device declares its `cores`), got 9")


def test_load_target_rejects_invalid_toml_syntax(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("threads = [\n")

    with pytest.raises(PddError, match=r"broken\.toml: not valid TOML"):
        load_target(str(path))


def test_load_target_unknown_name_lists_builtins():
    with pytest.raises(PddError, match="unknown target 'rpi3'.*rpi4"):
        load_target("rpi3")


def test_load_target_missing_file_is_an_error(tmp_path):
    with pytest.raises(PddError, match="target file not found"):
        load_target(str(tmp_path / "nope.toml"))


def test_builtin_board_targets_declare_the_device_a_measurement_must_come_from():
    rpi4 = load_target("rpi4")
    assert (rpi4.arch, rpi4.cpu_match, rpi4.cores) == ("aarch64", "Cortex-A72", 4)
    assert load_target("x86-server").arch == "x86_64"
    local = load_target("local")
    assert (local.arch, local.cpu_match, local.cores) == (None, None, None)  # "this machine": any


@pytest.mark.parametrize("text, key", [('cores = 0', "cores"), ('cores = "4"', "cores"),
                                       ('cpu_match = "Cortex-(A72"', "cpu_match"), ('arch = 64', "arch")])
def test_load_target_rejects_malformed_device_keys(tmp_path, text, key):
    path = tmp_path / "board.toml"
    path.write_text(text + "\n")
    with pytest.raises(PddError, match=f"key '{key}'"):
        load_target(path)


def test_target_channel_multiple_is_parsed_and_checked():
    assert load_target("x86-server").channel_multiple == 16
    assert load_target("rpi4").channel_multiple is None  # not measured on the board: no rounding
    assert parse_target("channel_multiple = 8", source="t.toml", default_name="t").channel_multiple == 8
    with pytest.raises(PddError, match="'channel_multiple' must be an integer from 1 to 1024, got 0"):
        parse_target("channel_multiple = 0", source="t.toml", default_name="t")
