"""The house rules of the source tree: every command and stage has its room, only RunDir knows
where a run keeps its files, and imports only point down the floors of FLOORS."""

import ast
import re
import sys
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


# --- floors: every import points down ---------------------------------------------------------

# The rooms of the package, top floor first. A module may import its own room or a room on a
# lower floor; rooms that share a floor do not import each other. A room is a subpackage of
# pdd_edge or a module directly in it ("__init__" is pdd_edge/__init__.py, the version); the CLI
# (./cli) is installed as pdd_edge.cli, the target files (./targets) as pdd_edge.targets. Measured with the AST walk below, function-level and
# `if TYPE_CHECKING:` imports included (a lazy import is still a dependency, just a late one).
FLOORS = [
    ["__main__"],
    ["cli"],
    ["pipeline"],
    ["stages"],
    ["config"],  # a run's options; its latency target is the latency package's object
    ["latency", "report"],
    ["profiling"],
    ["onnx", "training"],
    ["checkpoint"],  # checkpoint I/O rebuilds zoo models with their masks and preprocessing
    ["data", "nn"],
    ["zoo"],  # the models, their prunable-model protocol, costs and mask gates
    ["artifact"],
    ["locking"],
    ["fileio", "tolerance"],
    ["errors", "__init__", "targets"],  # targets: TOML files, read by profiling as package data
]
FLOOR_OF = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}


def _source_modules() -> dict[str, Path]:
    """Every module of the installed package by dotted name (./cli as pdd_edge.cli, ./targets as
    pdd_edge.targets: pyproject.toml's package-dir)."""
    found = {}
    for base, prefix in ((ROOT / "pdd_edge", ["pdd_edge"]), (ROOT / "cli", ["pdd_edge", "cli"]),
                         (ROOT / "targets", ["pdd_edge", "targets"])):
        for path in base.rglob("*.py"):
            parts = [*prefix, *path.relative_to(base).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _source_modules()


def _owner(name: str) -> str | None:
    """The pdd_edge module `name` lives in: itself, or the module that defines it (an attribute)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, int]]:
    """(imported pdd_edge module, line) of every import statement in `module`, at any depth."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from pkg import name` imports the submodule pkg.name when there is one
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found += [(owner, node.lineno) for owner in sorted(set(map(_owner, names)) - {None, module})]
    return found


def _room(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


IMPORTS = {module: _imports(module) for module in MODULES}


def test_the_floor_table_names_every_room_once():
    rooms = {_room(m) for m in MODULES}
    listed = [room for floor in FLOORS for room in floor]
    assert sorted(set(listed)) == sorted(listed), "a room is on two floors"
    assert sorted(rooms - set(listed)) == [], "rooms missing from FLOORS"
    assert sorted(set(listed) - rooms) == [], "FLOORS names rooms that do not exist"


def test_every_import_stays_in_its_room_or_points_to_a_lower_floor():
    offenders = []
    for module, imported in IMPORTS.items():
        for target, line in imported:
            here, there = _room(module), _room(target)
            if here != there and FLOOR_OF[there] <= FLOOR_OF[here]:
                offenders.append(f"{MODULES[module].relative_to(ROOT)}:{line} ({here}) imports {target} ({there})")
    assert offenders == []


def test_no_import_cycle_among_modules():
    """Depth-first search for a back edge; the cycle it closes is the failure message."""
    state: dict[str, str] = {}  # "open" while on the stack, "done" after
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for target, _ in IMPORTS[module]:
            if state.get(target) == "open":
                cycles.append(" -> ".join([*stack[stack.index(target):], target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(MODULES):
        if module not in state:
            visit(module)
    assert cycles == []


def test_the_import_walk_sees_function_level_type_checking_relative_and_attribute_imports(tmp_path, monkeypatch):
    """The floors above hold only if the walk misses no kind of import."""
    source = tmp_path / "probe.py"
    source.write_text("import pdd_edge.errors\n"
                      "if TYPE_CHECKING:\n"
                      "    from pdd_edge.data import catalog\n"
                      "def f():\n"
                      "    from pdd_edge.zoo import build, protocol\n"
                      "    from .stages import prune\n")
    monkeypatch.setitem(MODULES, "pdd_edge.probe", source)
    assert sorted(_imports("pdd_edge.probe")) == [
        ("pdd_edge.data.catalog", 3), ("pdd_edge.errors", 1), ("pdd_edge.stages.prune", 6), ("pdd_edge.zoo", 5),
        ("pdd_edge.zoo.protocol", 5)]


# A function longer than this is read in pieces; past it, its docstring must say why it is one piece.
MAX_FUNCTION_LINES = 60


def _long_functions(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            reason = "long only" in (ast.get_docstring(node, clean=False) or "").lower()
            if length > MAX_FUNCTION_LINES and not reason:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_runs_past_sixty_lines_without_saying_why():
    sources = sorted((ROOT / "pdd_edge").rglob("*.py")) + sorted((ROOT / "cli").rglob("*.py"))
    assert [f for path in sources for f in _long_functions(path)] == []


def test_the_length_rule_finds_a_long_function_and_accepts_one_that_says_why(tmp_path, monkeypatch):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    source = tmp_path / "probe.py"
    source.write_text(f"def long():\n{body}\ndef explained():\n    \"\"\"Long only in its table.\"\"\"\n{body}")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _long_functions(source) == [f"probe.py:1 long ({MAX_FUNCTION_LINES + 1} lines)"]
