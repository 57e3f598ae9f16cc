"""The run directory: the artifact of `pdd-edge compress`, and its `manifest.json`.

    RUN_DIR/
      manifest.json          typed record of the run (schema pdd-edge.manifest/1)
      <stage>/...            the files each stage wrote

The manifest holds the resolved configuration, the dataset, and per stage: its config hash,
seconds, the files it wrote (relative paths), its metrics and the library versions. A stage is
skipped when its record is present with the same hash and all its files still exist; each
stage's hash folds in the hashes of the stages before it, so changing one stage's options re-runs
it and everything after it, and nothing before it.

Torch-free: `report` and `gate` read run directories on machines without torch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from pdd_edge.errors import PddError
from pdd_edge.fileio import read_json, write_json

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
        self.manifest: dict[str, Any] = {"schema": SCHEMA, "created_utc": now_utc(), "config": {}, "stages": {}}

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
        elif run.root.exists() and any(run.root.iterdir()) and not resume:
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
    def stage_dir(self, name: str) -> Path:
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def path(self, relative: str) -> Path:
        return self.root / relative

    def rel(self, path: str | Path) -> str:
        return str(Path(path).resolve().relative_to(self.root.resolve()))

    def record(self, name: str) -> dict[str, Any] | None:
        return self.manifest["stages"].get(name)

    def is_done(self, name: str, config_hash: str) -> bool:
        rec = self.record(name)
        return (rec is not None and rec.get("config_hash") == config_hash
                and all((self.root / f).exists() for f in rec.get("files", [])))

    def commit(self, record: StageRecord) -> None:
        self.manifest["stages"][record.name] = asdict(record)
        self.save()

    def forget(self, name: str) -> None:
        """Drop a stage's record (it is about to be redone)."""
        if self.manifest["stages"].pop(name, None) is not None:
            self.save()

    def save(self) -> None:
        write_json(self.root / MANIFEST, self.manifest)
