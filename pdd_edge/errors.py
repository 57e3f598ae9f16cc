"""The one exception type a user should ever see from pdd-edge.

Library code raises `PddError` for anything the user can fix (a missing file, an unknown model,
a malformed budget). The CLI turns it into one line on stderr and its exit code; nothing else
is caught, so a genuine bug still shows its traceback.
"""

from __future__ import annotations

USAGE = 2  # bad input: the user has to change the command or its files
FAILURE = 1  # the command ran but its verdict is negative (e.g. a gate check failed)


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


def require_torch(feature: str) -> None:
    """Fail clearly when a training-side command runs on a torch-free (edge) install."""
    try:
        import torch  # noqa: F401
    except ImportError:  # pragma: no cover - exercised in the torch-free install test
        raise PddError(
            f"{feature} needs PyTorch, which this install does not have; "
            "install the training extra: pip install 'pdd-edge[train]'"
        ) from None
