"""`report`: per target, `report-<target>.json` and `report-<target>.md` with PNG plots.

Inputs are files of the run directory only (paths from `RunDir`): the manifest (training and
pruning records), the accuracy record (top-1 of every deployable file, measured with
onnxruntime) and the target's profile record (the variants timed interleaved on that target). The report JSON
(schema `pdd-edge.report/1`, documented in docs/report.md) carries, besides the comparison, a
`gate` section: the numbers `pdd-edge gate` checks, of the variant deployed on that target.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pdd_edge.artifact import RunDir, now_utc
from pdd_edge.errors import PddError
from pdd_edge.fileio import file_mismatch, read_json, write_json, write_text
from pdd_edge.profiling import provenance
from pdd_edge.report import plots

SCHEMA = "pdd-edge.report/1"
MIB = 2**20
VARIANT_LABELS = {
    "baseline": "unpruned KD student, FP32",
    "baseline-int8": "unpruned KD student, INT8",
    "pruned": "PDD-pruned + fine-tuned, FP32",
    "int8": "PDD-pruned + fine-tuned, INT8",
}


def write_reports(run: RunDir, targets: list[str] | None = None) -> list[Path]:
    """Write the report of every profiled target (or of `targets`); returns the files written."""
    files: list[Path] = []
    available = run.profiles()
    names = targets or sorted(available)
    if not names:
        raise PddError(f"{run.root} has no profile yet; run the profile stage first (pdd-edge compress ... --resume)")
    for name in names:
        if name not in available:
            raise PddError(f"{run.root} has no profile for target {name!r} (profiled: {', '.join(sorted(available)) or 'none'})")
        files += write_report(run, read_json(available[name], "profile record"))
    return files


def _stage_metrics(run: RunDir, name: str) -> dict[str, Any]:
    rec = run.record(name)
    return dict(rec.get("metrics", {})) if rec else {}


DEFAULT_ACCURACY_BUDGET = 1.0  # top-1 points below the unpruned student, when the target sets no max_top1_drop


PRUNED = ("pruned", "int8")  # the variants PDD made; the others are the unpruned student's files
UNPRUNED = ("baseline", "baseline-int8")


def _p50(v: dict[str, Any]) -> float:
    value = v.get("latency_p50_ms")
    return value if isinstance(value, (int, float)) and not math.isnan(value) else math.inf


def deployable_variant(variants: dict[str, Any], target: dict[str, Any], foreign: bool = False) -> tuple[str, str]:
    """(the variant shipped to this target, why).

    Measured on the device itself: the fastest (p50) of every measured file, the unpruned student's
    FP32 and INT8 files included, whose top-1 is within the accuracy budget (the target's
    `max_top1_drop`, else 1 point) of the unpruned student. So a pruned model that is slower than
    the model the user started with is never the one shipped. The choice rests only on that
    device's evidence: measured elsewhere, it is the pruned model in the target's declared
    `quantization`.
    """
    wants_int8 = str(target.get("quantization", "fp32")).startswith("int8")
    declared = "int8" if wants_int8 and "int8" in variants else "pruned"
    if foreign:
        return declared, (f"the target's declared format ({target.get('quantization', 'fp32')}): the latencies "
                          "were not measured on this device, so they cannot decide")
    budget = float(target.get("budget", {}).get("max_top1_drop", DEFAULT_ACCURACY_BUDGET))
    base = variants.get("baseline", {}).get("top1", math.nan)

    def drop(n: str) -> float:
        return base - variants[n]["top1"]

    within = [n for n in variants if drop(n) <= budget]  # NaN top-1 (not measured) is never within
    if not within:
        candidates = [n for n in PRUNED if n in variants] or list(variants)
        best = max(candidates, key=lambda n: variants[n]["top1"] if not math.isnan(variants[n]["top1"]) else -math.inf)
        return best, f"no variant is within the {budget:g}-point accuracy budget; {best} is the most accurate"
    chosen = min(within, key=lambda n: _p50(variants[n]))
    why = [f"{chosen} is the fastest within the {budget:g}-point accuracy budget: p50 {variants[chosen]['latency_p50_ms']:.4g} ms, "
           f"top-1 drop {drop(chosen):.2f} points"]
    for n in variants:
        if n != chosen:
            status = "within" if n in within else "outside"
            why.append(f"{n}: p50 {variants[n]['latency_p50_ms']:.4g} ms, drop {drop(n):.2f} points ({status} the budget)")
    return chosen, "; ".join(why)


def not_faster(variants: dict[str, Any], deployed: str, foreign: bool) -> str | None:
    """The loud line of a run whose pruning bought no speed on this device, else None: the deployed
    file is one of the unpruned student's, because no pruned file within the accuracy budget was
    faster (measured elsewhere, nothing can be said, and nothing is)."""
    if foreign or deployed not in UNPRUNED:
        return None
    pruned = [n for n in PRUNED if n in variants]
    if not pruned:
        return None
    fastest = min(pruned, key=lambda n: _p50(variants[n]))
    return (f"pruning did not pay on this target: no pruned file within the accuracy budget is faster than the unpruned "
            f"model (fastest pruned: {fastest}, p50 {variants[fastest]['latency_p50_ms']:.4g} ms; deployed instead: "
            f"{deployed}, p50 {variants[deployed]['latency_p50_ms']:.4g} ms)")


def check_profiled(path: Path, model: dict[str, Any]) -> None:
    """The file a report describes must be the one that was profiled: same size, same sha256."""
    sha, size = model.get("sha256"), model.get("file_size_bytes")
    if not isinstance(sha, str) or not isinstance(size, int):
        raise PddError(f"the profile of {path} does not record its sha256 and size (an older pdd-edge); "
                       "profile the run again")
    problem = file_mismatch(path, sha, size)
    if problem:
        raise PddError(f"deployable file {path} {problem}; a report must describe the file it ships: "
                       "restore that file, or make the run again")


def build_report(run: RunDir, profile: dict[str, Any]) -> dict[str, Any]:
    """The report of one target's profile: the variants compared, the one deployed and why, and
    the numbers `pdd-edge gate` checks (schema in docs/report.md)."""
    target = profile["target"]
    variants = _variants(run, profile)
    base = variants.get("baseline")
    device_check = provenance.check(target, profile["environment"])
    deploy, why = deployable_variant(variants, target, foreign=device_check["foreign"])
    prune_rec = _stage_metrics(run, "prune")
    return {
        "schema": SCHEMA,
        "created_utc": now_utc(),
        "run_dir": str(run.root),
        "student": run.manifest["config"].get("student"),
        "teacher": run.manifest["config"].get("teacher"),
        "dataset": run.manifest["config"].get("data", {}).get("name"),
        "target": target,
        "environment": profile["environment"],
        # recomputed from the target and the environment: profiles of older versions lack it
        "device_check": device_check,
        "remote": profile.get("remote"),
        "variants": variants,
        "deployable": deploy,
        "deployable_reason": why,
        "not_faster": not_faster(variants, deploy, device_check["foreign"]),
        "gate": _gate_numbers(deploy, variants[deploy], base),
        "training": {
            "teacher_top1": _stage_metrics(run, "teacher").get("val_top1"),
            "baseline_top1": _stage_metrics(run, "baseline").get("val_top1"),
            "masked_top1": _stage_metrics(run, "distill").get("val_top1"),
            "finetuned_top1": _stage_metrics(run, "finetune").get("val_top1"),
        },
        "pruning": {k: prune_rec.get(k) for k in ("macs_before", "macs_after", "params_before", "params_after",
                                                   "macs_reduction_pct", "params_reduction_pct", "max_abs_diff",
                                                   "reopened_channels", "notes")},
        "layers": prune_rec.get("layers", {}),
        "latency_budget": latency_budget(prune_rec.get("latency"), target, variants),
        "plots": {},
    }


def _variants(run: RunDir, profile: dict[str, Any]) -> dict[str, Any]:
    """Every profiled variant's row: its file (checked to be the one profiled), accuracy, cost and
    latency, and its speed-up and MACs reduction against the unpruned FP32 file."""
    accuracy = read_json(run.accuracy(), "accuracy record")["variants"]
    variants: dict[str, Any] = {}
    for name, rec in profile["variants"].items():
        s = rec["summary"]
        acc = accuracy.get(name, {})
        file = acc.get("file", rec["model"]["path"])
        check_profiled(run.path(file), rec["model"])
        variants[name] = {
            "label": VARIANT_LABELS.get(name, name),
            "file": file,
            "sha256": rec["model"]["sha256"],
            "file_size_bytes": rec["model"]["file_size_bytes"],
            "top1": acc.get("top1", math.nan),
            "top5": acc.get("top5", math.nan),
            "val_images": acc.get("count", 0),
            "macs": s["macs"],
            "params": s["params"],
            "size_mb": s["model_size_mb"],
            "batch_size": s["batch_size"],
            "latency_p50_ms": s["latency_p50_ms"],
            "latency_p90_ms": s["latency_p90_ms"],
            "throughput_per_s": s["throughput_per_s"],
            "peak_memory_mb": s["peak_memory_mb"],
            "noisy": s["noisy"],
        }
    base = variants.get("baseline")
    for v in variants.values():
        v["speedup_p50"] = base["latency_p50_ms"] / v["latency_p50_ms"] if base and v["latency_p50_ms"] else math.nan
        v["macs_reduction_pct"] = 100 * (1 - v["macs"] / base["macs"]) if base and base["macs"] else math.nan
    return variants


def _gate_numbers(deploy: str, d: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    """What `pdd-edge gate` checks, of the deployed variant `d`; None when not measured (the gate then fails)."""
    return {
        "variant": deploy,
        # the file vouched for, as profiled: the gate fails if it is gone or changed
        "file": d["file"],
        "sha256": d["sha256"],
        "file_size_bytes": d["file_size_bytes"],
        "latency_p90_ms": d["latency_p90_ms"],
        "model_size_mb": d["size_mb"],
        "peak_memory_mb": d["peak_memory_mb"],
        "top1": d["top1"],
        "top1_drop": base["top1"] - d["top1"] if base else None,
        "macs_reduction": d["macs_reduction_pct"],
        "speedup": d["speedup_p50"],  # p50 of the unpruned FP32 file over the deployed file's
    }


LATENCY_TOLERANCE_PCT = 10.0  # a latency target is met when the measured p50 is within +/- 10 % of it


def latency_budget(lat: dict[str, Any] | None, target: dict[str, Any], variants: dict[str, Any]) -> dict[str, Any] | None:
    """Requested, predicted and measured latency of the pruned FP32 model, on the device the
    latency table describes (None for a run without a latency target, or another target)."""
    if not lat or not lat.get("target_ms") or lat.get("target") != target.get("name") or "pruned" not in variants:
        return None
    measured = variants["pruned"]["latency_p50_ms"]
    requested = lat["target_ms"]
    off = 100.0 * (measured - requested) / requested if measured else math.nan
    return {"requested_ms": requested, "predicted_ms": lat["predicted_ms"], "measured_ms": measured,
            "batch_size": variants["pruned"]["batch_size"], "table_batch_size": lat["batch_size"],
            "measured_vs_requested_pct": off, "met": abs(off) <= LATENCY_TOLERANCE_PCT,
            "prediction_error_pct": 100.0 * (lat["predicted_ms"] - measured) / measured if measured else math.nan,
            "table": lat["table"], "limited": lat.get("limited")}


def write_report(run: RunDir, profile: dict[str, Any]) -> list[Path]:
    report = build_report(run, profile)
    name = report["target"]["name"]
    written: list[Path] = []
    if plots.available():
        acc = plots.accuracy_vs_latency(report["variants"], name, run.plot(f"accuracy-latency-{name}"))
        written.append(acc)
        report["plots"]["accuracy_latency"] = acc.name
        if report["layers"]:
            ch = plots.channels_per_layer(report["layers"], run.plot("channels"))
            written.append(ch)
            report["plots"]["channels"] = ch.name
    else:
        # No plotting library (a bare edge install): the report has no plots, and must not sit
        # beside plots of an earlier report that show other numbers.
        for stale in (run.plot(f"accuracy-latency-{name}"), run.plot("channels")):
            stale.unlink(missing_ok=True)
    json_path = write_json(run.report_json(name), report)
    md_path = write_text(run.report_md(name), markdown(report))
    return written + [json_path, md_path]


def fmt(value: Any, spec: str, suffix: str = "") -> str:
    """A report number, or n/a where it is null or NaN (not measured, or not computable)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:{spec}}{suffix}"


