"""Reading stored suite results back: one model's finished parts filed by section, per-example flags and
distances as results.json stores them, and the per-image worst case over attacks that sanity checks and
results.json both rest on."""

from __future__ import annotations

from typing import Any

import numpy as np

#: AutoAttack's standard version: its four attacks, in running order.
AA_STANDARD = ("apgd-ce", "apgd-t", "fab-t", "square")


# -- parts by section --------------------------------------------------------------------------------------------
#: The suite's sections, each with how its parts' keys join the section to the name (``None``: the key is the
#: name alone, as for ``clean`` or the attack ``fgsm``).
SECTIONS: dict[str, str | None] = {
    "clean": None,
    "subset": None,
    "attack": None,
    "autoattack": ":",
    "decision": None,
    "perturbation": ":",
    "scale": "_",
    "corruption": ":",
}


def part_key(section: str, name: str) -> str:
    """A part's key: its file name in ``parts/<model>/`` and its name in results.json (``perturbation:contrast``,
    ``scale_noise``, ``fgsm``). The one place a key is made of a section and a name."""
    joiner = SECTIONS[section]
    return name if joiner is None else f"{section}{joiner}{name}"


class PartResults(dict[str, Any]):
    """One model's finished parts: each result under its key, in running order, and filed under its section,
    so a reader asks for a section rather than parsing keys."""

    def __init__(self) -> None:
        super().__init__()
        self._ids: dict[str, tuple[str, str]] = {}  # key -> (section, name)

    def add(self, section: str, name: str, result: Any) -> None:
        key = part_key(section, name)
        self[key] = result
        self._ids[key] = (section, name)

    def section(self, section: str) -> dict[str, Any]:
        """``{name: result}`` of one section, in running order (``scale``: ``{"noise": ..., "pgd": ...}``)."""
        return {name: self[k] for k, (s, name) in self._ids.items() if s == section}

    def keyed(self, section: str) -> dict[str, Any]:
        """``{key: result}`` of one section, in running order (``autoattack``: ``{"autoattack:linf:...": ...}``)."""
        return {k: self[k] for k, (s, _) in self._ids.items() if s == section}


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
