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

from torch import nn

from ..io import atomic_write_json, atomic_write_text, jsonable

SCHEMA_VERSION = 1


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
    for model, m in results["models"].items():
        c = m.get("clean", {})
        for metric in ("top1", "top5", "macro_acc", "ece", "nll"):
            if c.get(metric) is not None:
                yield model, "clean", "test", "", "", metric, c[metric]
        for cls, acc in (c.get("per_class_acc") or {}).items():
            yield model, "clean", "per_class", "class", cls, "accuracy", acc
        for name, a in m.get("attacks", {}).items():
            for e, acc in zip(a["epsilons"], a["accuracy"]):
                yield model, "attack", name, f"eps_{a['norm']}", e, "accuracy", acc
            if a.get("median_distance", "absent") != "absent":
                yield model, "attack", name, "", "", f"median_{a['norm']}_distance", a["median_distance"]
        for norm, w in m.get("worst_case", {}).items():
            for e, acc in zip(w["epsilons"], w["accuracy"]):
                yield model, "worst_case", norm, f"eps_{norm}", e, "accuracy", acc
        for name, p in m.get("perturbations", {}).items():
            for lv, acc, l2 in zip(p["levels"], p["accuracy_per_level"], p["mean_l2_per_level"]):
                yield model, "perturbation", name, "level", lv, "accuracy", acc
                yield model, "perturbation", name, "level", lv, "mean_l2", l2
            yield model, "perturbation", name, "", "", "auc", p["auc"]
            yield model, "perturbation", name, "", "", "median_min_l2", p["median_min_l2"]
        for kind, s in m.get("scales", {}).items():
            strengths = s[s["strength"] + "s"]
            for lvl, accs in zip(s["levels"], s["accuracy"]):
                for st, acc in zip(strengths, accs):
                    yield model, f"scale_{kind}", f"level_{lvl}", s["strength"], st, "accuracy", acc
        corr = m.get("corruptions", {})
        for name, cr in corr.get("per_corruption", {}).items():
            for sev, acc in zip(cr["severities"], cr["accuracy"]):
                yield model, "corruption", name, "severity", sev, "accuracy", acc
        for metric in ("mce", "relative_mce", "mean_accuracy"):
            if corr.get(metric) is not None:
                yield model, "corruption", "all", "", "", metric, corr[metric]
        for name, chk in m.get("sanity", {}).items():
            passed = chk["passed"]
            yield model, "sanity", name, "", "", "passed", "" if passed is None else int(passed)
            yield model, "sanity", name, "", "", "value", chk["value"]


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
        **{pkg: version(pkg) for pkg in ("topdown", "torch", "foolbox", "eagerpy", "albumentations", "numpy")},
    }