def markdown(r: dict[str, Any]) -> str:
    """The report as Markdown: the variant table, the deployed variant and why, then the latency
    target and the pruning sections when the run has them."""
    lines = [*_md_heading(r), *_md_variant_table(r), *_md_deployed(r), *_md_latency_target(r.get("latency_budget"))]
    if any(v["noisy"] for v in r["variants"].values()):
        lines += ["", "> Warning: latency varied by more than 10 % (coefficient of variation); the machine was busy."]
    if r["plots"].get("accuracy_latency"):
        lines += ["", f"![accuracy vs latency]({r['plots']['accuracy_latency']})"]
    if r["pruning"].get("macs_before"):
        lines += _md_pruning(r)
    return "\n".join(lines) + "\n"


def _md_heading(r: dict[str, Any]) -> list[str]:
    """Title, where and how it was measured, and the loud warnings (foreign device, pruning that did not pay)."""
    env, target = r["environment"], r["target"]
    where = f"over SSH on {r['remote']['host']}" if r.get("remote") else "on this machine"
    return [
        f"# {r['student']} (teacher {r['teacher']}) on {target['name']}",
        "",
        f"Target **{target['name']}**: {target.get('description', '')}. Measured {where}: {env.get('cpu_model')} "
        f"({env.get('machine')}), onnxruntime {env.get('onnxruntime')} {env.get('execution_provider')}, "
        f"{env.get('intra_op_threads')} intra-op threads. Dataset `{r['dataset']}`.",
        "",
        *([f"> **Warning: {r['device_check']['message']}.** `pdd-edge gate` fails its latency and memory checks "
           "unless --accept-foreign-measurements is given.", ""] if r["device_check"]["foreign"] else []),
        *([f"> **NOT FASTER: {r['not_faster']}.**", ""] if r.get("not_faster") else []),
    ]


