"""The wheel is what a user installs: built for real, installed (not editable) in a fresh venv, and
every stage of the chain run from it outside the checkout. The venv borrows torch and the other
dependencies from this interpreter (tests/install.py), so no multi-GB install is needed."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.install import (ROOT, build_wheel, copy_sources, environment, install_wheel_with_these_dependencies,
                           report_and_gate, run, venv_site_packages)

# Builds a wheel (~6 s) and runs the chain: 142 s measured on 2 cores shared with three other
# test runs (load 8), so well under that on a quiet machine; the digits teacher is a shared fixture.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    out = base / "dist"
    out.mkdir()
    return build_wheel(copy_sources(base / "src"), out)


@pytest.fixture(scope="module")
def wheel_venv(wheel, tmp_path_factory) -> Path:
    return install_wheel_with_these_dependencies(wheel, tmp_path_factory.mktemp("wheel-venv") / "venv")


def source_packages() -> set[str]:
    """Every package of the source tree under its installed name (./cli is pdd_edge.cli)."""
    names = set()
    for folder, prefix in (("pdd_edge", "pdd_edge"), ("cli", "pdd_edge.cli"), ("targets", "pdd_edge.targets")):
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            names.add(".".join((prefix, *rel)))
    return names


def test_wheel_holds_every_package_and_the_targets_and_nothing_else(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("/__init__.py")}

    assert "pdd_edge.latency" in packages and packages == source_packages()
    assert all(n.startswith(("pdd_edge/", "pdd_edge-")) for n in names), [n for n in names if not n.startswith("pdd_edge")]
    assert {Path(n).name for n in names if n.startswith("pdd_edge/targets/") and n.endswith(".toml")} == \
        {p.name for p in (ROOT / "targets").glob("*.toml")}


def test_wheel_install_imports_the_installed_copy_not_the_checkout(wheel_venv):
    site = venv_site_packages(wheel_venv)
    proc = run([wheel_venv / "bin" / "python", "-c",
                "import pdd_edge, pdd_edge.latency.table, pdd_edge.cli.app; print(pdd_edge.__file__)"], cwd=wheel_venv)

    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(site)
    assert not (site / "cli").exists() and not (site / "targets").exists() and not (site / "tests").exists()


def test_wheel_install_runs_the_chain_outside_the_checkout(wheel_venv, digits_teacher, tmp_path):
    from tests.run_fixtures import make_run

    bin_dir = wheel_venv / "bin"
    pdd = bin_dir / "pdd-edge"
    cache = {"PDD_EDGE_CACHE": str(tmp_path / "cache")}
    # The latency table measures on its own (two cores: the chain below runs meanwhile).
    table = subprocess.Popen([str(pdd), "latency-table", "resnet20", "--input-size", "8", "--threads", "1",
                              "--min-runs", "5", "--min-time", "0", "--out", "lt.json"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=environment(**cache))
    try:
        distill = run([pdd, "distill", "--student", "resnet20", "--teacher-weights", digits_teacher, "--epochs", "1",
                       "--out", "d"], cwd=tmp_path, **cache)
        assert distill.returncode == 0, distill.stderr[-3000:]
        prune = run([pdd, "prune", "d/best.pt", "--out", "p.pt"], cwd=tmp_path)
        assert prune.returncode == 0, prune.stderr[-3000:]
        export = run([pdd, "export", "p.pt", "--out", "p.onnx"], cwd=tmp_path)
        assert export.returncode == 0, export.stderr[-3000:]
        profile = run([pdd, "profile", "p.onnx", "--json-out", "profile.json", "--warmup", "1", "--min-runs", "3",
                       "--min-time", "0", "--threads", "1"], cwd=tmp_path)
        assert profile.returncode == 0, profile.stderr[-3000:]
        report, gate = report_and_gate(bin_dir, make_run(tmp_path / "run").root, tmp_path)
    finally:
        table_out, table_err = table.communicate(timeout=600)

    assert (tmp_path / "d" / "best.pt").is_file() and (tmp_path / "p.pt").is_file()
    assert json.loads((tmp_path / "profile.json").read_text())["schema"] == "pdd-edge.profile/1"
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "run" / "report" / "report-local.json").is_file()
    assert gate.returncode == 0 and "gate passed: 3 checks" in gate.stdout, gate.stderr + gate.stdout
    assert table.returncode == 0, table_err[-3000:]
    assert len(json.loads((tmp_path / "lt.json").read_text())["layers"]) == 20  # 19 convs and the classifier
