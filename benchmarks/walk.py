"""Walk a call path through the package and count the rooms it enters (issue 24's "walks").

A *room* is a module of pdd_edge (pdd_edge/nn/pruning.py, cli/prune.py ...). While `fn` runs,
every call from one pdd_edge function into a pdd_edge function of another module is an *entry*
into that module; each distinct (caller, callee) pair counts once, so a loop over 30 layers
that calls the same helper counts as one entry, but asking the same question from four places
counts four. A module's top level running on its first import is not an entry. An entry is a *climb* when the callee's room sits on a higher floor than the
caller's (tests/test_layout.py's FLOORS): a callback, or a lower layer reaching back up.

    python benchmarks/walk.py prune      # stages/prune.py:prune_checkpoint on a small masked checkpoint
    python benchmarks/walk.py latency    # stages/latency.py:run on a small run folder

Each scenario lives in benchmarks/walk_<name>.py and defines `scenario() -> (title, callable)`:
it builds its inputs (untraced) and returns the call to trace.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _floors() -> dict[str, int]:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_layout import FLOOR_OF  # noqa: E402  the one table of floors

    return FLOOR_OF


def _module_of(code) -> str | None:
    """Dotted pdd_edge module of a code object (./cli is installed as pdd_edge.cli)."""
    return _module_of_file(code.co_filename)


@functools.lru_cache(maxsize=None)  # called on every Python call while tracing: resolve each file once
def _module_of_file(filename: str) -> str | None:
    path = Path(filename).resolve()
    for base, prefix in ((ROOT / "pdd_edge", "pdd_edge"), (ROOT / "cli", "pdd_edge.cli")):
        try:
            rel = path.relative_to(base).with_suffix("")
        except ValueError:
            continue
        parts = [prefix, *rel.parts]
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)
    return None


def _room(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def trace(fn) -> dict:
    """Run `fn()` and return the distinct cross-module call edges it made, inside pdd_edge."""
    edges: set[tuple[str, str, str, str]] = set()
    stack: list[tuple[str | None, str]] = []

    def profiler(frame, event, arg):
        if event == "call":
            module = _module_of(frame.f_code)
            caller = next((s for s in reversed(stack) if s[0] is not None), None)
            # a module's own top level running (its first import) is loading code, not a call into it
            if module is not None and caller is not None and caller[0] != module and frame.f_code.co_name != "<module>":
                edges.add((caller[0], caller[1], module, frame.f_code.co_qualname))
            stack.append((module, frame.f_code.co_qualname))
        elif event == "return" and stack:
            stack.pop()

    sys.setprofile(profiler)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return summarise(edges)


def summarise(edges) -> dict:
    floors = _floors()
    entries = Counter(callee for _, _, callee, _ in edges)
    climbs = sorted(f"{a}.{af} -> {b}.{bf}" for a, af, b, bf in edges
                    if _room(a) != _room(b) and floors[_room(b)] < floors[_room(a)])
    # the same count one level up: calls from one package (a floor's room: zoo, nn, latency ...) into another
    package_entries = Counter(_room(callee) for caller, _, callee, _ in edges if _room(caller) != _room(callee))
    return {"entries": dict(sorted(entries.items(), key=lambda kv: (-kv[1], kv[0]))), "climbs": climbs,
            "package_entries": dict(sorted(package_entries.items(), key=lambda kv: (-kv[1], kv[0]))),
            "edges": sorted(f"{a}.{af} -> {b}.{bf}" for a, af, b, bf in edges)}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    title, call = importlib.import_module(f"walk_{argv[0]}").scenario()
    result = trace(call)
    print(f"walk: {title}")
    print(f"rooms entered: {len(result['entries'])}, entries: {sum(result['entries'].values())}, "
          f"climbs back up: {len(result['climbs'])}")
    print("packages entered from another package: " + ", ".join(f"{p} {n}" for p, n in result["package_entries"].items()))
    for module, n in result["entries"].items():
        print(f"  {n:3d}  {module}")
    for climb in result["climbs"]:
        print(f"  climb: {climb}")
    if "-v" in sys.argv or "--edges" in sys.argv:
        print("\n".join(result["edges"]))
    return 0


if __name__ == "__main__":
    sys.exit(main([a for a in sys.argv[1:] if a not in ("-v", "--edges")]))
