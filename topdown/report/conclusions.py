"""Conclusions in words, computed from the evaluation results (never written by hand).

Every function takes a list of ``results.json`` documents, as dicts or as ``Results`` views: one per seed (or
one), read through ``topdown.results_view``. A comparison takes its pair of
models explicitly, ``(reference, top-down)``: the baseline, or one of the controls (``CONTROLS``). Differences
are top-down minus the reference; with several seeds they are reported as mean ± std, and a claim that one
model is better is made only where the sign holds for every seed that has both models.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..results_view import CONTROLS, AutoAttack, ModelResults, Results, WorstCase, as_results, dig
from ..stats import mean_std, paired_p_value

#: One results.json per seed: dicts as read from disk, or views of them.
Runs = Sequence[Results | Mapping[str, Any]]

#: ``(reference key, top-down key)``: the two models a comparison is between.
Pair = tuple[str, str]

#: What each control is, in words.
CONTROL_DESCRIPTIONS = {
    "blur_control": "a baseline whose input first passes a fixed Gaussian low-pass (the top-down net's own pyramid "
    "level, upsampled back), to test whether blurring alone explains the top-down net's robustness",
    "accuracy_control": "the baseline's checkpoint from the epoch whose validation accuracy (test accuracy where the "
    "nets were trained on the validation images) is nearest the top-down net's final one, to test whether the "
    "top-down net is more robust only because it is less accurate",
}


def model_pair(results: Results | Mapping[str, Any]) -> Pair | None:
    """``(baseline key, top-down key)`` in a results.json, or ``None`` without one of each (controls are not
    the baseline)."""
    return as_results(results).pair()


def _views(runs: Runs) -> list[Results]:
    return [as_results(r) for r in runs]


def _base_pair(runs: Runs) -> Pair | None:
    return next((p for r in _views(runs) if (p := r.pair()) is not None), None)


def control_pairs(runs: Runs) -> list[Pair]:
    """``(control, top-down key)`` for every control any of the runs holds."""
    pair = _base_pair(runs)
    if pair is None:
        return []
    present = {c for r in _views(runs) for c in r.controls()}
    return [(c, pair[1]) for c in CONTROLS if c in present]


def short_name(key: str) -> str:
    """A reference model in words, without an article: ``baseline``, ``blur control``."""
    return CONTROLS.get(key, "baseline")


def _the(key: str) -> str:
    return "the " + short_name(key)


def _both(runs: Runs, pair: Pair) -> list[Results]:
    """The runs holding both models of ``pair``."""
    return [r for r in _views(runs) if r.has(*pair)]


def _diffs(runs: Runs, get: Callable[[ModelResults], float | None], pair: Pair) -> list[float]:
    """Per run holding both models: ``get(top-down) - get(reference)`` (where both are recorded)."""
    out = []
    for r in _both(runs, pair):
        a, b = (get(r.models[k]) for k in pair)
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


def _pm(values: Sequence[float], scale: float = 100.0) -> str:
    """``+12.3`` or ``+12.3 ± 1.1`` (no unit, no count of seeds)."""
    return mean_std(values, scale, signed=True)


def _over(values: Sequence[float]) -> str:
    return "" if len(values) == 1 else f" over {len(values)} seeds"


def _signed(values: Sequence[float], scale: float = 100.0) -> str:
    """``+12.3 points`` or ``+12.3 ± 1.1 points over 3 seeds``."""
    return f"{mean_std(values, scale, signed=True)} points{_over(values)}"


def clean_accuracy(runs: Runs, pair: Pair) -> str | None:
    d = _diffs(runs, lambda m: m.clean.top1, pair)
    if not d:
        return None
    v = _verdict(d, "higher", "lower", "not consistently different")
    if v == "not consistently different":
        return (
            f"Clean top-1 accuracy is not consistently different (top-down minus {short_name(pair[0])}: {_signed(d)})."
        )
    return f"The top-down net's clean top-1 accuracy is {_size(d)} {v} than {_the(pair[0])}'s {_seeds(d)}."


def perturbation_at_level(runs: Runs, name: str, label: str, pair: Pair, unit: str = "") -> str | None:
    """Accuracy kept under one of the paper's perturbations at the middle level of its sweep."""
    levels = as_results(runs[0]).perturbation_levels.get(name) if runs else None
    if not levels or len(levels) < 2:
        return None
    k = len(levels) // 2
    d = _diffs(runs, lambda m: _level(m, name, k), pair)
    if not d:
        return None
    level = f"{unit}={levels[k]:g}"
    # The drop from each model's own clean accuracy separates robustness from clean accuracy.
    drop = _diffs(runs, lambda m: _drop(m, name, k), pair)
    v = _verdict(d, "more", "less", "")
    if not v:
        text = f"Under {label} at {level}, neither model keeps consistently more accuracy ({_signed(d)})"
    else:
        text = f"Top-down keeps {_size(d)} {v} accuracy than {_the(pair[0])} under {label} at {level} {_seeds(d)}"
    if drop:
        w = _verdict(drop, "smaller", "larger", "")
        text += (
            f"; its drop from clean accuracy is {_size(drop)} {w} {_seeds(drop)}"
            if w
            else f"; the drops from clean accuracy are not consistently different ({_signed(drop)})"
        )
    return text + "."


