"""The headline metrics, declared once: each a label, a getter on one model's results and a format. The suite's
printed summary, the main job's closing table, the results page and the HTML report's tables all read them from
here, so the four can never disagree on what a figure is called, how it is computed or how it is written.

:func:`headline_metrics` lists them for one run (the ε's, AutoAttack budgets, perturbations and scales it
holds); :meth:`Metric.cell` writes one run's value, :meth:`Metric.mean_std` the mean ± std over seeds and
:func:`metric_rows` one row per metric across models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..results_view import Check, ModelResults, Results, Scale, as_results, dig
from ..stats import mean_std
from .conclusions import budget_text, scale_name

#: The L∞ budget the closing table quotes when the suite names none (AutoAttack's): 2/255.
DEFAULT_HEADLINE_EPS = 2 / 255


@dataclass(frozen=True)
class Metric:
    """One headline figure.

    Args:
        key: a stable name (``clean_top1``, ``worst_linf@2/255``, ``mce``...).
        label: how the results page names it (its unit in brackets).
        get: the figure from one model's results (``None`` where that run did not compute it).
        scale: what the stored value is multiplied by when written (100 for percentages).
        digits: decimals written.
    """

    key: str
    label: str
    get: Callable[[ModelResults], float | None]
    scale: float = 100.0
    digits: int = 1

    def value(self, model: ModelResults | None) -> float | None:
        return None if model is None else self.get(model)

    def cell(self, model: ModelResults | None) -> str:
        """One run's value, written as the results page writes it (``–`` where there is none)."""
        v = self.value(model)
        return "–" if v is None else f"{v * self.scale:.{self.digits}f}"

    def mean_std(self, values: Sequence[float]) -> str:
        """``mean ± std`` over seeds (just the value for one seed, ``–`` for none)."""
        return mean_std(values, self.scale, self.digits)


def sanity_count(checks: dict[str, Check]) -> str | None:
    """``passed/ran`` of the sanity checks (a check whose ``passed`` is ``None`` did not run); ``None`` when
    there are none."""
    if not checks:
        return None
    ran = [c for c in checks.values() if c.passed is not None]
    return f"{sum(bool(c.passed) for c in ran)}/{len(ran)}"


def budget_label(norm: str, eps: float) -> str:
    """``2/255`` for an L∞ ε, ``0.5`` for an L2 one."""
    return f"{eps * 255:g}/255" if norm == "linf" else f"{eps:g}"


def _clean(key: str) -> Callable[[ModelResults], float | None]:
    return lambda m: m.clean.get(key)


def _scale_at(m: ModelResults, kind: str, level: int) -> float | None:
    """Accuracy with one scale (pyramid level or image band) perturbed at the strongest strength."""
    s = m.scale(kind)
    return dig(s.accuracy, level, -1) if s is not None else None


CLEAN = (
    Metric("clean_top1", "clean top-1 (%)", _clean("top1")),
    Metric("clean_top5", "clean top-5 (%)", _clean("top5")),
    Metric("clean_macro", "clean macro accuracy (%)", _clean("macro_acc")),
    Metric("confidence", "mean confidence (%)", _clean("confidence")),
    Metric("ece", "expected calibration error (×100)", _clean("ece")),
)

MINIMAL = (
    Metric(
        "fmn_median",
        "median minimal L∞ perturbation, FMN (/255)",
        lambda m: None if (a := m.attack("fmn")) is None else a.median_distance,
        scale=255.0,
    ),
    Metric(
        "deepfool_median",
        "median minimal L2 perturbation, DeepFool (an upper bound)",
        lambda m: None if (a := m.attack("deepfool")) is None else a.median_distance,
        scale=1.0,
        digits=2,
    ),
    Metric(
        "hsj_median",
        "median minimal L2 perturbation, HopSkipJump (decision-based)",
        lambda m: None if (a := m.decision) is None else a.median_distance,
        scale=1.0,
        digits=2,
    ),
    Metric("mce", "mCE (% of baseline)", lambda m: m.corruptions.mce),
)

#: mCE on its own (one of :data:`MINIMAL`): the closing table and the report's corruption table quote it.
MCE = next(m for m in MINIMAL if m.key == "mce")

#: Mean accuracy over every corruption and severity: the report's corruption table, beside mCE.
CORRUPTION_ACCURACY = Metric(
    "corruption_mean_acc", "mean accuracy under corruption (%)", lambda m: m.corruptions.mean_accuracy
)


def worst_case_metric(norm: str, k: int, eps: float, note: str = "") -> Metric:
    """The per-image worst case over every attack of ``norm`` at its ``k``-th ε."""
    name = "L∞" if norm == "linf" else "L2"
    return Metric(
        f"worst_{norm}@{budget_label(norm, eps)}",
        f"worst-case {name} accuracy at ε = {budget_label(norm, eps)}{note} (%)",
        lambda m: m.worst_accuracy(norm, k),
    )


def autoattack_metrics(norm: str, eps: float, images: str) -> tuple[Metric, Metric]:
    """Robust accuracy on AutoAttack's images with it and without it (every other attack of the suite)."""
    at = budget_text(norm, eps)
    with_ = Metric(
        f"autoattack_with_{norm}@{budget_label(norm, eps)}",
        f"AutoAttack at {at}: robust accuracy with it, on its {images} (%)",
        lambda m: None if (s := m.autoattack(norm, eps)) is None else s.accuracy_with,
    )
    without = Metric(
        f"autoattack_without_{norm}@{budget_label(norm, eps)}",
        f"AutoAttack at {at}: robust accuracy without it (every other attack), same {images} (%)",
        lambda m: None if (s := m.autoattack(norm, eps)) is None else s.accuracy_without,
    )
    return with_, without


