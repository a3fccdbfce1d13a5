"""Sanity checks that catch gradient masking and broken evaluations (Carlini et al. 2019, "On Evaluating
Adversarial Robustness"), computed from the stored per-example results of every run.

Each check gives ``{"passed": True | False | None, "value", "threshold", "direction", "detail"}``; ``None``
means it could not run (an attack it needs was switched off). A model failing any check is flagged in
results.json and in the printed table, never hidden.

Accuracy comparisons allow a slack of ``tol(n) = max(tolerance, 1 / n)``: one point (``tolerance = 0.01``),
but never less than one image of the ``n`` compared, since one image is the resolution of the measurement.

=================================== ====================================================================
check                               passes when
=================================== ====================================================================
``eps0_equals_clean``               every attack's and every perturbation's eps = 0 / level 0 result equals
                                    the clean result, image by image (value: mismatching images, must be 0)
``iterative_beats_single_step``     the share of images that FGSM breaks but Linf PGD does not, at some
                                    common eps, is <= tol(n)
``accuracy_monotone_in_eps``        no attack's accuracy rises by more than tol(n) from one eps to the next
``unbounded_attack_reaches_zero``   the minimum-norm white-box attacks (unbounded) leave <= tol(n) of the
                                    images unbroken
``more_steps_do_not_help``          Linf PGD with twice the steps moves robust accuracy by <= tol(n) (at the
                                    eps where it is nearest half the clean accuracy). A drop means the
                                    reported PGD had not converged; a rise, that optimising harder helps
                                    the model: both are red flags
``decision_not_better``             the decision-based attack's accuracy curve never lies more than tol(n)
                                    below the white-box worst case on the same images, the decision-based
                                    distances being first enlarged by ``decision_margin`` (10 %) since
                                    DeepFool and PGD are not exactly minimal either
``input_gradients_nonzero``         >= 99 % of the images have a non-zero input gradient of the loss
``adversarials_verified``           at most tol(n) of any attack's claimed adversarials fail an independent
                                    check (own forward pass, inside [0, 1], within eps)
``autoattack_adds_little``          at every AutoAttack budget, AutoAttack breaks at most tol(n) of its images
                                    that every other attack of the suite left robust. More means the rest of
                                    the suite overstated robustness: trust the worst case with AutoAttack
=================================== ====================================================================
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .attacks import FIXED, MINIMAL
from .decode import PartResults, autoattack_summary, bits, distances, part_key, robust_matrix

DECISION_MARGIN = 0.1


def tol(n: int, tolerance: float) -> float:
    return max(tolerance, 1.0 / max(n, 1))


# Values are shares of images, so a difference of exactly tol(n) arrives as 42/300 - 39/300 = 0.010000000000000009
# or 45/300 - 42/300 = 0.009999999999999981 depending on the counts; compare with a slack far below one image.
_SLACK = 1e-9


def _within(value: float, limit: float) -> bool:
    return value <= limit + _SLACK


def _check(passed: bool | None, value: float | None, threshold: float, direction: str, detail: str) -> dict[str, Any]:
    if value is not None and isinstance(value, float) and not math.isfinite(value):
        value = None if math.isnan(value) else value
    return {"passed": passed, "value": value, "threshold": threshold, "direction": direction, "detail": detail}


def _skipped(threshold: float, direction: str, why: str) -> dict[str, Any]:
    return _check(None, None, threshold, direction, "not run: " + why)


def _attacks(parts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in parts.items() if isinstance(v, dict) and v.get("kind") in ("fixed", "minimal", "decision")}


def run_checks(
    parts: PartResults,
    tolerance: float = 0.01,
    min_nonzero_gradients: float = 0.99,
    decision_margin: float = DECISION_MARGIN,
) -> dict[str, dict[str, Any]]:
    """All sanity checks for one model from its stored parts (``subset``, attacks, perturbations ...)."""
    subset = parts.get("subset")
    clean = bits(subset["clean_correct"]) if subset else None
    n = len(clean) if clean is not None else 0
    t = tol(n, tolerance)
    attacks = _attacks(parts)
    checks: dict[str, dict[str, Any]] = {}
    checks["eps0_equals_clean"] = _eps0_check(parts, attacks, clean, n)
    checks["iterative_beats_single_step"] = _iterative_check(attacks, n, t)
    checks["accuracy_monotone_in_eps"] = _monotone_check(parts, attacks, t)
    checks["unbounded_attack_reaches_zero"] = _unbounded_check(attacks, t)
    checks["more_steps_do_not_help"] = _more_steps_check(attacks, t)
    checks["decision_not_better"] = _decision_check(parts, attacks, tolerance, decision_margin)
    checks["input_gradients_nonzero"] = _gradients_check(subset, min_nonzero_gradients)
    checks["adversarials_verified"] = _verified_check(parts, attacks, t)
    checks["autoattack_adds_little"] = _autoattack_check(parts, clean, tolerance)
    return checks


def _eps0_check(parts: PartResults, attacks: dict[str, Any], clean: np.ndarray | None, n: int) -> dict[str, Any]:
    """Eps = 0 equals clean, image by image."""
    if clean is None:
        return _skipped(0, "<=", "no clean subset")
    else:
        bad: dict[str, int] = {}
        for name, a in attacks.items():
            pos = np.asarray(a.get("positions", range(n)))
            if a["epsilons"] and a["epsilons"][0] == 0:
                bad[name] = int((robust_matrix(a)[0] != clean[pos]).sum())
        for name, p in parts.keyed("perturbation").items():
            bad[name] = int(round(abs(p["accuracy_per_level"][0] - clean.mean()) * n))
        total = sum(bad.values())
        worst = {k: v for k, v in bad.items() if v}
        return _check(
            total == 0, float(total), 0.0, "<=", f"mismatches {worst}" if worst else f"{len(bad)} sweeps checked"
        )


def _iterative_check(attacks: dict[str, Any], n: int, t: float) -> dict[str, Any]:
    """Iterative (PGD) beats single step (FGSM), image by image."""
    if "fgsm" in attacks and "linf_pgd" in attacks:
        f, p = attacks["fgsm"], attacks["linf_pgd"]
        common = [e for e in f["epsilons"] if e in p["epsilons"]]
        fr, pr = robust_matrix(f), robust_matrix(p)
        viol = np.zeros(n, dtype=bool)
        per_eps = {}
        for e in common:
            v = ~fr[f["epsilons"].index(e)] & pr[p["epsilons"].index(e)]
            per_eps[f"{e:.5g}"] = int(v.sum())
            viol |= v
        value = float(viol.mean()) if n else 0.0
        return _check(_within(value, t), value, t, "<=", f"images FGSM breaks and PGD does not, per eps: {per_eps}")
    else:
        return _skipped(t, "<=", "needs fgsm and linf_pgd")


def _monotone_check(parts: PartResults, attacks: dict[str, Any], t: float) -> dict[str, Any]:
    """Accuracy falls monotonically with eps."""
    rises = {}
    for name, a in attacks.items():
        acc = a["accuracy"]
        rises[name] = max([b - c for c, b in zip(acc, acc[1:])] + [0.0])
    if (scale_pgd := part_key("scale", "pgd")) in parts:
        for lvl, acc in enumerate(parts[scale_pgd]["accuracy"]):
            rises[f"{scale_pgd}[level {lvl}]"] = max([b - c for c, b in zip(acc, acc[1:])] + [0.0])
    if rises:
        worst = max(rises, key=rises.get)
        return _check(_within(rises[worst], t), rises[worst], t, "<=", f"largest rise: {worst}")
    else:
        return _skipped(t, "<=", "no attacks")


def _unbounded_check(attacks: dict[str, Any], t: float) -> dict[str, Any]:
    """Unbounded attacks reach ~0."""
    minimal = {k: a for k, a in attacks.items() if a["method"] in MINIMAL}
    if minimal:
        left = {k: float(np.isinf(distances(a["distances"])).mean()) for k, a in minimal.items()}
        worst = max(left, key=left.get)
        return _check(_within(left[worst], t), left[worst], t, "<=", f"accuracy at eps = inf: {left}")
    else:
        return _skipped(t, "<=", "no minimum-norm attack")


def _more_steps_check(attacks: dict[str, Any], t: float) -> dict[str, Any]:
    """More steps do not change the result."""
    if "linf_pgd_2x" in attacks and "linf_pgd" in attacks:
        a2, a1 = attacks["linf_pgd_2x"], attacks["linf_pgd"]
        diffs = {
            f"{e:.5g}": a2["accuracy"][k] - a1["accuracy"][a1["epsilons"].index(e)]
            for k, e in enumerate(a2["epsilons"])
            if e in a1["epsilons"]
        }
        value = max((abs(v) for v in diffs.values()), default=0.0)
        return _check(
            _within(value, t),
            value,
            t,
            "<=",
            f"accuracy({a2['settings']['steps']} steps) - accuracy({a1['settings']['steps']} steps): {diffs}",
        )
    else:
        return _skipped(t, "<=", "needs linf_pgd and its 2x-steps rerun")


def _gradients_check(subset: dict[str, Any] | None, g: float) -> dict[str, Any]:
    """Non-zero input gradients."""
    if subset and "gradient_l1" in subset:
        grads = np.asarray(subset["gradient_l1"], dtype=float)
        value = float((grads > 0).mean()) if len(grads) else 0.0
        return _check(
            value >= g - _SLACK,
            value,
            g,
            ">=",
            f"{int((grads > 0).sum())}/{len(grads)} images; median |grad|_1 "
            f"{float(np.median(grads)) if len(grads) else 0:.3g}",
        )
    else:
        return _skipped(g, ">=", "no gradients computed")


def _verified_check(parts: PartResults, attacks: dict[str, Any], t: float) -> dict[str, Any]:
    """Independent verification of adversarials."""
    claims = {k: (a["unverified"], len(a["robust"][0])) for k, a in attacks.items()}
    claims.update({k: (p["unverified"], len(p["attacked"])) for k, p in parts.keyed("autoattack").items()})
    if claims:
        shares = {k: bad / max(1, size) for k, (bad, size) in claims.items()}
        worst = max(shares, key=shares.get)
        return _check(
            _within(shares[worst], t),
            shares[worst],
            t,
            "<=",
            f"claimed but not verified: {worst} ({claims[worst][0]} images)",
        )
    else:
        return _skipped(t, "<=", "no attacks")


def _autoattack_check(parts: PartResults, clean: np.ndarray | None, tolerance: float) -> dict[str, Any]:
    summary = autoattack_summary(parts, clean) if clean is not None else {}
    if not summary:
        return _skipped(tolerance, "<=", "no AutoAttack")
    drops = {k: (s["accuracy_without"] or 0.0) - (s["accuracy_with"] or 0.0) for k, s in summary.items()}
    limits = {k: tol(s["n"], tolerance) for k, s in summary.items()}
    worst = max(drops, key=lambda k: drops[k] - limits[k])
    s = summary[worst]
    unverified = sum(a["unverified"] for sm in summary.values() for a in sm["attacks"].values())
    return _check(
        all(_within(drops[k], limits[k]) for k in drops),
        drops[worst],
        limits[worst],
        "<=",
        f"AutoAttack broke {s['extra_broken']} of {s['n']} images at {worst} that the rest of the suite left "
        f"robust ({s['accuracy_without']:.1%} -> {s['accuracy_with']:.1%}); drops per budget "
        f"{ {k: round(v, 4) for k, v in drops.items()} }; {unverified} unverified claims",
    )


def white_box_l2_distances(attacks: dict[str, dict[str, Any]], positions: np.ndarray) -> np.ndarray | None:
    """Per-image smallest L2 perturbation found by any white-box attack (L2 PGD gives the smallest eps of
    its sweep at which it succeeded: an upper bound)."""
    best = np.full(len(positions), np.inf)
    used = False
    for a in attacks.values():
        if a["kind"] == "minimal" and a["norm"] == "l2":
            best = np.minimum(best, distances(a["distances"])[positions])
            used = True
        elif a["method"] in FIXED and a["norm"] == "l2":
            r = robust_matrix(a)[:, positions]
            eps = np.asarray(a["epsilons"], dtype=float)
            broken_at = np.where(~r, eps[:, None], np.inf).min(axis=0)
            best = np.minimum(best, broken_at)
            used = True
    return best if used else None


def _decision_check(
    parts: PartResults, attacks: dict[str, dict[str, Any]], tolerance: float, margin: float
) -> dict[str, Any]:
    dec = next((a for a in attacks.values() if a["kind"] == "decision"), None)
    if dec is None:
        return _skipped(tolerance, "<=", "no decision-based attack")
    pos = np.asarray(dec["positions"])
    t = tol(len(pos), tolerance)
    wb = white_box_l2_distances({k: a for k, a in attacks.items() if a["kind"] != "decision"}, pos)
    if wb is None:
        return _skipped(t, "<=", "no white-box L2 attack to compare with")
    dd = distances(dec["distances"]) * (1 + margin)
    grid = np.unique(np.concatenate([[0.0], wb[np.isfinite(wb)], dd[np.isfinite(dd)]]))
    gaps = [float((wb > g).mean() - (dd > g).mean()) for g in grid]
    k = int(np.argmax(gaps))
    value = max(gaps[k], 0.0)
    med = lambda d: float(np.median(d)) if len(d) else math.nan  # noqa: E731
    return _check(
        _within(value, t),
        value,
        t,
        "<=",
        f"{len(pos)} images; largest gap at L2 = {grid[k]:.4g}; median distance white-box "
        f"{med(wb):.4g}, {dec['method']} {med(distances(dec['distances'])):.4g} (margin {margin:.0%})",
    )