def _accuracy_per_level(m: ModelResults, name: str) -> list[float] | None:
    p = m.perturbation(name)
    return None if p is None else p.accuracy_per_level


def _level(m: ModelResults, name: str, k: int) -> float | None:
    """Accuracy under perturbation ``name`` at level ``k``."""
    acc = _accuracy_per_level(m, name)
    return acc[k] if acc and 0 <= k < len(acc) else None


def _drop(m: ModelResults, name: str, k: int) -> float | None:
    """Accuracy lost at level ``k`` (negated, so that a smaller loss is a larger number)."""
    acc = _accuracy_per_level(m, name)
    return None if not acc else acc[k] - acc[0]


def perturbation_auc(runs: Runs, pair: Pair) -> list[str]:
    names = list(as_results(runs[0]).perturbation_levels) if runs else []
    better, worse, tied = [], [], []
    for name in names:
        d = _diffs(runs, lambda m, name=name: m.perturbation_auc(name), pair)
        if not d:
            continue
        {"higher": better, "lower": worse, "": tied}[_verdict(d, "higher", "lower", "")].append(name.replace("_", " "))
    n = len(_both(runs, pair))
    seeds = f"on all {n} seeds" if n > 1 else "on 1 seed"
    out = []
    if better:
        out.append(
            f"The area under the accuracy-vs-L2 curve is higher for top-down {seeds} under: {', '.join(better)}."
        )
    if worse:
        out.append(
            f"The area under the accuracy-vs-L2 curve is higher for {_the(pair[0])} {seeds} under: {', '.join(worse)}."
        )
    if tied:
        out.append(f"No consistent winner in area under the accuracy-vs-L2 curve under: {', '.join(tied)}.")
    return out


def _epsilons(m: ModelResults, norm: str) -> list[float] | None:
    w = m.worst_case(norm)
    return None if w is None else w.epsilons


def headline_budget(runs: Runs, norm: str, pair: Pair) -> tuple[int, float] | None:
    """``(index, eps)`` of the budget a norm's worst case is quoted at: the middle of the sweep (its second
    point with fewer than four), from the first run that holds the reference model."""
    eps = next((e for r in _both(runs, pair) if (e := _epsilons(r.models[pair[0]], norm))), None)
    if not eps or len(eps) < 2:
        return None
    k = 1 if len(eps) < 4 else len(eps) // 2
    return k, eps[k]


def budget_text(norm: str, eps: float) -> str:
    """``L∞ ε = 2/255`` or ``L2 ε = 0.5``."""
    return f"L∞ ε = {eps * 255:g}/255" if norm == "linf" else f"L2 ε = {eps:g}"


def worst_case_without_autoattack(model: ModelResults, norm: str, k: int) -> float | None:
    """A model's worst-case accuracy at eps index ``k`` over every attack but AutoAttack: its worst case plus
    the images that AutoAttack alone broke (``first_broken_by`` credits an image to the first attack that broke
    it in running order, and AutoAttack runs after every other white-box attack). ``None`` where that is not
    recorded."""
    w = model.worst_case(norm) or WorstCase({})
    acc = w.accuracy_at(k)
    first = dig(w.first_broken_by, k)
    if acc is None or first is None:
        # a worst case recorded before AutoAttack joined the suite holds none of it
        return acc if not any(str(a).startswith("autoattack:") for a in w.attacks or []) else None
    only_aa = sum(c for a, c in first.items() if str(a).startswith("autoattack:"))
    n = len(dig(w.first_broken_by_image, k) or []) or model.subset.n
    return acc + only_aa / n if n else None