def perturbation_metric(name: str) -> Metric:
    return Metric(f"auc_{name}", f"AUC {name.replace('_', ' ')} (×100)", lambda m: m.perturbation_auc(name))


def scale_metrics(topdown: ModelResults) -> list[Metric]:
    """One scale at a time, at the strongest strength: the top-down net's pyramid level, the baseline's same
    frequency band of the image."""
    out = []
    for kind, what in (("noise", "Gaussian noise σ = {:g}"), ("pgd", "L∞ PGD ε = {:g}/255")):
        sc = topdown.scale(kind) or Scale({})
        strengths = sc.sigmas if kind == "noise" else [e * 255 for e in sc.epsilons or []]
        if not strengths:
            continue
        for i, factor in enumerate(sc.factors or []):
            out.append(
                Metric(
                    f"scale_{kind}@{factor}",
                    f"{what.format(strengths[-1])} on the {scale_name(factor)} scale only (%)",
                    lambda m, kind=kind, i=i: _scale_at(m, kind, i),
                )
            )
    return out


def headline_eps(results: Results | Mapping[str, Any]) -> float | None:
    """The suite's headline L∞ ε: its first L∞ AutoAttack budget, else 2/255, else the middle of the sweep;
    ``None`` when the suite ran no L∞ sweep."""
    results = as_results(results)
    sweep = [float(e) for e in results.epsilons("linf") if e > 0]
    if not sweep:
        return None
    for norm, eps in results.autoattack_budgets:
        if norm == "linf" and any(abs(eps - e) < 1e-9 for e in sweep):
            return eps
    if any(abs(e - DEFAULT_HEADLINE_EPS) < 1e-9 for e in sweep):
        return DEFAULT_HEADLINE_EPS
    return sweep[(len(sweep) - 1) // 2]


def headline_worst_case(results: Results) -> Metric | None:
    """The worst case at the headline L∞ ε (:func:`headline_eps`), as the results page labels it."""
    eps = headline_eps(results)
    if eps is None:
        return None
    w = next((m.worst_case("linf") for m in results.models.values() if m.worst_case("linf")), None)
    eps_list = list(w.epsilons) if w is not None else list(results.epsilons("linf"))
    k = min(range(len(eps_list)), key=lambda i: abs(eps_list[i] - eps))
    note = ", AutoAttack included" if any(m.autoattack("linf", eps) for m in results.models.values()) else ""
    return worst_case_metric("linf", k, eps, note)


def autoattack_note(models: Iterable[ModelResults], norm: str, eps: float) -> str:
    """How a worst-case label says whether AutoAttack at ``(norm, eps)`` is in it, over ``models`` (every model
    evaluation of every run the table covers)."""
    ran = [m.autoattack(norm, eps) is not None for m in models]
    if not any(ran):
        return ""
    if all(ran):
        return ", AutoAttack included"
    return f", AutoAttack included where it ran ({sum(ran)} of {len(ran)} model evaluations)"


def headline_metrics(results: Results | Mapping[str, Any]) -> list[Metric]:
    """Every headline figure one run holds, in the results page's order: clean, the worst case at each ε > 0 of
    each norm, AutoAttack with and without it at each budget, the minimal perturbations and mCE, the paper's
    perturbations (AUC) and the top-down net's scales."""
    results = as_results(results)
    models = list(results.models.values())
    out = list(CLEAN)
    for norm in ("linf", "l2"):
        w = next((w for m in models if (w := m.worst_case(norm))), None)
        for k, e in enumerate((w.epsilons or []) if w is not None else []):
            if e > 0:
                out.append(worst_case_metric(norm, k, e, autoattack_note(models, norm, e)))
    budgets = {f"{s.norm}:{s.eps:.6g}": (s.norm, s.eps) for m in models for s in m.autoattacks.values()}
    for norm, e in sorted(budgets.values(), key=lambda b: (b[0] != "linf", b[1])):
        sizes = {s.n for m in models if (s := m.autoattack(norm, e))}
        out += autoattack_metrics(norm, e, f"{sizes.pop()} images" if len(sizes) == 1 else "images")
    out += MINIMAL
    out += [perturbation_metric(name) for name in perturbation_names(results)]
    if (pair := results.pair()) is not None:
        out += scale_metrics(results.models[pair[1]])
    return out


def perturbation_names(results: Results) -> list[str]:
    """The paper's perturbations any model of a run recorded, in the order they were recorded."""
    return list(dict.fromkeys(p for m in results.models.values() for p in m.perturbations))


def metric_rows(
    metrics: Iterable[Metric], models: Mapping[str, ModelResults], skip_empty: bool = True
) -> list[tuple[str, ...]]:
    """One row per metric, ``(label, cell of each model...)``; a metric no model holds is left out unless
    ``skip_empty`` is false."""
    rows = []
    for metric in metrics:
        cells = [metric.cell(m) for m in models.values()]
        if not skip_empty or any(c != "–" for c in cells):
            rows.append((metric.label, *cells))
    return rows
