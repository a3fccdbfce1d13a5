"""The few figures the main job ends with, per model, read from what its stages wrote.

``job_summary(out)`` gives the rows of that table: clean test accuracy and its weakest class, the per-image
worst case over the L∞ attacks at the suite's headline ε, the mean corruption error, how many sanity checks
passed and how many visualization quality figures passed. A stage that did not run leaves its rows out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..results_view import Check, ModelResults, Results, VisResults, as_results

#: The L∞ budget the summary quotes when the suite names none (AutoAttack's): 2/255, the headline of the
#: flower results, where the two nets differ most.
DEFAULT_HEADLINE_EPS = 2 / 255


@dataclass
class SummaryRow:
    label: str
    values: dict[str, str]  # model -> formatted figure
    note: str = ""  # what the figure is computed on, under the table


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def headline_eps(results: Results | Mapping[str, Any]) -> float | None:
    """The suite's headline L∞ ε: its first L∞ AutoAttack budget, else 2/255, else the middle of the sweep.

    ``None`` when the suite ran no L∞ sweep.
    """
    res = as_results(results)
    sweep = [float(e) for e in res.epsilons("linf") if e > 0]
    if not sweep:
        return None
    for norm, eps in res.autoattack_budgets:
        if norm == "linf" and any(abs(eps - e) < 1e-9 for e in sweep):
            return eps
    if any(abs(e - DEFAULT_HEADLINE_EPS) < 1e-9 for e in sweep):
        return DEFAULT_HEADLINE_EPS
    return sweep[(len(sweep) - 1) // 2]


def _worst_case(model: ModelResults, eps: float) -> float | None:
    w = model.worst_case("linf")
    return w.accuracy_at_eps(eps) if w is not None else None


def _weakest_class(model: ModelResults) -> str:
    per_class = model.clean.per_class_acc
    if not per_class:
        return "–"
    name, acc = min(per_class.items(), key=lambda kv: kv[1])
    return f"{_pct(acc)} ({name})"


def _count(checks: dict[str, Check]) -> str:
    """``passed/ran`` of the sanity checks (one whose ``passed`` is ``None`` did not run), ``–`` when none ran."""
    ran = [c for c in checks.values() if c.passed is not None]
    return f"{sum(bool(c.passed) for c in ran)}/{len(ran)}" if ran else "–"


def job_summary(out: str | Path) -> list[SummaryRow]:
    """The rows of the main job's closing table, from ``<out>/eval/results.json`` and ``<out>/vis/vis.json``."""
    out = Path(out)
    rows: list[SummaryRow] = []
    res = Results(_read(out / "eval" / "results.json"))
    models = res.models
    if models:
        n_test = next(iter(models.values())).clean.n
        rows.append(
            SummaryRow(
                "clean accuracy",
                {k: _pct(m.clean.top1) for k, m in models.items()},
                f"clean accuracy: top-1 on the {n_test} test images",
            )
        )
        rows.append(SummaryRow("weakest class", {k: _weakest_class(m) for k, m in models.items()}))
        eps = headline_eps(res)
        if eps is not None:
            n = res.subset_size
            rows.append(
                SummaryRow(
                    f"worst-case L∞, ε = {eps * 255:g}/255",
                    {k: _pct(_worst_case(m, eps)) for k, m in models.items()},
                    "worst case: accuracy left when each image meets the strongest L∞ attack of the suite"
                    + (f", on {n} attacked images" if n else ""),
                )
            )
        if any(m.corruptions.mce is not None for m in models.values()):
            reference = res.reference_model or "the baseline"
            rows.append(
                SummaryRow(
                    "mCE",
                    {k: _pct(m.corruptions.mce) for k, m in models.items()},
                    f"mCE: mean corruption error relative to {reference}'s (100%; lower is better)",
                )
            )
        rows.append(SummaryRow("sanity checks", {k: _count(m.sanity) for k, m in models.items()}))
    vis = VisResults(_read(out / "vis" / "vis.json"))
    if vis.models:
        values = {}
        for name in vis.models:
            figures = vis.quality_figures(name)
            values[name] = f"{sum(bool(f.passed) for _, f in figures)}/{len(figures)}" if figures else "–"
        rows.append(SummaryRow("quality figures", values, "quality figures: of the visualizations, passed / computed"))
    return rows


def summary_table(out: str | Path) -> Any:
    """``job_summary(out)`` as a rich table with a line on each figure under it (``None`` when no stage left
    anything to summarize)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    rows = job_summary(out)
    if not rows:
        return None
    models = list(dict.fromkeys(k for r in rows for k in r.values))
    table = Table(title="what the job found", title_justify="left")
    table.add_column("")
    for name in models:
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(r.label, *[r.values.get(name, "–") for name in models])
    notes = Text("\n".join(r.note for r in rows if r.note), style="dim")
    return Group(table, notes)