def worst_case_attack(runs: Runs, pair: Pair, norm: str = "linf") -> str | None:
    budget = headline_budget(runs, norm, pair)
    if budget is None:
        return None
    k, e = budget
    d = _diffs(runs, lambda m: m.worst_accuracy(norm, k), pair)
    if not d:
        return None
    eps_txt = f"{e * 255:g}/255" if norm == "linf" else f"{e:g}"
    name = "L∞" if norm == "linf" else "L2"
    both = _both(runs, pair)
    with_aa = all(r.models[key].autoattack(norm, e) for r in both for key in pair)
    strongest = f"the strongest {name} attack{' (AutoAttack included)' if with_aa else ''}"
    v = _verdict(d, "higher", "lower", "")
    if not v:
        return f"Against {strongest} at ε = {eps_txt}, neither model is consistently more robust ({_signed(d)})."
    return (
        f"Against {strongest} at ε = {eps_txt}, top-down's robust accuracy is {_size(d)} {v} than "
        f"{_the(pair[0])}'s {_seeds(d)}."
    )


def _mces(runs: Runs, pair: Pair, key: str) -> list[float]:
    """Model ``key``'s mCE in every run holding both models of ``pair`` (where recorded)."""
    return [v for r in _both(runs, pair) if (v := r.models[key].corruptions.mce) is not None]


def corruption_error(runs: Runs, pair: Pair) -> str | None:
    if any((r.reference_model or (r.pair() or ("",))[0]) != pair[0] for r in _both(runs, pair)):
        # both mCEs are relative to the baseline: compare them with each other
        d = _diffs(runs, lambda m: m.corruptions.mce, pair)
        if not d:
            return None
        td, ref = _mces(runs, pair, pair[1]), _mces(runs, pair, pair[0])
        word = _verdict(d, "more errors than", "fewer errors than", "about as many errors as", tie=MCE_TIE)
        return (
            f"Under common corruptions, top-down's mean corruption error is {_pct_mean(td)} of the baseline's, "
            f"{_the(pair[0])}'s {_pct_mean(ref)}: {word} {_the(pair[0])}."
        )
    vals = _mces(runs, pair, pair[1])
    if not vals:
        return None
    # within 2% of the baseline's errors: a tie (0.1 points of mean accuracy on the flowers already moves it 1%)
    if all(v < 1 - MCE_TIE for v in vals):
        word = "fewer errors than"
    elif all(v > 1 + MCE_TIE for v in vals):
        word = "more errors than"
    else:
        word = "about as many errors as"
    return (
        f"Under common corruptions, top-down's mean corruption error is {_pct_mean(vals)} of the "
        f"baseline's: {word} the baseline."
    )


def _pct_mean(vals: Sequence[float]) -> str:
    """``112.9%`` or ``112.9 ± 6.5% over 3 seeds``."""
    return f"{mean_std(vals)}%{_over(vals)}"


def scale_name(factor: int) -> str:
    """A pyramid level (or image band) by its downscaling factor: ``full resolution``, ``1/4 resolution``."""
    return "full resolution" if factor == 1 else f"1/{factor} resolution"


def scale_ablation(runs: Runs, topdown: str) -> list[str]:
    out = []
    for kind, what in (("noise", "Gaussian noise"), ("pgd", "A PGD attack")):
        hits = []
        for r in _views(runs):
            m = r.model(topdown)
            lvl = m.scale(kind) if m is not None else None
            if lvl and lvl.most_harmful_factor is not None:
                hits.append(int(lvl.most_harmful_factor))
        if not hits:
            continue
        common = max(set(hits), key=hits.count)
        res = scale_name(common)
        agree = "" if len(hits) == 1 else f" ({hits.count(common)} of {len(hits)} seeds)"
        out.append(f"{what} on one pyramid level hurts the top-down net most at the {res} level{agree}.")
    return out


