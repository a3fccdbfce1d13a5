"""The findings' figures (matplotlib, Agg), written beside findings.json:

* ``hybrids.png``: per model, the share of hybrid decisions that follow the coarse image's form and the fine
  image's pattern, at each cut-off (and, for a top-down net, at each pyramid split);
* ``spectra.png``: the class gradient's power spectrum relative to the photos', per model (and the class
  renders' where the visualizer's ``spectra`` ran);
* ``bands.png``: accuracy with each band of the image removed, per model;
* ``localization.png``: a few test images, their flower masks and each method's map, per model;
* ``cka.png``: linear CKA of every stage of the top-down net against every stage of each other model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..robustness.plots import pyplot, save_figure, write_figures
from ..vis.attribution import attribute
from .localization import LOCALIZATION_METHODS, cam_stage

#: Every figure of the findings, in the order the report and the results page show them, with its caption.
FIGURES = {
    "hybrids.png": "Hybrids and pyramid swaps: which image's form and which image's pattern each decision follows.",
    "localization.png": "Where each method puts the evidence, beside the flower's exact mask.",
    "bands.png": "Accuracy with each band of the image removed, and where the integrated gradients lie.",
    "spectra.png": "Power spectra of the class gradients and the class renders, relative to the photos'.",
    "cka.png": "Linear CKA of every stage against every stage.",
}


def _share(v: Sequence[Any]) -> float:
    return float(np.mean(np.asarray(v, dtype=float))) if len(v) else float("nan")


def hybrid_plot(doc: Mapping[str, Any], path: Path) -> Path | None:
    models = {n: m for n, m in doc["models"].items() if "cues" in m}
    if not models:
        return None
    plt = pyplot()
    first = next(iter(models.values()))
    groups = [(f"hybrid {cut}", ("cues", cut)) for cut in first["cues"]]
    groups += [(f"pyramid {k}", ("pyramid_swaps", k)) for k in first.get("pyramid_swaps", {})]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    width = 0.8 / len(models)
    for ax, key, title in zip(
        axes, ("follows_form", "follows_pattern"), ("follows the coarse form", "follows the fine pattern")
    ):
        for j, (name, m) in enumerate(models.items()):
            values = []
            for _, (part, sub) in groups:
                rec = m.get(part, {}).get(sub)
                values.append(_share(rec[key]) if rec else np.nan)
            ax.bar(np.arange(len(groups)) + j * width, values, width, label=name)
        ax.set_xticks(np.arange(len(groups)) + width * (len(models) - 1) / 2, [g for g, _ in groups], rotation=20)
        ax.set_title(f"share of decisions that {title}")
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    return save_figure(fig, path)


def spectra_plot(doc: Mapping[str, Any], path: Path) -> Path | None:
    if not any("spectrum" in m or "renders" in m for m in doc["models"].values()):
        return None
    plt = pyplot()
    curves = [("class gradient", ("spectrum", "relative_spectrum"))]
    if any("renders" in m for m in doc["models"].values()):
        curves.append(("class renders", ("renders", "class_relative_spectrum")))
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), squeeze=False)
    for ax, (title, (part, key)) in zip(axes[0], curves):
        for name, m in doc["models"].items():
            values = m.get(part, {}).get(key)
            if values:
                ax.plot(range(1, len(values)), [np.nan if v is None else v for v in values[1:]], label=name)
        ax.axhline(1.0, color="k", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("frequency (cycles per image)")
        ax.set_ylabel("power relative to the photos")
        ax.set_title(title)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def bands_plot(doc: Mapping[str, Any], path: Path) -> Path | None:
    models = {n: m for n, m in doc["models"].items() if "bands" in m}
    if not models:
        return None
    plt = pyplot()
    levels = list(next(iter(models.values()))["bands"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.8 / len(models)
    for j, (name, m) in enumerate(models.items()):
        x = np.arange(len(levels)) + j * width
        axes[0].bar(x, [_share(m["bands"][lv]["removed_correct"]) for lv in levels], width, label=name)
        axes[1].bar(x, [_share(m["bands"][lv]["ig_per_pixel"]) for lv in levels], width, label=name)
    for ax, title in zip(axes, ("accuracy with the band removed", "IG energy per pixel in the band (1: uniform)")):
        ax.set_xticks(
            np.arange(len(levels)) + width * (len(models) - 1) / 2, [f"band {lv} (coarse=0)" for lv in levels]
        )
        ax.set_title(title)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    return save_figure(fig, path)


def cka_plot(doc: Mapping[str, Any], path: Path) -> Path | None:
    subject = doc["subject"]
    pairs = [(k, m) for k, m in doc.get("cka", {}).items() if subject in k.split("|")]
    if not pairs:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs), 3.4), squeeze=False)
    for ax, (pair, matrix) in zip(axes[0], pairs):
        a, b = pair.split("|")
        rows, cols = list(matrix), list(next(iter(matrix.values())))
        grid = np.array([[matrix[r][c] for c in cols] for r in rows])
        if b != subject:  # the top-down net on the rows of every panel
            grid, rows, cols, a, b = grid.T, cols, rows, b, a
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(cols)), cols, rotation=45, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_ylabel(b)
        ax.set_xlabel(a)
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w" if v < 0.6 else "k")
    fig.colorbar(im, ax=axes[0, -1], shrink=0.8, label="linear CKA")
    return save_figure(fig, path)


def localization_plot(
    nets: Mapping[str, nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    flower: torch.Tensor,
    path: Path,
    *,
    ig_steps: int = 16,
) -> Path:
    """Each of ``images`` (a few), its flower mask, then every method's positive map for every model."""
    plt = pyplot()
    cols = [(name, method) for name in nets for method in LOCALIZATION_METHODS]
    fig, axes = plt.subplots(
        len(images), 2 + len(cols), figsize=(1.3 * (2 + len(cols)), 1.45 * len(images)), squeeze=False
    )
    maps = {}
    for name, net in nets.items():
        for method, (captum, which) in LOCALIZATION_METHODS.items():
            layer = cam_stage(net, which, images.shape[-1]) if which else None
            maps[name, method] = attribute(net, images, labels, captum, layer, n_steps=ig_steps).sum(1).clamp_min(0)
    for i in range(len(images)):
        axes[i, 0].imshow(images[i].permute(1, 2, 0).clamp(0, 1).numpy())
        axes[i, 1].imshow(flower[i].numpy(), cmap="gray")
        for j, key in enumerate(cols):
            axes[i, 2 + j].imshow(maps[key][i].detach().numpy(), cmap="magma")
    titles = ["image", "flower mask", *(f"{n}\n{m.replace('_', ' ')}" for n, m in cols)]
    for j, t in enumerate(titles):
        axes[0, j].set_title(t, fontsize=6)
    for ax in axes.flat:
        ax.set_axis_off()
    return save_figure(fig, path)


def make_plots(doc: Mapping[str, Any], out: Path) -> list[Path]:
    """Every figure ``doc`` allows (all but the localization maps, which need the nets) into ``out``."""
    makers = {"hybrids.png": hybrid_plot, "spectra.png": spectra_plot, "bands.png": bands_plot, "cka.png": cka_plot}
    return write_figures([(makers[name], name) for name in FIGURES if name in makers], doc, out)
