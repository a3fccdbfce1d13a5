"""Figures from results.json (matplotlib, Agg): every model overlaid on the same axes.

* ``attacks_linf.png`` / ``attacks_l2.png``: robust accuracy against epsilon, one colour per attack, one line
  style per model, the per-example worst case over attacks in black.
* ``perturbations.png``: the paper's accuracy against L2 size, one panel per perturbation (AUC in the legend).
* ``corruptions.png``: accuracy per corruption and severity, one heat map per model (mCE in the title).
* ``scales.png``: accuracy with one pyramid level (top-down) or image band (baseline) perturbed, per level.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..results_view import Results

STYLES = ("-", "--", ":", "-.")


def pyplot() -> Any:
    import matplotlib  # matplotlib only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib only when a figure is drawn

    return plt


def write_figures(makers: Iterable[tuple[Callable[[Any, Path], Path | None], str]], data: Any, out: Path) -> list[Path]:
    """``maker(data, out / name)`` for each ``(maker, name)``; the paths of the figures written (a maker returns
    ``None`` where the data has nothing for its figure)."""
    written = [maker(data, out / name) for maker, name in makers]
    return [p for p in written if p is not None]


def make_plots(results: dict[str, Any], out: str | Path) -> list[Path]:
    """Write every figure the results allow into ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    attacks = [
        (lambda r, path, norm=norm: _attack_plot(r, norm, path), f"attacks_{norm}.png") for norm in ("linf", "l2")
    ]
    others = [
        (_perturbation_plot, "perturbations.png"),
        (_corruption_plot, "corruptions.png"),
        (_scale_plot, "scales.png"),
    ]
    return write_figures([*attacks, *others], results, out)


def save_figure(fig: Any, path: Path) -> Path:
    plt = pyplot()
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def _attack_plot(results: dict[str, Any], norm: str, path: Path) -> Path | None:
    models = Results(results).models
    names = sorted({a for m in models.values() for a, r in m.attacks.items() if r.norm == norm})
    if not names:
        return None
    plt = pyplot()
    colors = {a: plt.cm.tab10(i % 10) for i, a in enumerate(names)}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mi, (model, m) in enumerate(models.items()):
        ls = STYLES[mi % len(STYLES)]
        for a in names:
            r = m.attack(a)
            if r is None:
                continue
            if r.distances is not None and r.kind != "fixed":
                # a minimum-norm attack gives the whole curve: draw it as a step function
                d = np.array([np.inf if v is None else v for v in r.distances])
                grid = np.linspace(0, max(r.epsilons[-1], 1e-9), 200)
                ax.plot(grid, [(d > g).mean() for g in grid], ls, color=colors[a], label=f"{model}: {a}")
            else:
                ax.plot(r.epsilons, r.accuracy, ls, marker="o", ms=3, color=colors[a], label=f"{model}: {a}")
        w = m.worst_case(norm)
        if w:
            ax.plot(w.epsilons, w.accuracy, ls, color="black", lw=2, label=f"{model}: worst case")
    ax.set_xlabel(f"epsilon ({'L-inf' if norm == 'linf' else 'L2'}, pixels in [0, 1])")
    ax.set_ylabel("robust accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(f"Gradient attacks ({norm})")
    return save_figure(fig, path)


def _perturbation_plot(results: dict[str, Any], path: Path) -> Path | None:
    models = Results(results).models
    names = sorted({p for m in models.values() for p in m.perturbations})
    if not names:
        return None
    plt = pyplot()
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for mi, (model, m) in enumerate(models.items()):
            p = m.perturbation(name)
            if p:
                ax.plot(
                    p.l2_grid,
                    p.accuracy_vs_l2,
                    STYLES[mi % len(STYLES)],
                    color=f"C{mi}",
                    label=f"{model} (AUC {p.auc:.2f})" if p.auc is not None else model,
                )
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("L2 size of the perturbation", fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    return save_figure(fig, path)


def _corruption_plot(results: dict[str, Any], path: Path) -> Path | None:
    models = {k: m.corruptions for k, m in Results(results).models.items() if m.corruptions.per_corruption}
    if not models:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 4.2), squeeze=False)
    for ax, (model, c) in zip(axes.flat, models.items()):
        per = c.per_corruption
        names = list(per)
        sev = per[names[0]].severities
        grid = np.array([per[n].accuracy for n in names])
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 else "black")
        ax.set_xticks(range(len(sev)), [str(s) for s in sev])
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("severity")
        mce = c.mce
        ax.set_title(f"{model}" + (f" (mCE {100 * mce:.0f}%)" if mce is not None else ""), fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path)


def _scale_plot(results: dict[str, Any], path: Path) -> Path | None:
    models = {k: m.scales for k, m in Results(results).models.items() if m.scales}
    kinds = sorted({kind for s in models.values() for kind in s})
    if not kinds:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.6), squeeze=False)
    width = 0.8 / max(1, len(models))
    for ax, kind in zip(axes.flat, kinds):
        for mi, (model, s) in enumerate(models.items()):
            r = s.get(kind)
            if not r:
                continue
            acc = np.asarray(r.accuracy).mean(axis=1)  # averaged over the strengths
            x = np.arange(len(acc)) + mi * width
            ax.bar(x, acc, width, color=f"C{mi}", label=f"{model} ({r.mode.replace('_', ' ')})")
        levels = next(s[kind] for s in models.values() if s.get(kind))
        ax.set_xticks(
            np.arange(len(levels.factors)) + width * (len(models) - 1) / 2,
            [f"level {i}\n1/{f}" for i, f in zip(levels.levels, levels.factors)],
            fontsize=8,
        )
        strengths = ", ".join(f"{v:.3g}" for v in levels.strengths)
        ax.set_title(f"{kind}: one scale perturbed ({levels.strength} {strengths})", fontsize=9)
        ax.set_ylabel("accuracy (mean over strengths)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    return save_figure(fig, path)