def sanity(runs: Runs) -> str:
    """The failed sanity checks of each model, with on how many of its seeds each failed where there are several."""
    views = _views(runs)
    seeds: Counter[str] = Counter()  # each model's number of runs
    failed: dict[str, Counter[str]] = {}
    for r in views:
        for name, m in r.models.items():
            seeds[name] += 1
            if m.flagged:
                failed.setdefault(name, Counter()).update(m.failed_checks)

    def counted(name: str, check: str) -> str:
        n = seeds[name]
        return check if n == 1 else f"{check} ({failed[name][check]} of {n} seeds)"

    flagged = [f"{name}: {', '.join(counted(name, c) for c in failed[name])}" for name in sorted(failed)]
    if flagged:
        return "Sanity checks FAILED (possible gradient masking or a weak attack): " + "; ".join(flagged) + "."
    n = len(seeds)
    return f"Every robustness sanity check passed for {'both models' if n <= 2 else f'all {n} models'}."


def comparisons(runs: Runs, pair: Pair) -> list[str]:
    """What the results say about top-down against one reference model, in reading order."""
    if not _both(runs, pair):
        return []
    lines = [
        clean_accuracy(runs, pair),
        perturbation_at_level(runs, "gaussian_noise", "Gaussian noise", pair, "σ"),
        perturbation_at_level(runs, "gaussian_blur", "Gaussian blur", pair, "σ"),
        *perturbation_auc(runs, pair),
        worst_case_attack(runs, pair, "linf"),
        worst_case_attack(runs, pair, "l2"),
        corruption_error(runs, pair),
    ]
    return [x for x in lines if x]


def conclusions(runs: Runs) -> list[str]:
    """Top-down against the baseline, where its levels break, and the sanity checks, in reading order."""
    pair = _base_pair(runs)
    if pair is None:
        return []
    return [*comparisons(runs, pair), *scale_ablation(runs, pair[1]), sanity(runs)]


def control_conclusions(runs: Runs) -> dict[str, list[str]]:
    """``{control: comparisons of top-down against it}`` for every control the runs hold."""
    return {pair[0]: lines for pair in control_pairs(runs) if (lines := comparisons(runs, pair))}


# -- which advantages survive ------------------------------------------------------------------------------------
#: The significance level of the paired test that a verdict rests on.
ALPHA = 0.05


#: How a verdict on an advantage is worded (the page's legend says the same).
SURVIVAL_RULE = (
    "'survives' where top-down stays ahead on every seed and the paired test is below "
    f"{ALPHA:g} on every seed it ran on, 'survives in sign only' where it stays ahead on every seed but a paired test "
    "is not below it, 'does not survive' where it is ahead on no seed, else 'mixed'"
)


def _survival_word(values: Sequence[float], p_values: Sequence[float] = ()) -> str:
    """``survives`` where top-down stays ahead by more than a tie on every seed and every paired test (where it
    ran) is below ``ALPHA``; ``survives in sign only`` where it stays ahead but a test is not; ``does not
    survive`` where it is ahead on no seed, else ``mixed``."""
    if values and all(v > TIE for v in values):
        return "survives" if all(p < ALPHA for p in p_values) else "survives in sign only"
    if values and all(v <= TIE for v in values):
        return "does not survive"
    return "mixed"


def _autoattack_survival(runs: Runs, pair: Pair, norm: str, k: int, e: float) -> str:
    both = _both(runs, pair)
    tested = [r for r in both if all(r.models[key].autoattack(norm, e) for key in pair)]
    if not tested:
        return "AutoAttack: not run at this budget, so not tested."
    d = _diffs(tested, lambda m: m.worst_accuracy(norm, k), pair)
    ps = _paired_p_values(tested, pair, norm, k)
    some = "" if len(tested) == len(both) else f" on the {len(tested)} of {len(both)} seeds where it ran"
    text = (
        f"AutoAttack: {_survival_word(d, ps)}{some} (with it in the worst case, top-down minus the baseline: "
        f"{_signed(d)}{_paired(ps, len(d))}"
    )
    without = _diffs(tested, lambda m: (m.autoattack(norm, e) or AutoAttack(None)).accuracy_without, pair)
    with_aa = _diffs(tested, lambda m: (m.autoattack(norm, e) or AutoAttack(None)).accuracy_with, pair)
    if without and with_aa:
        sizes = {r.models[key].autoattack(norm, e).n for r in tested for key in pair}
        where = f"its {sizes.pop()} images" if len(sizes) == 1 else "its images"
        text += f"; on {where}, {_pm(without)} points without it and {_pm(with_aa)} with it"
    failed = []
    for key in pair:
        checks = [_passed(r.models[key], "autoattack_adds_little") for r in tested]
        name = "the top-down net" if key == pair[1] else _the(key)
        if bad := sum(c is False for c in checks):
            failed.append(f"failed for {name} on {bad} of {len(checks)} seed(s)")
        elif missing := sum(c is None for c in checks):
            failed.append(f"was not recorded for {name} on {missing} of {len(checks)} seed(s)")
    if failed:
        text += (
            "); its sanity check (AutoAttack adds little) "
            + " and ".join(failed)
            + ": there the rest of the suite overstated robustness, and only the worst case with AutoAttack counts"
        )
    else:
        text += "); its sanity check (AutoAttack adds little) passed for both nets on every seed"
    return text + "."