def _md_variant_table(r: dict[str, Any]) -> list[str]:
    lines = [
        "| variant | top-1 % | MACs | params | size (MiB) | p50 (ms) | p90 (ms) | speedup (p50) | peak mem (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in r["variants"].items():
        mark = " **(deployed)**" if name == r["deployable"] else ""
        lines.append(
            f"| {name}: {v['label']}{mark} | {fmt(v['top1'], '.2f')} | {v['macs']:,} | {v['params']:,} | "
            f"{fmt(v['size_mb'], '.3f')} | {fmt(v['latency_p50_ms'], '.3f')} | {fmt(v['latency_p90_ms'], '.3f')} | "
            f"{fmt(v['speedup_p50'], '.2f', 'x')} | {fmt(v['peak_memory_mb'], '.1f')} |")
    return lines


def _md_deployed(r: dict[str, Any]) -> list[str]:
    """The deployed variant, why, and how every number of the table was measured."""
    g = r["gate"]
    first = next(iter(r["variants"].values()))
    return [
        "",
        f"Deployed variant `{g['variant']}`: MACs -{fmt(g['macs_reduction'], '.1f')} % vs the unpruned student, "
        f"top-1 change {fmt(-g['top1_drop'] if g['top1_drop'] is not None else None, '+.2f')} points. "
        f"Why: {r.get('deployable_reason', 'n/a')}.",
        "",
        "MACs are multiply-accumulates of conv and linear (Gemm/MatMul) layers, counted from each ONNX graph; "
        "params are the ONNX files' weights (BN folded into conv). Top-1 is measured on each file with onnxruntime "
        f"on the {first['val_images']} validation images. Latency: batch "
        f"{first['batch_size']}, warm-up, then the variants timed round-robin in one "
        "process (see docs/profile.md).",
    ]


def _md_latency_target(lb: dict[str, Any] | None) -> list[str]:
    """Requested, predicted and measured latency (none for a run without a latency target)."""
    if not lb:
        return []
    lines = [
        "",
        "## Latency target",
        "",
        "| requested p50 (ms) | predicted (latency model) | measured (pruned FP32) | measured vs requested |",
        "|---:|---:|---:|---:|",
        f"| {lb['requested_ms']:.4f} | {lb['predicted_ms']:.4f} | {fmt(lb['measured_ms'], '.4f')} | "
        f"{fmt(lb['measured_vs_requested_pct'], '+.1f', ' %')} ({'met' if lb['met'] else 'missed'}: within "
        f"+/- {LATENCY_TOLERANCE_PCT:.0f} %) |",
        "",
        f"Latency model: `{lb['table']}` (batch {lb['table_batch_size']}); its prediction is "
        f"{fmt(lb['prediction_error_pct'], '+.1f', ' %')} off the measurement.",
    ]
    if lb.get("limited"):
        lim = lb["limited"]
        lines += ["", f"> **The distilled masks missed the request**: they were predicted at "
                      f"{lim['masks_predicted_ms']:.4f} ms, and prune closed channels only down to {lim['stopped_at_ms']:.4f} ms "
                      f"(at most {100 * lim['max_unrecovered_share']:.0f} % of the dense latency without training to "
                      "recover it). Distill longer, or ask for less."]
    return lines


def _md_pruning(r: dict[str, Any]) -> list[str]:
    """PyTorch counts before and after pruning, top-1 along the way, and the channels kept per layer."""
    p, t = r["pruning"], r["training"]
    lines = [
        "",
        "## Pruning",
        "",
        f"PyTorch counts (fvcore): MACs {p['macs_before']:,} -> {p['macs_after']:,} "
        f"(-{p['macs_reduction_pct']:.2f} %), params {p['params_before']:,} -> {p['params_after']:,} "
        f"(-{p['params_reduction_pct']:.2f} %). Largest logit difference masked vs pruned: {p['max_abs_diff']:.2e}.",
        "",
        f"Validation top-1 along the way: teacher {fmt(t['teacher_top1'], '.2f')} %, unpruned KD student "
        f"{fmt(t['baseline_top1'], '.2f')} %, distilled student {fmt(t['masked_top1'], '.2f')} %, pruned + fine-tuned "
        f"{fmt(t['finetuned_top1'], '.2f')} %.",
    ]
    # How the widths were decided (fixed in the distillation, rounded, closed or re-opened to fit the
    # budget): prune's own notes, so that the reader of the report sees what the JSON records.
    notes = p.get("notes") or []
    if notes:
        lines += ["", "How the widths were decided:", "", *[f"- {n}" for n in notes]]
    if r["plots"].get("channels"):
        lines += ["", f"![channels kept per layer]({r['plots']['channels']})"]
    lines += ["", "| layer | kept | of |", "|---|---:|---:|"]
    lines += [f"| {name} | {v['kept']} | {v['total']} |" for name, v in r["layers"].items()]
    return lines
