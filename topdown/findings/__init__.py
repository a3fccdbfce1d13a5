"""What each net learned, compared: cue reliance, localization against part masks, the frequencies a decision
uses and representation similarity, computed per image on the same images for every model, and each figure of
the top-down net tested against every other model with a paired test (McNemar for per-image outcomes, Wilcoxon
signed-rank for per-image shares).

    python -m topdown.findings --ckpt+ <baseline.ckpt> --ckpt+ <topdown.ckpt> [--ckpt+ <control.ckpt> ...] \\
        --out outputs/findings [--images 256]

writes ``<out>/findings.json`` (written atomically) and prints the comparisons. Cue reliance and localization need
the procedural flowers (their classes cross a form with a pattern, and their part masks are exact); the gradient
spectra and CKA run on any data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..results_view import dig
from ..stats import paired_p_value, paired_rank_p_value
from ..store import PartStore, fingerprint, source_fingerprint, weights_sha256
from .bands import DEFAULT_LEVELS, band_reliance
from .cues import cue_reliance, pyramid_swaps
from .detectors import stage_detectors
from .localization import attributions, localization
from .similarity import cka_matrix
from .spectra import gradient_spectrum

__all__ = ["FINDINGS", "FINDINGS_SCHEMA", "Figure", "compare", "compute_findings", "figures"]

FINDINGS_SCHEMA = 2
#: Low-pass cut-offs (Gaussian sigma, px at 64 px) of the hybrids and band tests: sigma 1 px removes the fine
#: patterns (periods of about 3 px) and keeps the form; 2 px removes more.
SIGMAS = (1.0, 2.0)


@dataclass(frozen=True)
class Figure:
    """One per-image figure of a model: where it sits in findings.json, and whether it is an outcome (bools,
    McNemar) or a share (floats, Wilcoxon)."""

    key: str
    label: str
    path: tuple[str, ...]
    kind: str  # "outcome" or "share"


def figures(models: Mapping[str, Mapping[str, Any]]) -> list[Figure]:
    """Every per-image figure that every model in ``models`` has (pyramid swaps only for top-down nets)."""
    out: list[Figure] = []
    first = next(iter(models.values()))
    for cut, rec in first.get("cues", {}).items():
        for key in rec:
            out.append(Figure(f"cues.{cut}.{key}", f"{key.replace('_', ' ')} ({cut})", ("cues", cut, key), "outcome"))
    for method in first.get("localization", {}):
        out.append(
            Figure(
                f"loc.{method}.inside", f"{method}: energy on the flower", ("localization", method, "inside"), "share"
            )
        )
        out.append(Figure(f"loc.{method}.hit", f"{method}: pointing game", ("localization", method, "hit"), "outcome"))
    for level in first.get("bands", {}):
        out.append(
            Figure(
                f"bands.{level}.removed",
                f"correct without band {level}",
                ("bands", level, "removed_correct"),
                "outcome",
            )
        )
        out.append(
            Figure(
                f"bands.{level}.ig", f"IG energy per pixel in band {level}", ("bands", level, "ig_per_pixel"), "share"
            )
        )
    if "spectrum" in first:
        out.append(
            Figure(
                "spectrum.gradient_high", "gradient power above half Nyquist", ("spectrum", "gradient_high"), "share"
            )
        )
    for kind in ("class", "naive"):
        if f"{kind}_high_ratio" in first.get("renders", {}):
            out.append(
                Figure(
                    f"renders.{kind}_high",
                    f"{kind} renders' power above half Nyquist, over the photos'",
                    ("renders", f"{kind}_high_ratio"),
                    "share",
                )
            )
    return [f for f in out if all(dig(m, *f.path) is not None for m in models.values())]


def compare(models: Mapping[str, Mapping[str, Any]], subject: str = "topdown") -> dict[str, dict[str, Any]]:
    """``{other model: {figure key: {subject, other, difference, p}}}``: the subject's mean of each per-image
    figure against every other model's on the same images, with the paired test's two-sided p-value."""
    if subject not in models:
        raise ConfigError(f"findings: no model named {subject!r} to compare (models: {list(models)})")
    out: dict[str, dict[str, Any]] = {}
    shared = figures(models)
    for other in models:
        if other == subject:
            continue
        rows = {}
        for f in shared:
            a = np.asarray(dig(models[subject], *f.path), dtype=float)
            b = np.asarray(dig(models[other], *f.path), dtype=float)
            test = paired_p_value if f.kind == "outcome" else paired_rank_p_value
            rows[f.key] = {
                "label": f.label,
                "kind": f.kind,
                subject: float(np.nanmean(a)),
                other: float(np.nanmean(b)),
                "difference": float(np.nanmean(a) - np.nanmean(b)),
                "p": test(b.tolist(), a.tolist()),
            }
        out[other] = rows
    return out


#: Every finding, and what it needs beyond the nets and the images (``None``: nothing).
FINDINGS = {
    "spectrum": None,
    "bands": None,
    "cka": None,
    "cues": "the class table of the procedural flowers",
    "localization": "part masks (only the procedural flowers have them)",
    "detectors": "part masks (only the procedural flowers have them)",
    "renders": "the spectra renders of a vis.json (--vis)",
}


def check_findings(which: Sequence[str] | None, available: Mapping[str, bool]) -> list[str]:
    """The findings to compute: ``which`` (``None``: every one whose inputs are there), each known and each with
    its inputs, else a ``ValueError`` naming it."""
    if which is None:
        return [f for f, needs in FINDINGS.items() if needs is None or available.get(f, False)]
    for f in which:
        if f not in FINDINGS:
            raise ConfigError(f"findings: unknown finding {f!r}; choose from {', '.join(FINDINGS)}")
        if FINDINGS[f] is not None and not available.get(f, False):
            raise ConfigError(f"findings: {f} needs {FINDINGS[f]}, which this data does not have")
    return list(which)


def check_layers(nets: Mapping[str, nn.Module], layers: Sequence[str]) -> None:
    """Every one of ``layers`` is a module of every net, else a ``ValueError`` naming the layer and the net."""
    for name, net in nets.items():
        modules = {n for n, _ in net.named_modules() if n}
        for layer in layers:
            if layer not in modules:
                raise ConfigError(
                    f"layers: {name} has no layer {layer!r}; its stages are {', '.join(net.stage_names())}"
                )


#: The code a stored finding is a function of beyond its inputs (its fingerprint hashes these files).
SOURCES = (
    "findings/*.py",
    "vis/attribution.py",
    "vis/dissection.py",
    "robustness/scales.py",
    "models/*.py",
    "data/*.py",
)


class _Parts:
    """Each (model, finding) computed once and kept in a :class:`PartStore` (``<out>/parts``), atomically, under a
    fingerprint of the net's weights, the images, the settings and the code; a killed run resumes with the parts
    it finished. Without a store every part is computed."""

    def __init__(self, store: PartStore | None, *inputs: Any) -> None:
        self.store = store
        if store is not None:
            h = hashlib.sha256()
            for t in inputs:
                h.update(
                    t.detach().cpu().contiguous().numpy().tobytes() if isinstance(t, torch.Tensor) else repr(t).encode()
                )
            self.base = fingerprint(FINDINGS_SCHEMA, source_fingerprint(*SOURCES), h.hexdigest())

    def get(self, model: str, part: str, nets: Sequence[nn.Module], compute: Any) -> Any:
        if self.store is None:
            return compute()
        fp = fingerprint(self.base, part, [weights_sha256(n) for n in nets])
        return self.store.cached(model, part, fp, lambda: {"value": compute()})[0]["value"]


def compute_findings(
    nets: Mapping[str, nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    class_table: Sequence[tuple[int, int]] | None = None,
    masks: torch.Tensor | None = None,
    renders: Mapping[str, Mapping[str, Any]] | None = None,
    which: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    subject: str = "topdown",
    seed: int = 0,
    ig_steps: int = 32,
    store: PartStore | None = None,
) -> dict[str, Any]:
    """Every finding of every net on the same ``images`` (``labels`` their classes), then the comparisons.

    Args:
        class_table: ``(form, pattern)`` of every class (procedural flowers): adds cue reliance (and pyramid swaps
            for nets with a ``pyramid``).
        masks: ``(N, H, W)`` part masks (0 background, 1 petals, 2 centre; procedural flowers): adds localization
            (flower = petals and centre) and every stage's dissection.
        renders: per model, the ``spectra`` visualization's details from vis.json (its renders' high-frequency
            shares, one per class and render seed): adds them, so they are compared render by render.
        which: the findings to compute (:data:`FINDINGS`; ``None``: every one whose inputs are given).
        layers: the modules CKA and dissection read (``None``: each net's stages).
        subject: the model compared with every other one.
        store: where each (model, finding) is kept as it finishes, and reused from (``None``: nowhere).
    """
    available = {
        "cues": class_table is not None,
        "localization": masks is not None,
        "detectors": masks is not None,
        "renders": renders is not None and all(n in renders for n in nets),
    }
    todo = check_findings(which, available)
    if layers is not None:
        check_layers(nets, layers)
    levels = next((n.pyramid.num_levels for n in nets.values() if getattr(n, "pyramid", None) is not None), None)
    levels = levels or DEFAULT_LEVELS
    parts = _Parts(store, images, labels, class_table, masks, seed, ig_steps, levels, layers, SIGMAS)

    def of_model(name: str, net: nn.Module) -> dict[str, Any]:
        """Every finding of one net, each part from the store where it is there."""
        net.eval()
        rec: dict[str, Any] = {}
        memo: dict[str, torch.Tensor] = {}

        def part(key: str, compute: Any) -> None:
            rec[key] = parts.get(name, key, [net], compute)

        def ig() -> torch.Tensor:
            """The integrated gradients band reliance and localization share, computed once per net."""
            if "ig" not in memo:
                memo["ig"] = attributions(net, images, labels, "integrated_gradients", n_steps=ig_steps)
            return memo["ig"]

        if "spectrum" in todo:
            part("spectrum", lambda: gradient_spectrum(net, images, labels))
        if "bands" in todo:
            part("bands", lambda: band_reliance(net, images, labels, levels, ig=ig()))
        if "cues" in todo:
            part("cues", lambda: cue_reliance(net, images, labels, class_table, SIGMAS, seed))
            if getattr(net, "pyramid", None) is not None:
                part("pyramid_swaps", lambda: pyramid_swaps(net, images, labels, class_table, seed))
        if "localization" in todo:
            part("localization", lambda: localization(net, images, labels, masks > 0, n_steps=ig_steps, ig=ig()))
        if "detectors" in todo:
            part("detectors", lambda: stage_detectors(net, images, labels, masks, layers=layers))
        if "renders" in todo:
            keep = ("_high_ratio", "_relative_spectrum")
            rec["renders"] = {k: v for k, v in renders[name].items() if k.endswith(keep)}
        return rec

    per_model = {name: of_model(name, net) for name, net in nets.items()}
    names = list(nets)
    cka = {}
    if "cka" in todo:
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                compute = lambda a=a, b=b: cka_matrix(nets[a], nets[b], images, layers)  # noqa: E731
                cka[f"{a}|{b}"] = parts.get(f"{a}|{b}", "cka", [nets[a], nets[b]], compute)
    return {
        "schema": FINDINGS_SCHEMA,
        "images": len(images),
        "seed": seed,
        "subject": subject,
        "findings": todo,
        "models": per_model,
        "comparisons": compare(per_model, subject) if subject in per_model and len(names) > 1 else {},
        "cka": cka,
    }
