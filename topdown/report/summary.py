"""The few figures the main job ends with, per model, read from what its stages wrote.

``job_summary(out)`` gives the rows of that table: clean test accuracy and its weakest class, the per-image
worst case over the L∞ attacks at the suite's headline ε, the mean corruption error, how many sanity checks
passed and how many visualization quality figures passed. A stage that did not run leaves its rows out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..io import read_json_if_there
from ..results_view import ModelResults, Results, VisResults
from . import metrics as M


@dataclass
class SummaryRow:
    label: str
    values: dict[str, str]  # model -> formatted figure
    note: str = ""  # what the figure is computed on, under the table


def _weakest_class(model: ModelResults) -> str:
    per_class = model.clean.per_class_acc
    if not per_class:
        return "–"
    name, acc = min(per_class.items(), key=lambda kv: kv[1])
    return f"{100 * acc:.1f}% ({name})"


def job_summary(out: str | Path) -> list[SummaryRow]:
    """The rows of the main job's closing table, from ``<out>/eval/results.json`` and ``<out>/vis/vis.json``."""
    out = Path(out)
    rows: list[SummaryRow] = []
    res = Results(read_json_if_there(out / "eval" / "results.json"))
    models = res.models
    if models:
        n_test = next(iter(models.values())).clean.n
        top1, mce = M.CLEAN[0], M.MCE
        cells = {k: top1.cell(m) for k, m in models.items()}
        rows.append(SummaryRow(top1.label, cells, f"clean top-1: on the {n_test} test images"))
        rows.append(SummaryRow("weakest class", {k: _weakest_class(m) for k, m in models.items()}))
        if (worst := M.headline_worst_case(res)) is not None:
            n = res.subset_size
            rows.append(
                SummaryRow(
                    worst.label,
                    {k: worst.cell(m) for k, m in models.items()},
                    "worst case: accuracy left when each image meets the strongest L∞ attack of the suite"
                    + (f", on {n} attacked images" if n else ""),
                )
            )
        if any(m.corruptions.mce is not None for m in models.values()):
            reference = res.reference_model or "the baseline"
            note = f"mCE: mean corruption error relative to {reference}'s (100%; lower is better)"
            rows.append(SummaryRow(mce.label, {k: mce.cell(m) for k, m in models.items()}, note))
        sanity = {k: M.sanity_count(m.sanity) or "–" for k, m in models.items()}
        rows.append(SummaryRow("sanity checks passed", sanity))
    vis = VisResults(read_json_if_there(out / "vis" / "vis.json"))
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