def _paired_p_values(runs: Runs, pair: Pair, norm: str, k: int) -> list[float]:
    """Per run holding both models on the same attacked images: the paired test's p-value of their worst-case
    robustness at eps index ``k``."""
    out = []
    for r in _both(runs, pair):
        ref, td = (r.models[key] for key in pair)
        robust = [(m.worst_case(norm) or WorstCase({})).robust_at(k) for m in (ref, td)]
        if None in robust or ref.subset.indices is None or ref.subset.indices != td.subset.indices:
            continue
        out.append(paired_p_value(*robust))
    return out


def _paired(ps: Sequence[float], seeds: int) -> str:
    """``; paired test on the same images (exact McNemar): p = 0.0004 · 0.03, below 0.05 on 2 of 2 seeds``
    (``""`` where no run records the per-image worst case); ``seeds``: how many the comparison is over."""
    if not ps:
        return ""
    below = sum(p < ALPHA for p in ps)
    text = (
        f"; paired test on the same images (exact McNemar): p = {' · '.join(f'{p:.2g}' for p in ps)}, below "
        f"{ALPHA:g} on {below} of {len(ps)} seed{'s' if len(ps) > 1 else ''}"
    )
    if len(ps) < seeds:
        text += f" (not run on {seeds - len(ps)}: other images, or no per-image records)"
    return text


def _passed(m: ModelResults, check: str) -> bool | None:
    """Whether a sanity check passed (``None``: not run, or not recorded)."""
    c = m.check(check)
    return None if c is None else c.passed


def _control_survival(runs: Runs, control: str, topdown: str, norm: str, k: int) -> str | None:
    pair = (control, topdown)
    d = _diffs(runs, lambda m: m.worst_accuracy(norm, k), pair)
    if not d:
        return None
    n = len(_both(runs, _base_pair(runs) or pair))
    some = "" if len(d) == n else f" on the {len(d)} of {n} seeds that have it"
    ps = _paired_p_values(runs, pair, norm, k)
    text = f"The {short_name(control)}: {_survival_word(d, ps)}{some} (worst case, top-down minus it: {_signed(d)}"
    if control == "accuracy_control":
        gap = _diffs(runs, lambda m: m.clean.top1, pair)
        if gap:
            text += f", at a clean top-1 accuracy {_pm(gap)} points from it"
    return text + _paired(ps, len(d)) + ")."


def survival(runs: Runs) -> list[str]:
    """Which of the top-down net's worst-case advantages over the baseline (at each norm's headline budget,
    measured by every attack but AutoAttack) survive AutoAttack, the blur control and the accuracy control (in
    the worst case with AutoAttack): "survives" only where every seed agrees, "does not survive" where none
    does, else "mixed"."""
    pair = _base_pair(runs)
    if pair is None:
        return []
    out = []
    for norm in ("linf", "l2"):
        budget = headline_budget(runs, norm, pair)
        if budget is None:
            continue
        k, e = budget
        adv = _diffs(runs, lambda m, norm=norm, k=k: worst_case_without_autoattack(m, norm, k), pair)
        if not adv:
            continue
        aa = any(r.models[key].autoattack(norm, e) for r in _both(runs, pair) for key in pair)
        head = (
            f"Worst-case accuracy at {budget_text(norm, e)}{' without AutoAttack' if aa else ''}: top-down minus "
            f"the baseline is {_signed(adv)}"
        )
        if _verdict(adv, "ahead", "", "") != "ahead":
            out.append(f"{head}, not ahead on every seed: no advantage over the baseline to test.")
            continue
        parts = [_autoattack_survival(runs, pair, norm, k, e)]
        parts += [t for c, td in control_pairs(runs) if (t := _control_survival(runs, c, td, norm, k))]
        out.append(f"{head}, ahead on every seed. " + " ".join(parts))
    return out
