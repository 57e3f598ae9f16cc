"""Installing pdd-edge the way a user does (not editable), for the install tests.

Every command of an installed copy runs with a working directory outside the checkout: `python -c`
and `python -m` put the working directory on sys.path, and the work tree's pdd_edge/ must not
shadow the installed one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "pdd_edge", "cli", "targets")  # what the package is built from


def copy_sources(dest: Path) -> Path:
    """A copy of what the package is built from, so building leaves no build/ or egg-info in the work tree."""
    dest.mkdir(parents=True)
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, dest / name)
    return dest


def environment(**env: str) -> dict[str, str]:
    """The environment of an installed copy's command: no PYTHONPATH into the checkout, one thread per library."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **env}


def run(args: list, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=environment(**env))


def build_wheel(src: Path, dest: Path) -> Path:
    """`pip wheel` of the source copy: the file `pip install pdd-edge` would install."""
    proc = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dest, src], cwd=dest.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = dest.glob("pdd_edge-*.whl")
    return wheel


def venv_site_packages(env_dir: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)}))


def install_wheel_with_these_dependencies(wheel: Path, env_dir: Path) -> Path:
    """A fresh venv with `wheel` installed (not editable) whose dependencies (torch, onnx, ...) are this
    interpreter's: a .pth file adds its site-packages folders to the venv's sys.path, written after
    the install so that pip does not take this checkout's editable pdd-edge for an installed one.

    A .pth line only adds a folder: the editable finder of the dev install (run by a .pth line of its
    own, in this interpreter's site-packages) is not started in the venv.
    """
    venv.create(env_dir, with_pip=False)  # this interpreter's pip installs into it (pip --python)
    python = env_dir / "bin" / "python"
    proc = run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
               cwd=env_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    here = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    (venv_site_packages(env_dir) / "dependencies-of-the-test-run.pth").write_text("\n".join(here) + "\n")
    return env_dir


BUDGET = "[budget]\nmin_top1 = 90\nmax_top1_drop = 1.0\n"


def report_and_gate(bin_dir: Path, run_root: Path, cwd: Path) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """`report` and `gate --budget` of an installed copy on a run directory (tests/run_fixtures.make_run)."""
    budget = cwd / "budget.toml"
    budget.write_text(BUDGET)
    report = run([bin_dir / "pdd-edge", "report", run_root], cwd=cwd)
    gate = run([bin_dir / "pdd-edge", "gate", run_root, "--budget", budget], cwd=cwd)
    return report, gate
