"""The suite's results files: its stored parts (:mod:`topdown.store`) assembled into results.json (with the
sanity checks, the worst case and the corruption errors) and results.csv. See SCHEMA.md for the layout."""

from __future__ import annotations

import csv
import datetime as _dt
import io
import os
import platform
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_write_text, jsonable
from ..results_view import Results
from ..store import SCHEMA_VERSION
from .corruptions import corruption_errors
from .decode import PartResults, autoattack_summary, bits, worst_case
from .sanity import run_checks

# -- results.csv --------------------------------------------------------------------------------------------
CSV_COLUMNS = ("model", "section", "name", "x_name", "x", "metric", "value")


def csv_rows(results: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    """Long-format rows: one number per row, so any plotting tool can pivot them."""
    for model, m in Results(results).models.items():
        for metric in ("top1", "top5", "macro_acc", "ece", "nll"):
            if (v := m.clean.get(metric)) is not None:
                yield model, "clean", "test", "", "", metric, v
        for cls, acc in m.clean.per_class_acc.items():
            yield model, "clean", "per_class", "class", cls, "accuracy", acc
        for name, a in m.attacks.items():
            for e, acc in zip(a.epsilons, a.accuracy):
                yield model, "attack", name, f"eps_{a.norm}", e, "accuracy", acc
            if a.distances is not None:  # minimal attacks: the median of their per-image distances
                yield model, "attack", name, "", "", f"median_{a.norm}_distance", a.median_distance
        for norm, w in m.worst_cases.items():
            for e, acc in zip(w.epsilons, w.accuracy):
                yield model, "worst_case", norm, f"eps_{norm}", e, "accuracy", acc
        for name, p in m.perturbations.items():
            for lv, acc, l2 in zip(p.levels, p.accuracy_per_level, p.mean_l2_per_level):
                yield model, "perturbation", name, "level", lv, "accuracy", acc
                yield model, "perturbation", name, "level", lv, "mean_l2", l2
            yield model, "perturbation", name, "", "", "auc", p.auc
            yield model, "perturbation", name, "", "", "median_min_l2", p.median_min_l2
        for kind, s in m.scales.items():
            for lvl, accs in zip(s.levels, s.accuracy):
                for st, acc in zip(s.strengths, accs):
                    yield model, f"scale_{kind}", f"level_{lvl}", s.strength, st, "accuracy", acc
        for name, cr in m.corruptions.per_corruption.items():
            for sev, acc in zip(cr.severities, cr.accuracy):
                yield model, "corruption", name, "severity", sev, "accuracy", acc
        for metric in ("mce", "relative_mce", "mean_accuracy"):
            if (v := m.corruptions.get(metric)) is not None:
                yield model, "corruption", "all", "", "", metric, v
        for name, chk in m.sanity.items():
            yield model, "sanity", name, "", "", "passed", "" if chk.passed is None else int(chk.passed)
            yield model, "sanity", name, "", "", "value", chk.value


def write_csv(path: str | os.PathLike[str], results: dict[str, Any]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for row in csv_rows(results):
        w.writerow(["" if v is None else v for v in jsonable(list(row))])
    atomic_write_text(path, buf.getvalue())


def environment() -> dict[str, Any]:
    """Versions that produced the numbers."""

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        # the CPU kernels torch ran (AVX512, AVX2, ...): float results, and so trained nets, differ between them
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        **{
            pkg: version(pkg)
            for pkg in ("topdown", "torch", "foolbox", "eagerpy", "pyautoattack", "albumentations", "numpy")
        },
    }


# -- results.json --------------------------------------------------------------------------------------------------
def assemble(
    models: list[dict[str, Any]],
    model_parts: dict[str, PartResults],
    suite: dict[str, Any],
    data: dict[str, Any],
    sanity: Any,
    out: Path,
) -> dict[str, Any]:
    """results.json's content (see SCHEMA.md) from every model's parts.

    Args:
        models: per model, in order: ``{"name", "architecture", "is_topdown", "checkpoint"}``.
        model_parts: per model, its finished parts, in running order.
        suite: the suite's settings (``SuiteConfig.to_dict()``).
        data: ``{description, split, n_test, subset_size, subset_indices, subset_seed}``.
        sanity: the suite's ``SanityConfig`` (thresholds of the checks).
        out: the output folder.
    """
    reference = next((m["name"] for m in models if not m["is_topdown"]), models[0]["name"])
    attack_cfg = suite.get("attacks")
    res_models: dict[str, Any] = {}
    for info in models:
        parts = model_parts[info["name"]]
        attacks = {k: v for k, v in parts.items() if isinstance(v, dict) and v.get("kind") in ("fixed", "minimal")}
        clean_sub = bits(parts["subset"]["clean_correct"]) if "subset" in parts else np.zeros(0, dtype=bool)
        worst = {}
        if attack_cfg is not None:
            for norm in ("linf", "l2"):
                w = worst_case(parts, clean_sub, norm, list(attack_cfg[f"{norm}_epsilons"]))
                if w:
                    worst[norm] = w
        checks = run_checks(parts, sanity.tolerance, sanity.min_nonzero_gradients)
        failed = [k for k, c in checks.items() if c["passed"] is False]
        res_models[info["name"]] = {
            "checkpoint": info["checkpoint"],
            "architecture": info["architecture"],
            "is_topdown": info["is_topdown"],
            "clean": parts.get("clean"),
            "subset": parts.get("subset"),
            "attacks": attacks,
            "autoattack": autoattack_summary(parts, clean_sub),
            "decision": parts.get("decision"),
            "worst_case": worst,
            "perturbations": parts.section("perturbation"),
            "scales": parts.section("scale"),
            "corruptions": {"per_corruption": parts.section("corruption")},
            "sanity": checks,
            "flagged": bool(failed),
            "failed_checks": failed,
            "time_s": float(sum(v.get("time_s", 0) or 0 for v in parts.values() if isinstance(v, dict))),
        }
    # mCE against the reference, on the same images
    with_corr = {k: m for k, m in res_models.items() if m["corruptions"]["per_corruption"]}
    if reference in with_corr:
        errors = {
            k: {c: r["error"] for c, r in m["corruptions"]["per_corruption"].items()} for k, m in with_corr.items()
        }
        clean_err = {k: 1 - m["subset"]["accuracy"] for k, m in with_corr.items()}
        for k, summary in corruption_errors(errors, clean_err, reference).items():
            res_models[k]["corruptions"].update(summary)
            res_models[k]["corruptions"]["clean_accuracy"] = 1 - clean_err[k]
    return {
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "suite": suite,
        "data": data,
        "reference_model": reference,
        "models": res_models,
        "parts_dir": str(out / "parts"),
    }
