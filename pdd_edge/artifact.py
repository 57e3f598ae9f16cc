"""The run directory: the artifact of `pdd-edge compress`, and its `manifest.json`.

    RUN_DIR/
      manifest.json                      typed record of the run (schema pdd-edge.manifest/1)
      teacher/teacher.pt                 the teacher (given, or trained and cached)
      latency/table.json                 with a latency target: the first target's latency table
      baseline/ distill/ finetune/       best.pt, last.pt (resume state), history.json
      prune/pruned.pt, prune/pruned.json the pruned student and its pruning report
      export/<variant>.onnx              baseline.onnx, pruned.onnx
      simplify/<variant>.onnx            the deployable FP32 files
      quantize/pruned.int8.onnx          the deployable INT8 file
      evaluate/accuracy.json             top-1 of every deployable file (onnxruntime)
      profile/profile-<target>.json      the variants timed interleaved on each target
      report/report-<target>.json|.md    per-target report, with PNG plots

`RunDir` owns this layout: every path above has a named accessor here and nowhere else.

The manifest holds the resolved configuration, the dataset, and per stage: its config hash,
seconds, the files it wrote (relative paths), its metrics and the library versions. Files a
command adds to a finished run later (`pdd-edge report --target T` profiling a new target) are
recorded under `commands`. A stage is skipped when its record is present with the same hash and
all its files still exist; each stage's hash folds in the hashes of the stages before it, so
changing one stage's options re-runs it and everything after it, and nothing before it.

Torch-free: `report` and `gate` read run directories on machines without torch.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from pdd_edge.errors import PddError
from pdd_edge.fileio import read_json, write_json
from pdd_edge.locking import is_lock_file

SCHEMA = "pdd-edge.manifest/1"
MANIFEST = "manifest.json"
TRACKED_LIBRARIES = ("pdd-edge", "torch", "torchvision", "onnx", "onnxruntime", "onnxsim", "onnxscript", "fvcore", "numpy")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class StageRecord:
    name: str
    config_hash: str
    seconds: float
    files: list[str]  # relative to the run directory
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=library_versions)
    finished_utc: str = field(default_factory=now_utc)


class RunDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest: dict[str, Any] = {"schema": SCHEMA, "created_utc": now_utc(), "config": {}, "stages": {},
                                         "commands": []}

    # --- layout: the one place that knows where a run keeps each file ------------------------
    TRAINING_STAGES = ("baseline", "distill", "finetune")

    def teacher(self) -> Path:
        return self.root / "teacher" / "teacher.pt"

    def training_dir(self, stage: str) -> Path:
        """Folder of a training stage: best.pt, last.pt, history.json (see training.loop.TrainFiles)."""
        if stage not in self.TRAINING_STAGES:
            raise ValueError(f"{stage!r} is not a training stage")
        return self.root / stage

    def best(self, stage: str) -> Path:
        return self.training_dir(stage) / "best.pt"

    def history(self, stage: str) -> Path:
        return self.training_dir(stage) / "history.json"

    def latency_table(self) -> Path:
        return self.root / "latency" / "table.json"

    def pruned(self) -> Path:
        return self.root / "prune" / "pruned.pt"

    def prune_report(self) -> Path:
        return self.root / "prune" / "pruned.json"

    def exported(self, variant: str) -> Path:
        return self.root / "export" / f"{variant}.onnx"

    def simplified(self, variant: str) -> Path:
        return self.root / "simplify" / f"{variant}.onnx"

    def int8(self, variant: str = "pruned") -> Path:
        return self.root / "quantize" / f"{variant}.int8.onnx"

    def accuracy(self) -> Path:
        return self.root / "evaluate" / "accuracy.json"

    def profile(self, target: str) -> Path:
        return self.root / "profile" / f"profile-{target}.json"

    def report_json(self, target: str) -> Path:
        return self.root / "report" / f"report-{target}.json"

    def report_md(self, target: str) -> Path:
        return self.root / "report" / f"report-{target}.md"

    def plot(self, name: str) -> Path:
        return self.root / "report" / f"{name}.png"

    @staticmethod
    def root_of_report(report_json: str | Path) -> Path:
        """The run directory a report-<target>.json would lie in (by the layout of `report_json`)."""
        return Path(report_json).parent.parent

    def profiles(self) -> dict[str, Path]:
        """Target name -> profile record, for every target profiled in this run."""
        return self._by_target(self.profile("*"))

    def reports(self) -> dict[str, Path]:
        """Target name -> report JSON, for every target reported in this run."""
        return self._by_target(self.report_json("*"))

    def deployable(self, quantize: bool) -> dict[str, Path]:
        """Variant name -> the deployable ONNX file compared in the evaluation, profile and report.

        The unpruned student is a candidate in every format the pruned one is: the deployed file is
        the fastest within the accuracy budget, so a pruned model that is not faster is never shipped.
        """
        files = {"baseline": self.simplified("baseline")}
        if quantize:
            files["baseline-int8"] = self.int8("baseline")
        files["pruned"] = self.simplified("pruned")
        if quantize:
            files["int8"] = self.int8()
        return files

    def evaluated_files(self) -> dict[str, Path]:
        """The deployable files of a finished run, as its evaluate stage recorded them."""
        if self.record("evaluate") is None:
            raise PddError("the run has no evaluated variants yet; finish it with `pdd-edge compress ... --resume`")
        variants = read_json(self.accuracy(), "accuracy record")["variants"]
        return {name: self.path(v["file"]) for name, v in variants.items()}

    def _by_target(self, pattern: Path) -> dict[str, Path]:
        prefix, suffix = pattern.name.split("*")
        found = sorted(pattern.parent.glob(pattern.name)) if pattern.parent.is_dir() else []
        return {p.name[len(prefix): len(p.name) - len(suffix)]: p for p in found}

    def stage_folder(self, stage: str) -> Path:
        """The folder a stage writes into (removed when the stage's options change)."""
        return self.root / stage

    # --- opening ----------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, config: dict[str, Any], *, resume: bool) -> "RunDir":
        """Open RUN_DIR for a run: continue it with `resume`, else it must not hold a run yet."""
        run = cls(root)
        manifest_path = run.root / MANIFEST
        if manifest_path.exists():
            if not resume:
                raise PddError(f"{run.root} already holds a run; add --resume to continue it, or choose another --out")
            run.manifest = cls.load(run.root).manifest
            run._remove_stale_temp_files()
        elif run.root.exists() and any(not is_lock_file(f.name) for f in run.root.iterdir()) and not resume:
            raise PddError(f"{run.root} is not empty and holds no pdd-edge run; choose another --out")
        run.manifest["config"] = config
        run.save()
        return run

    @classmethod
    def load(cls, root: str | Path) -> "RunDir":
        run = cls(root)
        path = run.root / MANIFEST
        if not path.is_file():
            raise PddError(f"{run.root} is not a pdd-edge run directory (no {MANIFEST})")
        data = read_json(path, "run manifest")
        if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("stages"), dict):
            raise PddError(f"{path} is not a pdd-edge manifest (schema {SCHEMA}); was it written by another tool?")
        run.manifest = data
        return run

    def _remove_stale_temp_files(self) -> None:
        """Temp files of writes a killed process never renamed (see fileio.atomic_path)."""
        for tmp in self.root.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    # --- stages -----------------------------------------------------------------------------
    def path(self, relative: str) -> Path:
        """A file the manifest names (relative paths are what it stores)."""
        return self.root / relative

    def rel(self, path: str | Path) -> str:
        return str(Path(path).resolve().relative_to(self.root.resolve()))

    def record(self, name: str) -> dict[str, Any] | None:
        return self.manifest["stages"].get(name)

    def is_done(self, name: str, config_hash: str) -> bool:
        rec = self.record(name)
        return (rec is not None and rec.get("config_hash") == config_hash
                and all((self.root / f).exists() for f in rec.get("files", [])))

    def begin(self, name: str, config_hash: str) -> None:
        """A stage starts with these options: what an earlier, unfinished attempt left in its folder
        (a training state to resume from) is kept only if that attempt had the same options,
        stage version included; anything else (another version, or a folder no attempt of this
        pdd-edge recorded) is removed. Without this, an interrupted stage resumed its epochs even
        after the stage's code version changed, since its training state hashes the options alone."""
        started = self.manifest.setdefault("started", {})
        if started.get(name) != config_hash:
            shutil.rmtree(self.stage_folder(name), ignore_errors=True)
            started[name] = config_hash
            self.save()

    def commit(self, record: StageRecord) -> None:
        self.manifest["stages"][record.name] = asdict(record)
        self.manifest.get("started", {}).pop(record.name, None)
        self.save()

    def forget(self, name: str) -> None:
        """Drop a stage's record (it is about to be redone)."""
        if self.manifest["stages"].pop(name, None) is not None:
            self.save()

    def record_command(self, command: str, files: list[Path]) -> None:
        """Record files that a command added to this run after its stages ran."""
        self.manifest.setdefault("commands", []).append(
            {"command": command, "files": [self.rel(f) for f in files], "finished_utc": now_utc()})
        self.save()

    def save(self) -> None:
        write_json(self.root / MANIFEST, self.manifest)
