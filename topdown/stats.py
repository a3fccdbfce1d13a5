"""Paired tests of two models on the same images: the rule every verdict of the project rests on; and how a figure
over seeds is written."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest, wilcoxon


def paired_p_value(reference: Sequence[bool], topdown: Sequence[bool]) -> float:
    """Two-sided exact McNemar test of two models' per-image outcomes on the same images: under the null
    hypothesis, an image where exactly one of them succeeds is as likely to favour either (a binomial with
    p = 1/2 over the discordant images). 1.0 where no image is discordant."""
    if len(reference) != len(topdown):
        raise ValueError(f"paired test: {len(reference)} against {len(topdown)} images")
    only_td = sum(bool(t) and not r for r, t in zip(reference, topdown))
    only_ref = sum(bool(r) and not t for r, t in zip(reference, topdown))
    if only_td + only_ref == 0:
        return 1.0
    return float(binomtest(only_td, only_td + only_ref, 0.5).pvalue)


def paired_rank_p_value(reference: Sequence[float], other: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank test of two models' per-image figures on the same images (pairs with
    no difference dropped); 1.0 where every pair is equal."""
    a, b = np.asarray(reference, dtype=float), np.asarray(other, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired test: {len(a)} against {len(b)} images")
    keep = np.isfinite(a) & np.isfinite(b) & (a != b)
    if not keep.any():
        return 1.0
    return float(wilcoxon(a[keep], b[keep]).pvalue)


def mean_std(values: Sequence[float], scale: float = 100.0, digits: int = 1, signed: bool = False) -> str:
    """The one way a figure over seeds is written: ``12.3 ± 1.1`` (``+12.3 ± 1.1`` where ``signed``), just the
    value for one seed, ``–`` for none; ``scale`` turns a fraction into points or percent."""
    if not values:
        return "–"
    mean = f"{statistics.fmean(values) * scale:{'+' if signed else ''}.{digits}f}"
    return mean if len(values) == 1 else f"{mean} ± {statistics.stdev(values) * scale:.{digits}f}"
