"""The one exception type a user should ever see from pdd-edge.

Library code raises `PddError` for anything the user can fix (a missing file, an unknown model,
a malformed budget). The CLI turns it into one line on stderr and its exit code. A failure of
the machine rather than of the input (disk full, read-only or failing file system, no
permission) is one line too, with exit code 3 (see `environment_error`); nothing else is
caught, so a genuine bug still shows its traceback.
"""

from __future__ import annotations

import errno
import os

USAGE = 2  # bad input: the user has to change the command or its files
FAILURE = 1  # the command ran but its verdict is negative (e.g. a gate check failed)
ENVIRONMENT = 3  # the machine failed the command: disk full, read-only file system, no permission, I/O error


class PddError(Exception):
    """A problem with the user's input, with a message that says what to do about it.

    `every_rank`: under torchrun, whether every process meets the same error (so rank 0 alone
    reports it); by default true of usage errors and false of failures, which may be one rank's."""

    def __init__(self, message: str, *, exit_code: int = USAGE, every_rank: bool | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.every_rank = exit_code == USAGE if every_rank is None else every_rank


def shortlist(items, limit: int = 3) -> str:
    """`'a', 'b', 'c', … (7 in all)`: a list for a message, visibly cut short when it is."""
    items = list(items)
    if not items:
        return "none"
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown if len(items) <= limit else f"{shown}, … ({len(items)} in all)"


def torch_installed() -> bool:
    """Whether PyTorch can be imported: false on an edge install (no `train` extra)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def require_torch(feature: str) -> None:
    """Fail clearly when a training-side command runs on a torch-free (edge) install."""
    if not torch_installed():
        raise PddError(
            f"{feature} needs PyTorch, which this install does not have; "
            "install the training extra: pip install 'pdd-edge[train]'"
        ) from None


# What to do about each cause; anything else gets the system's own words.
_ENV_HINTS = {
    errno.ENOSPC: "no space left on the device; free space there or write elsewhere, then re-run",
    errno.EDQUOT: "disk quota exceeded; free space there or write elsewhere, then re-run",
    errno.EROFS: "the file system is read-only; write elsewhere, then re-run",
    errno.EACCES: "permission denied; fix the permissions or write elsewhere, then re-run",
    errno.EPERM: "operation not permitted; fix the permissions or write elsewhere, then re-run",
    errno.EIO: "input/output error; the disk or its connection is failing: check it, then re-run",
}
# Failures of the machine with the system's own words; any other OSError (ENOENT, EISDIR, EINVAL,
# ...) may as well be a bug or a missed input check, and keeps its traceback.
_ENV_OTHER = {errno.EFBIG, errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ESTALE, errno.ETIMEDOUT}
# torch.save reports a failed write (typically a full disk) as a RuntimeError from its zip writer.
_TORCH_WRITE_FAILURES = ("inline_container.cc", "PytorchStreamWriter failed")


def environment_error(exc: BaseException, path: str | os.PathLike[str] | None = None,
                      action: str = "access") -> PddError | None:
    """The one-line error (exit code ENVIRONMENT) for a failure of the machine, naming `path`
    (else the file the exception names) and what to do; None when `exc` is not such a failure
    (a bug must keep its traceback)."""
    if isinstance(exc, PddError):
        return exc if exc.exit_code == ENVIRONMENT else None
    if isinstance(exc, OSError) and (exc.errno in _ENV_HINTS or exc.errno in _ENV_OTHER):
        where = path if path is not None else exc.filename
        cause = _ENV_HINTS.get(exc.errno) or (exc.strerror or str(exc) or type(exc).__name__)
        code = f" ({errno.errorcode[exc.errno]})" if exc.errno in errno.errorcode else ""
        head = f"cannot {action} {where}" if where is not None else "file system error"
        return PddError(f"{head}{code}: {cause}", exit_code=ENVIRONMENT)
    if isinstance(exc, RuntimeError) and any(s in str(exc) for s in _TORCH_WRITE_FAILURES):
        head = f"cannot write {path}" if path is not None else "a checkpoint write failed"
        return PddError(f"{head}: the write failed (most often a full disk); free space there or write elsewhere, "
                        "then re-run", exit_code=ENVIRONMENT)
    return None
