"""`gate`: does the deployable model of a report fit a budget? Exit 0 yes, 1 no, 2 bad input.

Fails closed: a budgeted metric that is missing, null, NaN or impossible (a latency, size or
memory of zero or less; a top-1 outside 0..100) is a failed check, never a pass. So is a latency
or memory measured on another kind of machine than the target declares (see
profiling/provenance.py), unless the user accepts it explicitly. The budget is the `[budget]`
table of a target (`--target`, or the one recorded in the report) or of a `--budget` file; its
keys are the ones targets use (see BUDGET_KEYS), and an unknown key is a usage error.
Torch-free: runs in any CI job that has the report.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pdd_edge.artifact import RunDir
from pdd_edge.errors import PddError
from pdd_edge.fileio import file_mismatch, read_json
from pdd_edge.profiling import provenance
from pdd_edge.profiling.profile import SCHEMA as PROFILE_SCHEMA
from pdd_edge.profiling.targets import BUDGET_KEYS, load_target, read_target_file
from pdd_edge.report.build import SCHEMA as REPORT_SCHEMA

# budget key -> (report.gate metric, comparison, unit)
CHECKS: dict[str, tuple[str, str, str]] = {
    "latency_p90_ms": ("latency_p90_ms", "<=", "ms"),
    "model_size_mb": ("model_size_mb", "<=", "MiB"),
    "peak_memory_mb": ("peak_memory_mb", "<=", "MiB"),
    "min_top1": ("top1", ">=", "%"),
    "max_top1_drop": ("top1_drop", "<=", "points"),
    "min_macs_reduction": ("macs_reduction", ">=", "%"),
    "min_speedup": ("speedup", ">=", "x"),
}
assert set(CHECKS) == set(BUDGET_KEYS), "every budget key needs a check"
# The values a measurement can take; anything else is a broken or doctored report.
POSSIBLE: dict[str, Callable[[float], bool]] = {
    "latency_p90_ms": lambda v: v > 0, "model_size_mb": lambda v: v > 0, "peak_memory_mb": lambda v: v > 0,
    "top1": lambda v: 0 <= v <= 100, "top1_drop": lambda v: -100 <= v <= 100, "macs_reduction": lambda v: v <= 100,
    "speedup": lambda v: v > 0,
}


@dataclass(frozen=True)
class Check:
    key: str
    metric: str
    actual: float | str | None  # str: a check of a file, not of a number
    limit: float | str
    op: str
    unit: str
    passed: bool
    reason: str
    note: str = ""  # e.g. that a foreign measurement was accepted

    def actual_text(self) -> str:
        if self.actual is None:
            return "missing"
        return self.actual if isinstance(self.actual, str) else f"{self.actual:.4g} {self.unit}"

    def limit_text(self) -> str:
        return f"{self.op} {self.limit}".strip() if isinstance(self.limit, str) else f"{self.op} {self.limit:g} {self.unit}"


FILE_CHECK = "deployable_file"


def check_file(report: dict[str, Any], report_path: Path) -> Check:
    """Is the deployable file the report vouches for still there, byte for byte (its sha256 and
    size as profiled)? A report that does not say which file fails closed."""
    g = report["gate"]
    rel, sha, size = g.get("file"), g.get("sha256"), g.get("file_size_bytes")

    def result(actual: str | None, reason: str = "") -> Check:
        return Check(FILE_CHECK, "sha256", actual, "as profiled", "", "", not reason, reason)

    if not isinstance(rel, str) or not isinstance(sha, str) or not isinstance(size, int) or isinstance(size, bool):
        return result(None, "the report does not record the sha256 of the file it vouches for (fails closed); "
                            "make it again with `pdd-edge report` or `pdd-edge profile --json-out`")
    candidates = _file_candidates(rel, report, report_path)
    problems = [(path, file_mismatch(path, sha, size)) for path in candidates]
    if any(not problem for _, problem in problems):
        return result("unchanged")
    changed = [(path, problem) for path, problem in problems if problem != "is missing"]
    if changed:
        return result("changed", f"{changed[0][0]} {changed[0][1]} (fails closed)")
    where = str(candidates[0]) if len(candidates) == 1 else f"{rel} (looked for {' and '.join(map(str, candidates))})"
    return result(None, f"{where} is missing (fails closed)")


def _file_candidates(rel: str, report: dict[str, Any], report_path: Path) -> list[Path]:
    """Where the vouched-for file may be: a report's path is relative to the run directory the
    report lies in (never another copy of the run); a profile record's is as it was given to
    `profile` (relative to the current folder, or to the record's folder)."""
    if Path(rel).is_absolute():
        return [Path(rel)]
    if not report.get("from_profile"):
        return [RunDir.root_of_report(report_path) / rel]
    return [root / rel for root in dict.fromkeys([Path.cwd(), report_path.parent])]


def load_report(path: str | Path, target: str | None) -> dict[str, Any]:
    """A report JSON file, or the report of `target` in a run directory (the only one if no target)."""
    return read_report(find_report(path, target))


def find_report(path: str | Path, target: str | None) -> Path:
    """The report JSON `path` names: itself, or the report of `target` in a run directory."""
    p = Path(path)
    if p.is_dir():
        names = RunDir(p).reports()
        if not names:
            raise PddError(f"{p} holds no report; run `pdd-edge report {p}` first")
        if target is None:
            if len(names) > 1:
                raise PddError(f"{p} has reports for several targets ({', '.join(names)}); choose one with --target")
            p = next(iter(names.values()))
        else:
            wanted = load_target(target).name
            if wanted not in names:
                raise PddError(f"{p} has no report for target {wanted!r} (reports: {', '.join(names)}); "
                               f"make it with `pdd-edge report {p} --target {target}`")
            p = names[wanted]
    return p


def read_report(p: Path) -> dict[str, Any]:
    """A report JSON, or a bare profile record as one; a malformed file is one line (exit 2)."""
    report = read_json(p, "report")
    if isinstance(report, dict) and report.get("schema") == PROFILE_SCHEMA:
        report = from_profile(report)
    elif not isinstance(report, dict) or report.get("schema") != REPORT_SCHEMA or not isinstance(report.get("gate"), dict):
        raise PddError(f"{p} is not a pdd-edge report ({REPORT_SCHEMA}) or profile record ({PROFILE_SCHEMA})")
    problem = _malformed(report)
    if problem:
        raise PddError(f"{p} is malformed: {problem}; regenerate it with `pdd-edge report` (or `pdd-edge profile --json-out`)")
    return report


def _malformed(report: dict[str, Any]) -> str:
    """What is wrong with the shape of a report the gate reads ("" if nothing): a file edited by
    hand or by another tool fails here with one line, not deep inside the checks."""
    target, env = report.get("target"), report.get("environment")
    if not isinstance(target, dict) or not isinstance(target.get("name"), str):
        return f'"target" must be an object with a "name", got {_short(target)}'
    budget = target.get("budget", {})
    if not isinstance(budget, dict):
        return f'"target.budget" must be an object, got {_short(budget)}'
    for key, value in budget.items():
        if _number(value) is None:
            return f'"target.budget.{key}" must be a number, got {_short(value)}'
    if env is not None and not isinstance(env, dict):
        return f'"environment" must be an object, got {_short(env)}'
    return ""


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def from_profile(record: dict[str, Any]) -> dict[str, Any]:
    """Gate numbers of a bare profile record (`pdd-edge profile --json-out`) (any ONNX model, no run directory):
    latency, size and memory only; accuracy and MACs-reduction budgets then fail closed."""
    try:
        summary, model = record["summary"], record["model"]
        if not isinstance(summary, dict) or not isinstance(model, dict):
            raise TypeError("summary and model must be objects")
        return {"schema": REPORT_SCHEMA, "from_profile": True, "target": record["target"],
                "environment": record.get("environment"), "gate": {
            "variant": Path(model["path"]).name, "file": model["path"], "sha256": model.get("sha256"),
            "file_size_bytes": model.get("file_size_bytes"), "latency_p90_ms": summary.get("latency_p90_ms"),
            "model_size_mb": summary.get("model_size_mb"), "peak_memory_mb": summary.get("peak_memory_mb"),
            "top1": None, "top1_drop": None, "macs_reduction": None, "speedup": None}}
    except (KeyError, TypeError):
        raise PddError(f"malformed profile record (schema {PROFILE_SCHEMA}); regenerate it with `pdd-edge profile --json-out`") from None


def device_target(report: dict[str, Any], target: str | None) -> dict[str, Any]:
    """The declaration of the device being gated: the named target's as installed now (a report
    written before targets declared their device must not escape the check), else the report's."""
    return load_target(target).to_dict() if target is not None else dict(report.get("target") or {})


def resolve_budget(report: dict[str, Any], target: str | None, budget_file: str | Path | None) -> tuple[str, dict[str, float]]:
    """(where the budget comes from, the budget)."""
    if budget_file is not None:
        source, budget = str(budget_file), read_target_file(Path(budget_file), "budget file").budget
    elif target is not None:
        t = load_target(target)
        reported = report.get("target", {}).get("name")
        if reported is not None and t.name != reported:
            raise PddError(f"the report was measured for target {reported!r}, not {t.name!r}; "
                           "profile that target, or pass --budget FILE.toml to check another budget")
        source, budget = f"target {t.name}", t.budget
    else:
        t_rec = report.get("target", {})
        source, budget = f"target {t_rec.get('name')} (as recorded in the report)", dict(t_rec.get("budget") or {})
        unknown = sorted(set(budget) - set(CHECKS))
        if unknown:
            raise PddError(f"the report's budget has unknown keys {unknown}; pass --budget FILE.toml")
    if not budget:
        raise PddError(f"{source} has no [budget] entries: nothing to check; pass --budget FILE.toml with a [budget] table")
    return source, budget


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def check_budget(gate_metrics: dict[str, Any], budget: dict[str, float], foreign: str = "",
                 accept_foreign: bool = False) -> list[Check]:
    """One check per budget key. `foreign`: why the latency and memory were not measured on the
    gated device ("" when they were); those checks fail unless `accept_foreign`."""
    checks = []
    for key, limit in budget.items():
        metric, op, unit = CHECKS[key]
        actual = _number(gate_metrics.get(metric))
        if actual is None:
            raw = gate_metrics.get(metric, "missing")
            checks.append(Check(key, metric, None, limit, op, unit, False, f"{metric} is {raw!r} in the report (fails closed)"))
            continue
        if not POSSIBLE[metric](actual):
            checks.append(Check(key, metric, actual, limit, op, unit, False,
                                f"{metric} = {actual:g} is impossible (fails closed); re-measure the model"))
            continue
        note = ""
        if foreign and key in provenance.DEVICE_KEYS:
            if not accept_foreign:
                checks.append(Check(key, metric, actual, limit, op, unit, False,
                                     f"{foreign}; fails closed (measure on the device with --remote, "
                                     "or pass --accept-foreign-measurements)"))
                continue
            note = "foreign measurement accepted (--accept-foreign-measurements)"
        passed = actual <= limit if op == "<=" else actual >= limit
        checks.append(Check(key, metric, actual, limit, op, unit, passed,
                            "" if passed else f"{actual:g} {op} {limit:g} is false", note))
    return checks


def junit_xml(checks: list[Check], suite: str) -> bytes:
    failures = sum(not c.passed for c in checks)
    root = ET.Element("testsuites", name="pdd-edge gate", tests=str(len(checks)), failures=str(failures))
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(checks)), failures=str(failures), errors="0")
    for c in checks:
        tc = ET.SubElement(ts, "testcase", classname=f"pdd_edge.gate.{suite}", name=c.key)
        if c.note:
            ET.SubElement(tc, "system-out").text = c.note
        if not c.passed:
            f = ET.SubElement(tc, "failure", message=c.reason, type="BudgetExceeded")
            f.text = f"{c.metric}: actual {c.actual}, limit {c.op} {c.limit} {c.unit}"
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def markdown_table(checks: list[Check], title: str) -> str:
    lines = [f"### {title}", "", "| check | actual | limit | verdict |", "|---|---:|---:|---|"]
    for c in checks:
        verdict = ("pass" if c.passed else f"**FAIL** {c.reason}") + (f" ({c.note})" if c.note else "")
        lines.append(f"| {c.key} | {c.actual_text()} | {c.limit_text()} | {verdict} |")
    return "\n".join(lines) + "\n"
