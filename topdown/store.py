"""The one store of resumable results: the robustness suite's parts, the visualizer's methods and the findings
are each kept as one atomic JSON file per (model, part), reused when their fingerprint matches.

A part is stored as ``<out>/parts/<model>/<part>.json`` holding ``{"schema_version", "fingerprint", "model",
"part", "result"}``. Writes go to a temporary file in the same folder, then ``os.replace``: a killed run leaves
either the old file or the new one, never half of one.

**One invalidation policy.** A fingerprint hashes what the result is a function of: the code that computes it
(:func:`source_fingerprint` of the producer's source files: a result computed by other code is never reused), the
model (its checkpoint's or its weights' SHA-256), the data (which images) and the part's own settings and seed.
So a resumed run reuses exactly the parts that would be recomputed identically, and redoes the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from .io import atomic_write_json, jsonable

#: The layout version of a stored part.
SCHEMA_VERSION = 1

_PACKAGE = Path(__file__).resolve().parent


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


def source_fingerprint(*patterns: str) -> str:
    """A hash of the package's source files that ``patterns`` (globs under ``topdown/``) name, in sorted order."""
    h = hashlib.sha256()
    for pattern in patterns:
        paths = sorted(_PACKAGE.glob(pattern))
        if not paths:
            raise ValueError(f"source_fingerprint: no source matches {pattern!r}")
        for path in paths:
            h.update(path.relative_to(_PACKAGE).as_posix().encode())
            h.update(path.read_bytes())
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
        try:
            doc = json.loads(self.path(model, part).read_text(encoding="utf-8"))
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

    def cached(
        self,
        model: str,
        part: str,
        fp: str,
        compute: Callable[[], dict[str, Any] | None],
        fresh: bool = False,
        usable: Callable[[dict[str, Any]], bool] | None = None,
    ) -> tuple[dict[str, Any] | None, bool]:
        """``(result, reused)``: the stored result where its fingerprint is ``fp`` (and ``usable`` accepts it),
        else ``compute()``, saved as plain JSON before it is returned. A ``None`` from ``compute`` (nothing to
        compute) is returned and not saved. ``fresh`` always computes."""
        hit = None if fresh else self.load(model, part, fp)
        if hit is not None and (usable is None or usable(hit)):
            return hit, True
        result = compute()
        if result is None:
            return None, False
        result = jsonable(result)
        self.save(model, part, fp, result)
        return result, False
