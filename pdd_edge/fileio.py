"""Writes that never leave a half-written file behind.

Every file pdd-edge produces is written to a temporary name in the destination folder and
renamed into place (`os.replace` is atomic on POSIX and Windows): an interrupted run leaves
either the old file or the new one, never a truncated one. The temporary file is flushed to the
disk before the rename and the folder after it, so a board that loses power (an SD card) keeps
one of the two as well. An output path that is a symbolic link is written through: the link
stays and its target is replaced, as a shell's `>` would do.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from pdd_edge.errors import ENVIRONMENT, USAGE, PddError, environment_error


# Set by `all_or_nothing`: the (temp, destination) pairs whose rename waits for the block's end.
_PENDING: contextvars.ContextVar[list[tuple[Path, Path]] | None] = contextvars.ContextVar("pending_renames", default=None)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A write that fails on the machine (disk full, read-only, I/O error) becomes a PddError with
    exit code ENVIRONMENT that names `path`, not the temporary name the system saw."""
    dest = _through_link(Path(path))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # A file in the way is the user's to move; anything else is the machine's failure.
        code = USAGE if exc.errno in (errno.ENOTDIR, errno.EEXIST) else ENVIRONMENT
        raise PddError(f"cannot create folder {dest.parent}: {exc.strerror}", exit_code=code) from None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        env = environment_error(exc, dest, "write")
        if env is None:
            raise
        raise env from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        _fsync(tmp)  # the content is on the disk before the name points at it
        pending = _PENDING.get()
        if pending is not None:
            pending.append((tmp, dest))  # renamed by the enclosing all_or_nothing block
        else:
            os.replace(tmp, dest)
            _fsync_folder(dest.parent)  # and the rename itself survives a power cut
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        env = environment_error(exc, dest, "write")
        if env is not None and env is not exc:
            raise env from None
        raise


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Files written with `atomic_path` inside this block appear together when it ends, renamed in
    the order they were written; if any write fails, none of them appears (a training epoch's
    best.pt never shows up without the last.pt that can resume it)."""
    pending: list[tuple[Path, Path]] = []
    token = _PENDING.set(pending)
    try:
        yield
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        _PENDING.reset(token)
    try:
        for tmp, dest in pending:
            os.replace(tmp, dest)
        for folder in dict.fromkeys(dest.parent for _, dest in pending):
            _fsync_folder(folder)  # the renames survive a power cut
    finally:
        for tmp, _ in pending:  # left only if a rename failed
            tmp.unlink(missing_ok=True)


def _through_link(dest: Path) -> Path:
    """The file a write to `dest` replaces: a symlink's target (the link itself is kept)."""
    return Path(os.path.realpath(dest)) if dest.is_symlink() else dest


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)  # Windows flushes only a file opened for writing
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Flush a rename in `folder` to the disk, where the system allows it: Windows cannot open a
    folder, and some file systems refuse to sync one; the rename is done either way."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_output(out: str | os.PathLike[str], *inputs: str | os.PathLike[str] | None, option: str = "--out") -> Path:
    """Refuse, before any work starts, an output that would overwrite an input or cannot be written.

    Writability is tried, not assumed from permission bits (root passes every `os.access` check,
    yet cannot create a file in /proc): a temporary file is created and removed in the nearest
    existing folder on the way to `out`, so no folder is created for a command that then fails.
    """
    dest = Path(out)
    for src in inputs:
        if src is not None and _same_file(Path(src), dest):
            raise PddError(f"{option} {dest} is the command's input; choose another path (inputs are never overwritten)")
    if dest.is_dir():
        raise PddError(f"{option} {dest} is a folder; give a file path")
    _probe(_through_link(dest).parent, dest, option)  # a link's target is what gets written
    return dest


def check_output_dir(out: str | os.PathLike[str], *inputs: str | os.PathLike[str] | None, writes: tuple[str, ...] = (),
                     option: str = "--out") -> Path:
    """`check_output` for a command that writes a folder (a training run, a compress run): it must
    be a folder or not exist yet, be creatable, and none of the files it `writes` may be an input."""
    dest = Path(out)
    if dest.exists() and not dest.is_dir():
        raise PddError(f"{option} {dest} is a file; give a folder (it will hold {', '.join(writes) or 'the run'})")
    for src in inputs:
        for name in writes:
            if src is not None and _same_file(Path(src), dest / name):
                raise PddError(f"{option} {dest} would overwrite the input {src} with its {name}; choose another folder")
    _probe(dest if dest.is_dir() else dest.parent, dest, option)
    return dest


def _probe(folder: Path, dest: Path, option: str) -> None:
    """Writability is tried in the nearest existing folder on the way to `dest`, creating nothing."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise PddError(f"cannot write {option} {dest}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".pdd-edge-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PddError(f"cannot write {option} {dest}: {folder} is not writable ({exc.strerror})") from None


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def json_text(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON (RFC 8259 has no NaN or Infinity): a number that was not measured or cannot be
    computed is written as null, which every consumer (and `gate`, failing closed) understands."""
    return json.dumps(_finite(obj), indent=indent, sort_keys=False, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(path, json_text(obj) + "\n")


def read_json(path: str | os.PathLike[str], what: str = "JSON file") -> Any:
    p = Path(path)
    if not p.is_file():
        raise PddError(f"{what} not found: {p}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PddError(f"{what} {p} is not valid JSON ({exc}); regenerate it") from None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    """pdd-edge's cache folder: $PDD_EDGE_CACHE, else $XDG_CACHE_HOME/pdd-edge, else ~/.cache/pdd-edge."""
    root = os.environ.get("PDD_EDGE_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "pdd-edge"


def file_mismatch(path: str | Path, sha256: str, size: int) -> str:
    """How the file at `path` differs from the one recorded (by sha256 and size) when it was
    measured: "" when it is that file, else "is missing", "is 10 bytes, not 4,096 (truncated or
    replaced)" or "has changed (sha256 ...)"."""
    p = Path(path)
    if not p.is_file():
        return "is missing"
    actual = p.stat().st_size
    if actual != size:
        return f"is {actual:,} bytes, not the {size:,} that were profiled (truncated or replaced)"
    digest = file_sha256(p)
    if digest != sha256:
        return f"has changed since it was profiled (sha256 {digest[:12]}..., profiled {sha256[:12]}...)"
    return ""
