"""The example GitHub Actions workflow works as written: permissions, no false promises, and no
board budget gated on timings of an x86 runner."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from pdd_edge.profiling.targets import load_target

WORKFLOW = Path(__file__).resolve().parents[1] / "examples" / "github-actions-deploy-gate.yml"
HOSTED_X86 = {"ubuntu-latest", "ubuntu-24.04", "ubuntu-22.04"}


def _commands(job: dict) -> list[list[str]]:
    lines = []
    for step in job.get("steps", []):
        text = re.sub(r"\$\{\{[^}]*\}\}", "X", step.get("run", ""))
        lines += [shlex.split(line) for line in text.replace("\\\n", " ").splitlines() if "pdd-edge" in line]
    return lines  # a `run: >-` block is folded into one line by the YAML parser


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_workflow_may_publish_junit_check_runs(workflow):
    assert workflow["permissions"]["checks"] == "write"


def test_workflow_does_not_resume_on_a_fresh_runner(workflow):
    for job in workflow["jobs"].values():
        assert all("--resume" not in cmd for cmd in _commands(job))


def test_workflow_measures_board_targets_on_the_board(workflow):
    measured = 0
    for name, job in workflow["jobs"].items():
        for cmd in _commands(job):
            if cmd[1] not in ("profile", "compress", "report"):
                continue
            targets = [cmd[i + 1] for i, a in enumerate(cmd) if a in ("--target", "-t")]
            for target in targets:
                arch = load_target(target).arch
                on_x86 = job["runs-on"] in HOSTED_X86
                if arch and arch != "x86_64" and on_x86:
                    assert "--remote" in cmd, f"job {name} times {target} on an x86 runner: {' '.join(cmd)}"
                measured += 1
    assert measured >= 2


# The first major of each action that runs on Node 24 (GitHub retires Node 20 from its runners;
# actionlint flags the older majors). An action added to the workflow must be added here.
NODE24_MAJOR = {"actions/checkout": 5, "actions/setup-python": 6, "actions/cache": 5, "actions/upload-artifact": 6,
                "actions/download-artifact": 7, "mikepenz/action-junit-report": 6}


def test_workflow_uses_only_actions_that_run_on_node24(workflow):
    used = [step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]
    old = []
    for ref in used:
        action, _, version = ref.partition("@")
        major = re.fullmatch(r"v(\d+)(?:\.\d+)*", version)
        if action not in NODE24_MAJOR or not major or int(major[1]) < NODE24_MAJOR[action]:
            old.append(ref)
    assert len(used) >= 6 and old == []
