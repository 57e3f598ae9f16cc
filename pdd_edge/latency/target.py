"""A latency target: one request on one device (`--target-latency-ms X` or `--target-speedup S`),
and the one check that a latency table fits the run it is to budget.

`distill`, `prune` and `compress` (its `latency` stage) each take the same two options and the
same table; before this module each validated them, spelled "is there a latency target?" and
checked the table its own way. `LatencyTarget.of` is the one validation, `reach` the one
reachability rule (refused with the best reachable figure), `load_checked`/`check_fits` the one
"was this table made for this model, input size, target and class count?".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdd_edge.errors import PddError
from pdd_edge.latency.predictor import LatencyPredictor, load

NEEDS_TABLE = ("a latency target needs the device's latency table: make one with `pdd-edge latency-table` "
               "and pass it with --latency-table")


@dataclass(frozen=True)
class LatencyTarget:
    """`ms` milliseconds (p50 at the table's batch size and threads), or `speedup` times faster
    than the unpruned network on the table's device: exactly one is set."""

    ms: float | None = None
    speedup: float | None = None

    @classmethod
    def of(cls, ms: float | None, speedup: float | None, table: str | Path | None = "") -> "LatencyTarget | None":
        """The request the two options make (None: neither given), refused when malformed. `table`
        None says the command has no --latency-table (it needs one); "" skips that check (a
        `compress` run measures its table)."""
        if ms is None and speedup is None:
            return None
        if ms is not None and speedup is not None:
            raise PddError("give --target-latency-ms or --target-speedup, not both")
        if ms is not None and not (ms > 0 and math.isfinite(ms)):
            raise PddError(f"--target-latency-ms must be a positive number of milliseconds, got {ms}")
        if speedup is not None and not (speedup > 1 and math.isfinite(speedup)):
            raise PddError(f"--target-speedup must be above 1 (e.g. 2 for twice as fast), got {speedup}")
        if table is None:
            raise PddError(NEEDS_TABLE)
        return cls(ms, speedup)

    def option(self) -> str:
        """The request as the command line spells it."""
        return f"--target-speedup {self.speedup:g}" if self.speedup is not None else f"--target-latency-ms {self.ms:g}"

    def requested_ms(self, dense_ms: float) -> float:
        """The requested latency, given the unpruned network's (predicted) one."""
        return self.ms if self.ms is not None else dense_ms / self.speedup

    def reach(self, table: LatencyPredictor, arch: Any) -> dict[str, Any]:
        """The request for the prunable model `arch`, as predicted latencies: refused (usage error)
        at or above the dense network's prediction, or at or below the thinnest network the allowed
        structures give (every layer at the channel multiple, every block that may vanish gone),
        whose figure the refusal names."""
        dense = float(table.predict_counts(arch))
        floor_counts = {p: 0 if arch.may_vanish(p) else min(n, table.channel_multiple)
                        for p, n in arch.mask_points().items()}
        floor = float(table.predict_counts(arch, floor_counts))
        # The fit is linear and extrapolates below the thinnest network (even below 0): where the
        # table measured that network, its measurement is the floor.
        measured = (table.record.get("floor") or {}).get("measured_ms")
        if measured is not None:
            floor = max(floor, float(measured))
        wanted = self.requested_ms(dense)
        where = table.key["target"]
        if wanted >= dense:
            raise PddError(f"--target-latency-ms {wanted:g} is not below the unpruned network's {dense:.4g} ms "
                           f"on {where} (predicted): ask for less")
        if wanted <= floor:
            asked = self.option() if self.ms is None else f"--target-latency-ms {wanted:g}"
            raise PddError(f"{asked} is out of reach on {where}: the best the student's structures can reach is "
                           f"{floor:.4g} ms ({dense / floor:.2f}x the unpruned {dense:.4g} ms, predicted); ask for at "
                           f"most a {dense / floor:.2f}x speed-up")
        return {"requested_ms": wanted, "dense_predicted_ms": dense, "floor_predicted_ms": floor,
                "target_reduction": 1.0 - wanted / dense}


def check_fits(table: LatencyPredictor, path: str | Path, *, model: str | None = None, input_hw: Any = None,
               target: str | None = None, num_classes: int | None = None) -> LatencyPredictor:
    """`table` (read from `path`), refused in one line naming the first mismatch unless it was made
    for each of the given model, input size, target and class count."""
    wanted = {"model": model, "input_size": None if input_hw is None else list(input_hw), "target": target,
              "num_classes": num_classes}
    for key, want in wanted.items():
        if want is None or table.key.get(key) == want:
            continue
        remake = f"pdd-edge latency-table {model or table.key['model']}"
        if key == "input_size":
            remake += f" --input-size {want[0]},{want[1]}"
        elif key == "target":
            remake += f" --target {want}"
        elif key == "num_classes":
            remake += f" --num-classes {want}"
        raise PddError(f"{path} is for {key.replace('_', ' ')} {table.key.get(key)}, this run needs {want}: "
                       f"make one with `{remake}`")
    return table


def load_checked(path: str | Path, **wanted: Any) -> LatencyPredictor:
    """The latency table at `path` (a missing or damaged file is one line), checked by `check_fits`."""
    return check_fits(load(path), path, **wanted)
