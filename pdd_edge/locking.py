"""One writer at a time: of a run folder, of a training's output, of a cached teacher.

Two processes writing one run folder would mix their checkpoints under one manifest that claims
a clean run. A command holds an OS-level lock (the `filelock` library: flock on POSIX) on what
it writes, from right after its options are checked until it exits. The OS drops the lock when
the process dies, even by SIGKILL, so a killed run never blocks its `--resume`.

The lock is a hidden file (`.pdd-edge.lock` in a run folder); beside it, `<lock>.pid` names
the holder. Both are removed on release, while still held, so a finished command leaves nothing;
a killed one leaves them behind, harmless: the next holder takes them over, and neither counts
as run content (`is_lock_file`). A lock that others wait for (`wait=True`, the teacher cache)
keeps its file, so that every waiter locks the same file.

Torch-free; filelock comes with the `train` extra, which every command that locks needs anyway.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

from pdd_edge.errors import PddError
from pdd_edge.fileio import write_text

FOLDER_LOCK = ".pdd-edge.lock"  # in a run folder (compress, distill, finetune)
PID_SUFFIX = ".pid"


def folder_lock(folder: str | os.PathLike[str]) -> Path:
    return Path(folder) / FOLDER_LOCK


def file_lock(path: str | os.PathLike[str]) -> Path:
    """The lock of a single output file (`train --out T.pt`): a hidden file beside it."""
    p = Path(path)
    return p.with_name(f".{p.name}.lock")


def is_lock_file(name: str) -> bool:
    """A name a lock leaves in a folder: not run content."""
    return name.endswith((".lock", ".lock" + PID_SUFFIX)) and name.startswith(".")


@contextlib.contextmanager
def hold(lock_path: str | os.PathLike[str], what: str, *, fix: str = "", wait: bool = False) -> Iterator[None]:
    """Hold `lock_path` for the block. Held elsewhere: with `wait`, say so once on stderr and wait
    for it; without, refuse with one line naming `what`, the holder's pid, and `fix` (exit 2)."""
    from filelock import FileLock, Timeout

    path = Path(lock_path)
    created = _missing_folders(path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            busy = f"{what} is in use by another pdd-edge process{_holder(path)}"
            if not wait:
                raise PddError(f"{busy}; wait for it to finish (or stop it){fix}") from None
            print(f"{busy}; waiting for it to finish", file=sys.stderr, flush=True)
            lock.acquire()
    except OSError as exc:
        raise PddError(f"cannot lock {what} ({path}): {exc.strerror or exc}") from None
    pid_file = path.with_name(path.name + PID_SUFFIX)
    try:
        write_text(pid_file, f"{os.getpid()}\n")
        yield
    finally:
        # Removed while still held: after release the next holder writes its own.
        pid_file.unlink(missing_ok=True)
        if not wait:
            path.unlink(missing_ok=True)
        lock.release()
        for folder in created:  # a command that wrote nothing leaves no folder behind either
            with contextlib.suppress(OSError):
                folder.rmdir()  # only while empty


def _missing_folders(folder: Path) -> list[Path]:
    """The folders that creating `folder` creates, innermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _holder(lock_path: Path) -> str:
    """' (pid N)' for a running holder; '' when unknown (a stale file of a killed process)."""
    try:
        pid = int(lock_path.with_name(lock_path.name + PID_SUFFIX).read_text().strip())
    except (OSError, ValueError):
        return ""
    if os.name == "nt":
        return f" (pid {pid})"  # os.kill would terminate it there, not probe it
    try:
        os.kill(pid, 0)  # signal 0 only checks that the process exists
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return ""
    return f" (pid {pid})"
