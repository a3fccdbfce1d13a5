"""Saving results: one atomic JSON file per (model, part) as soon as it is done, then results.json/.csv.

A part is stored as ``<out>/parts/<model>/<part>.json`` holding ``{"fingerprint", "model", "part", "result"}``.
The fingerprint hashes the schema version, the model's identity (its checkpoint's SHA-256, or a hash of
its weights), the data (test-split indices of the evaluated images) and the part's own settings and seed,
so a resumed run reuses exactly the parts that would be recomputed identically and redoes the rest.
Writes go to a temporary file in the same folder, then ``os.replace``: a killed run leaves either the old
file or the new one, never half of one. See SCHEMA.md for the layout of results.json.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..io import atomic_write_json, atomic_write_text, jsonable
from ..results_view import Results

SCHEMA_VERSION = 1


# -- per-example flags and distances as results.json stores them ------------------------------------------------
def bits(s: str) -> np.ndarray:
    """``"0110"`` -> boolean array (how per-example flags are stored in results.json)."""
    return np.frombuffer(s.encode(), dtype=np.uint8) == ord("1")


def to_bits(a: np.ndarray) -> str:
    return "".join("1" if v else "0" for v in np.asarray(a, dtype=bool))


def distances(values: list[float | None]) -> np.ndarray:
    """Stored distances (``None`` = not broken) -> float array with ``inf``."""
    return np.array([np.inf if v is None else v for v in values], dtype=float)


def robust_matrix(part: dict[str, Any]) -> np.ndarray:
    return np.stack([bits(s) for s in part["robust"]])


# -- the per-image worst case ------------------------------------------------------------------------------------
def broken_by(part: dict[str, Any], n: int, norm: str, eps: float) -> np.ndarray | None:
    """Which of the ``n`` attacked images ``part`` broke at ``(norm, eps)``; ``None`` if it does not speak to it
    (another norm, an eps it did not run, not a white-box attack on every image)."""
    kind = part.get("kind") if isinstance(part, dict) else None
    if kind not in ("fixed", "minimal", "autoattack") or part["norm"] != norm:
        return None
    if kind == "autoattack":
        if part["eps"] != eps:
            return None
        out = np.zeros(n, dtype=bool)
        out[np.asarray(part["attacked"], dtype=int)] = bits(part["broken"])
        return out
    if kind == "minimal":
        return ~(distances(part["distances"]) > eps)
    if eps not in part["epsilons"]:
        return None
    return ~robust_matrix(part)[part["epsilons"].index(eps)]


def robust_before(parts: dict[str, Any], clean: np.ndarray, norm: str, eps: float) -> np.ndarray:
    """Per image: classified correctly and broken by none of ``parts`` at ``(norm, eps)``."""
    robust = np.asarray(clean, dtype=bool).copy()
    for part in parts.values():
        b = broken_by(part, len(robust), norm, eps)
        if b is not None:
            robust &= ~b
    return robust


def worst_case(parts: dict[str, Any], clean: np.ndarray, norm: str, epsilons: list[float]) -> dict[str, Any] | None:
    """Per-example worst case over the white-box attacks of one norm (AutoAttack's included): robust only if no
    attack breaks it; and, per eps, which attack broke each image first in running order."""
    used = [k for k, p in parts.items() if any(broken_by(p, len(clean), norm, e) is not None for e in epsilons)]
    if not used:
        return None
    accuracy, first_counts, first = [], [], []
    for e in epsilons:
        names: list[str | None] = ["clean" if not c else None for c in clean]
        for k in used:
            b = broken_by(parts[k], len(clean), norm, e)
            if b is not None:
                for i in np.flatnonzero(b):
                    names[i] = names[i] or k
        counts: dict[str, int] = {}
        for name in names:
            if name is not None:
                counts[name] = counts.get(name, 0) + 1
        accuracy.append(float(np.mean([v is None for v in names])) if names else 0.0)
        first_counts.append(counts)
        first.append(names)
    return {
        "epsilons": list(epsilons),
        "accuracy": accuracy,
        "attacks": used,
        "first_broken_by": first_counts,
        "first_broken_by_image": first,
    }


def autoattack_summary(parts: dict[str, Any], clean: np.ndarray) -> dict[str, Any]:
    """Per AutoAttack budget: on the images AutoAttack ran on, robust accuracy under every other attack of the
    suite (``accuracy_without``) and with AutoAttack added (``accuracy_with``), and each attack's record."""
    out: dict[str, Any] = {}
    aa = {k: p for k, p in parts.items() if isinstance(p, dict) and p.get("kind") == "autoattack"}
    for p in aa.values():
        key = f"{p['norm']}:{p['eps']:.6g}"
        if key not in out:
            pool = np.asarray(p["pool"], dtype=int)
            others = {j: q for j, q in parts.items() if j not in aa}
            mine = {j: q for j, q in aa.items() if q["norm"] == p["norm"] and q["eps"] == p["eps"]}
            without = robust_before(others, clean, p["norm"], p["eps"])[pool]
            with_aa = robust_before({**others, **mine}, clean, p["norm"], p["eps"])[pool]
            out[key] = {
                "norm": p["norm"],
                "eps": p["eps"],
                "n": len(pool),
                "pool": pool.tolist(),
                "accuracy_without": float(without.mean()) if len(pool) else None,
                "accuracy_with": float(with_aa.mean()) if len(pool) else None,
                "extra_broken": int(without.sum() - with_aa.sum()),
                "version": "standard" if [q["attack"] for q in mine.values()] == list(AA_STANDARD) else "custom",
                "attacks": {},
            }
        out[key]["attacks"][p["attack"]] = p
    return out


AA_STANDARD = ("apgd-ce", "apgd-t", "fab-t", "square")


def fingerprint(*parts: Any) -> str:
    """SHA-256 of a JSON rendering of ``parts`` (sorted keys)."""
    return hashlib.sha256(json.dumps(jsonable(list(parts)), sort_keys=True).encode()).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_sha256(net: nn.Module) -> str:
    """A hash of a network's class, config and every parameter and buffer (for nets without a file)."""
    h = hashlib.sha256(type(net).__name__.encode())
    h.update(json.dumps(jsonable(getattr(net, "_init_args", {})), sort_keys=True).encode())
    for k, v in net.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class PartStore:
    """Per-(model, part) results under ``<out>/parts``, written atomically, reused when fingerprints match."""

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.root = Path(out) / "parts"

    def path(self, model: str, part: str) -> Path:
        return self.root / _safe(model) / f"{_safe(part)}.json"

    def load(self, model: str, part: str, fp: str) -> dict[str, Any] | None:
        """The stored result if it exists, is readable and has fingerprint ``fp``; else ``None``."""
        p = self.path(model, part)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("fingerprint") != fp or doc.get("schema_version") != SCHEMA_VERSION:
            return None
        return doc.get("result")

    def save(self, model: str, part: str, fp: str, result: dict[str, Any]) -> Path:
        p = self.path(model, part)
        atomic_write_json(
            p, {"schema_version": SCHEMA_VERSION, "fingerprint": fp, "model": model, "part": part, "result": result}
        )
        return p


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
    import platform
    from importlib import metadata

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        **{
            pkg: version(pkg)
            for pkg in ("topdown", "torch", "foolbox", "eagerpy", "pyautoattack", "albumentations", "numpy")
        },
    }


# -- results.json --------------------------------------------------------------------------------------------------
def assemble(
    models: list[dict[str, Any]],
    model_parts: dict[str, dict[str, Any]],
    suite: dict[str, Any],
    data: dict[str, Any],
    sanity: Any,
    out: Path,
) -> dict[str, Any]:
    """results.json's content (see SCHEMA.md) from every model's parts.

    Args:
        models: per model, in order: ``{"name", "architecture", "is_topdown", "checkpoint"}``.
        model_parts: per model, its parts by name, in running order.
        suite: the suite's settings (``SuiteConfig.to_dict()``).
        data: ``{description, split, n_test, subset_size, subset_indices, subset_seed}``.
        sanity: the suite's ``SanityConfig`` (thresholds of the checks).
        out: the output folder.
    """
    import datetime as _dt

    from .corruptions import corruption_errors
    from .sanity import run_checks

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
            "perturbations": {k.split(":", 1)[1]: v for k, v in parts.items() if k.startswith("perturbation:")},
            "scales": {k.split("_", 1)[1]: v for k, v in parts.items() if k in ("scale_noise", "scale_pgd")},
            "corruptions": {
                "per_corruption": {k.split(":", 1)[1]: v for k, v in parts.items() if k.startswith("corruption:")}
            },
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
