"""Conclusions in words, computed from the evaluation results (never written by hand).

Every function takes a list of ``results.json`` dicts: one per seed (or one). Differences are
top-down minus baseline; with several seeds they are reported as mean ± std, and a claim that one model
is better is made only where the sign holds for every seed.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

Results = dict[str, Any]


def model_pair(results: Results) -> tuple[str, str] | None:
    """``(baseline key, top-down key)`` in a results.json, or ``None`` without one of each."""
    models = results.get("models", {})
    base = [k for k, v in models.items() if not v.get("is_topdown")]
    td = [k for k, v in models.items() if v.get("is_topdown")]
    return (base[0], td[0]) if base and td else None


def _diffs(runs: Sequence[Results], get: Callable[[dict[str, Any]], float | None]) -> list[float]:
    out = []
    for r in runs:
        pair = model_pair(r)
        if pair is None:
            continue
        a, b = (get(r["models"][k]) for k in pair)
        if a is not None and b is not None:
            out.append(b - a)
    return out


def _size(values: Sequence[float], scale: float = 100.0) -> str:
    """``12.3 points`` (the mean's magnitude)."""
    return f"{abs(statistics.fmean(values)) * scale:.1f} points"


def _seeds(values: Sequence[float], scale: float = 100.0) -> str:
    """``(1 seed)`` or ``(3 seeds, ±1.1)``."""
    if len(values) == 1:
        return "(1 seed)"
    return f"({len(values)} seeds, ±{statistics.stdev(values) * scale:.1f})"


#: Differences smaller than this (half a point of accuracy, 0.005 of an area under a curve) are ties: on a
#: few hundred test images they are one or two images, and no seed's sign says anything about them.
TIE = 0.005


#: Mean corruption errors within this fraction of the baseline's count as ties.
MCE_TIE = 0.02


def _verdict(values: Sequence[float], more: str, less: str, same: str, tie: float = TIE) -> str:
    """``more`` if top-down is higher by more than ``tie`` on every seed, ``less`` if lower by more than
    ``tie`` on every seed, else ``same``."""
    if values and all(v > tie for v in values):
        return more
    if values and all(v < -tie for v in values):
        return less
    return same


def _get(d: dict[str, Any] | None, *keys: Any) -> Any:
    for k in keys:
        if d is None:
            return None
        try:
            d = d[k]
        except (KeyError, IndexError, TypeError):
            return None
    return d


def clean_accuracy(runs: Sequence[Results]) -> str | None:
    d = _diffs(runs, lambda m: _get(m, "clean", "top1"))
    if not d:
        return None
    v = _verdict(d, "higher", "lower", "not consistently different")
    if v == "not consistently different":
        return f"Clean top-1 accuracy is not consistently different (top-down minus baseline: {_signed(d)})."
    return f"The top-down net's clean top-1 accuracy is {_size(d)} {v} than the baseline's {_seeds(d)}."


def _signed(values: Sequence[float], scale: float = 100.0) -> str:
    mean = statistics.fmean(values) * scale
    if len(values) == 1:
        return f"{mean:+.1f} points"
    return f"{mean:+.1f} ± {statistics.stdev(values) * scale:.1f} points over {len(values)} seeds"


def perturbation_at_level(runs: Sequence[Results], name: str, label: str, unit: str = "") -> str | None:
    """Accuracy kept under one of the paper's perturbations at the middle level of its sweep."""
    levels = _get(runs[0], "suite", "perturbations", "levels", name) if runs else None
    if not levels or len(levels) < 2:
        return None
    k = len(levels) // 2
    d = _diffs(runs, lambda m: _get(m, "perturbations", name, "accuracy_per_level", k))
    if not d:
        return None
    level = f"{unit}={levels[k]:g}"
    # The drop from each model's own clean accuracy separates robustness from clean accuracy.
    drop = _diffs(runs, lambda m: _drop(m, name, k))
    v = _verdict(d, "more", "less", "")
    if not v:
        text = f"Under {label} at {level}, neither model keeps consistently more accuracy ({_signed(d)})"
    else:
        text = f"Top-down keeps {_size(d)} {v} accuracy than the baseline under {label} at {level} {_seeds(d)}"
    if drop:
        w = _verdict(drop, "smaller", "larger", "")
        text += (
            f"; its drop from clean accuracy is {_size(drop)} {w} {_seeds(drop)}"
            if w
            else f"; the drops from clean accuracy are not consistently different ({_signed(drop)})"
        )
    return text + "."


def _drop(m: dict[str, Any], name: str, k: int) -> float | None:
    """Accuracy lost at level ``k`` (negated, so that a smaller loss is a larger number)."""
    acc = _get(m, "perturbations", name, "accuracy_per_level")
    return None if not acc else acc[k] - acc[0]


def perturbation_auc(runs: Sequence[Results]) -> list[str]:
    names = list(_get(runs[0], "suite", "perturbations", "levels") or {}) if runs else []
    better, worse, tied = [], [], []
    for name in names:
        d = _diffs(runs, lambda m, name=name: _get(m, "perturbations", name, "auc"))
        if not d:
            continue
        {"higher": better, "lower": worse, "": tied}[_verdict(d, "higher", "lower", "")].append(name.replace("_", " "))
    n = len(runs)
    seeds = f"on all {n} seeds" if n > 1 else "on 1 seed"
    out = []
    if better:
        out.append(
            f"The area under the accuracy-vs-L2 curve is higher for top-down {seeds} under: {', '.join(better)}."
        )
    if worse:
        out.append(
            f"The area under the accuracy-vs-L2 curve is higher for the baseline {seeds} under: {', '.join(worse)}."
        )
    if tied:
        out.append(f"No consistent winner in area under the accuracy-vs-L2 curve under: {', '.join(tied)}.")
    return out


def worst_case_attack(runs: Sequence[Results], norm: str = "linf") -> str | None:
    eps = _get(runs[0], "models", (model_pair(runs[0]) or ("",))[0], "worst_case", norm, "epsilons") if runs else None
    if not eps or len(eps) < 2:
        return None
    k = 1 if len(eps) < 4 else len(eps) // 2
    d = _diffs(runs, lambda m: _get(m, "worst_case", norm, "accuracy", k))
    if not d:
        return None
    e = eps[k]
    eps_txt = f"{e * 255:g}/255" if norm == "linf" else f"{e:g}"
    name = "L∞" if norm == "linf" else "L2"
    v = _verdict(d, "higher", "lower", "")
    if not v:
        return (
            f"Against the strongest {name} attack at ε = {eps_txt}, neither model is consistently more "
            f"robust ({_signed(d)})."
        )
    return (
        f"Against the strongest {name} attack at ε = {eps_txt}, top-down's robust accuracy is "
        f"{_size(d)} {v} {_seeds(d)}."
    )


def corruption_error(runs: Sequence[Results]) -> str | None:
    vals = []
    for r in runs:
        pair = model_pair(r)
        mce = _get(r, "models", pair[1], "corruptions", "mce") if pair else None
        if mce is not None:
            vals.append(mce)
    if not vals:
        return None
    mean = statistics.fmean(vals) * 100
    spread = "" if len(vals) == 1 else f" ± {statistics.stdev(vals) * 100:.1f} over {len(vals)} seeds"
    # within 2% of the baseline's errors: a tie (0.1 points of mean accuracy on the flowers already moves it 1%)
    if all(v < 1 - MCE_TIE for v in vals):
        word = "fewer errors than"
    elif all(v > 1 + MCE_TIE for v in vals):
        word = "more errors than"
    else:
        word = "about as many errors as"
    return (
        f"Under common corruptions, top-down's mean corruption error is {mean:.1f}%{spread} of the "
        f"baseline's: {word} the baseline."
    )


def scale_name(factor: int) -> str:
    """A pyramid level (or image band) by its downscaling factor: ``full resolution``, ``1/4 resolution``."""
    return "full resolution" if factor == 1 else f"1/{factor} resolution"


def scale_ablation(runs: Sequence[Results]) -> list[str]:
    out = []
    for kind, what in (("noise", "Gaussian noise"), ("pgd", "A PGD attack")):
        hits = []
        for r in runs:
            pair = model_pair(r)
            lvl = _get(r, "models", pair[1], "scales", kind) if pair else None
            if lvl and lvl.get("most_harmful_factor") is not None:
                hits.append(int(lvl["most_harmful_factor"]))
        if not hits:
            continue
        common = max(set(hits), key=hits.count)
        res = scale_name(common)
        agree = "" if len(hits) == 1 else f" ({hits.count(common)} of {len(hits)} seeds)"
        out.append(f"{what} on one pyramid level hurts the top-down net most at the {res} level{agree}.")
    return out


def sanity(runs: Sequence[Results]) -> str:
    flagged = sorted(
        {
            f"{name}: {', '.join(m.get('failed_checks', []))}"
            for r in runs
            for name, m in r.get("models", {}).items()
            if m.get("flagged")
        }
    )
    if flagged:
        return "Sanity checks FAILED (possible gradient masking or a weak attack): " + "; ".join(flagged) + "."
    return "Every robustness sanity check passed for both models."


def conclusions(runs: Sequence[Results]) -> list[str]:
    """All conclusions that the results support, in reading order."""
    if not runs:
        return []
    lines = [
        clean_accuracy(runs),
        perturbation_at_level(runs, "gaussian_noise", "Gaussian noise", "σ"),
        perturbation_at_level(runs, "gaussian_blur", "Gaussian blur", "σ"),
        *perturbation_auc(runs),
        worst_case_attack(runs, "linf"),
        worst_case_attack(runs, "l2"),
        corruption_error(runs),
        *scale_ablation(runs),
        sanity(runs),
    ]
    return [x for x in lines if x]
