"""The house rules of the source tree: every command and stage has its room, and only RunDir
knows where a run keeps its files."""

import ast
import re
from pathlib import Path

from pdd_edge import pipeline
from pdd_edge.artifact import RunDir
from pdd_edge.cli.app import app

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)


def test_every_command_has_a_cli_module_named_after_it():
    names = _commands()
    assert {"compress", "distill", "finetune", "gate", "prune", "report", "train", "targets"} <= set(names)
    # a Python module cannot have a hyphen: `latency-table` lives in cli/latency_table.py
    missing = [n for n in names if not (ROOT / "cli" / f"{n.replace('-', '_')}.py").is_file()]
    assert missing == []


def test_every_pipeline_stage_is_a_stage_module_with_run():
    for stage in pipeline.STAGES:
        path = ROOT / "pdd_edge" / "stages" / f"{stage.name}.py"
        assert path.is_file(), stage.name
        assert stage.run.__module__ == f"pdd_edge.stages.{stage.name}" and stage.run.__name__ == "run"


# A string literal naming a file inside a stage folder of a run, e.g. "simplify/pruned.onnx".
STAGE_FOLDERS = "|".join(s.name for s in pipeline.STAGES)
RUN_PATH = re.compile(rf"^(?:{STAGE_FOLDERS})/")


def test_no_run_directory_path_is_spelled_outside_rundir():
    offenders = []
    for path in [*(ROOT / "pdd_edge").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]:
        if path.name == "artifact.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and RUN_PATH.match(node.value):
                offenders.append(f"{path.relative_to(ROOT)}: {node.value!r}")
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) \
                    and isinstance(node.values[0].value, str) and RUN_PATH.match(node.values[0].value):
                offenders.append(f"{path.relative_to(ROOT)}: f-string {node.values[0].value!r}...")
    assert offenders == []


def test_rundir_names_every_file_relative_to_its_root(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.rel(run.simplified("pruned")) == "simplify/pruned.onnx"
    assert run.rel(run.int8()) == "quantize/pruned.int8.onnx"
    assert run.rel(run.best("finetune")) == "finetune/best.pt"
    assert run.rel(run.report_json("rpi4")) == "report/report-rpi4.json"
    assert run.profiles() == {} and run.reports() == {}
    run.profile("rpi4").parent.mkdir(parents=True)
    run.profile("rpi4").write_text("{}")
    run.profile("x86-server").write_text("{}")
    assert sorted(run.profiles()) == ["rpi4", "x86-server"]


def test_every_zoo_model_implements_the_prunable_model_protocol():
    from pdd_edge import zoo
    from pdd_edge.zoo.protocol import PrunableModel, prunable

    for name in zoo.MODELS:
        model = zoo.build(name, num_classes=3)
        assert isinstance(model, PrunableModel) and prunable(model) is model
        assert model.arch_args()["num_classes"] == 3


def test_prunable_refuses_a_module_without_the_interface():
    import pytest
    import torch

    from pdd_edge.errors import PddError
    from pdd_edge.zoo.protocol import prunable

    with pytest.raises(PddError, match="Linear does not offer"):
        prunable(torch.nn.Linear(2, 2))
