"""Which measurements stand for a target: architecture, CPU model, cores and threads."""

from pdd_edge.profiling.provenance import check, foreign_reasons

PI = {"name": "rpi4", "arch": "aarch64", "cpu_match": "Cortex-A72", "cores": 4, "threads": 4}
PI_ENV = {"machine": "aarch64", "cpu_model": "Cortex-A72 (Raspberry Pi 4 Model B Rev 1.5)", "cpus_available": 4,
          "intra_op_threads": 4}


def test_a_measurement_on_the_declared_device_is_not_foreign():
    assert foreign_reasons(PI, PI_ENV) == []
    assert check(PI, PI_ENV) == {"foreign": False, "reasons": [], "summary": "", "message": "",
                                 "measured_on": "aarch64 Cortex-A72 (Raspberry Pi 4 Model B Rev 1.5), 4 CPUs"}


def test_architecture_spellings_of_one_machine_match():
    assert foreign_reasons({"arch": "aarch64"}, PI_ENV | {"machine": "arm64"}) == []
    assert foreign_reasons({"arch": "x86_64"}, {"machine": "AMD64", "cpus_available": 8, "intra_op_threads": 8}) == []


def test_every_mismatch_is_listed():
    env = {"machine": "x86_64", "cpu_model": "AMD EPYC 9B14", "cpus_available": 2, "intra_op_threads": 4}
    assert foreign_reasons(PI, env) == ["architecture x86_64, not aarch64",
                                        "CPU 'AMD EPYC 9B14' does not match 'Cortex-A72'",
                                        "2 CPUs, not 4", "4 threads on 2 CPUs (oversubscribed)"]
    result = check(PI, env)
    assert result["foreign"] and result["message"].startswith("measured on x86_64 AMD EPYC 9B14, 2 CPUs, not on rpi4 (")
    assert result["message"].endswith("measure there with --remote")


def test_a_target_without_a_declaration_takes_any_machine_that_is_not_oversubscribed():
    assert foreign_reasons({"name": "local"}, PI_ENV) == []
    assert foreign_reasons({"name": "local"}, PI_ENV | {"intra_op_threads": 16}) == ["16 threads on 4 CPUs (oversubscribed)"]


def test_a_record_without_an_environment_is_foreign():
    assert check({"name": "local"}, None)["foreign"]
