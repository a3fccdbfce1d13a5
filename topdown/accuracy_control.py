"""Choosing the accuracy control: the baseline's epoch whose accuracy is nearest the top-down net's final one, so
that a robustness difference cannot come from the top-down net being less accurate. Pure functions of logged
accuracies (the pipeline gives them and records the choice)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import ConfigError


def epoch_val_acc(run: Path) -> dict[int, float]:
    """``{epoch: val/acc}`` from a training run's CSV logs (every version: a resumed run logs in a new one; the
    latest value of an epoch wins)."""
    out: dict[int, float] = {}
    for path in sorted((run / "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1])):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("val/acc") not in (None, "") and row.get("epoch") not in (None, ""):
                    out[int(float(row["epoch"]))] = float(row["val/acc"])
    return out


def nearest_epoch(epochs: Sequence[int], goal: float, measure: Callable[[int], float], stride: int = 5) -> int:
    """The epoch whose accuracy (``measure(epoch)``) is nearest ``goal``, the later on a tie, measuring few:
    every ``stride``-th epoch and the last, then every epoch within ``stride`` places of the nearest of those.
    The answer is the nearest of all wherever accuracy rises with the epoch, as it does under a one-cycle
    schedule (bar a point of noise between neighbours)."""
    order = sorted(epochs)
    if not order:
        raise ConfigError("no epochs to choose from")
    seen: dict[int, float] = {}

    def key(i: int) -> tuple[float, int]:
        e = order[i]
        if e not in seen:
            seen[e] = measure(e)
        return abs(seen[e] - goal), -e

    coarse = sorted({*range(0, len(order), stride), len(order) - 1})
    best = min(coarse, key=key)
    return order[min(range(max(0, best - stride), min(len(order), best + stride + 1)), key=key)]


def nearest_on_validation(target: dict[int, float], curve: dict[int, float]) -> tuple[int, float]:
    """``(epoch, goal)``: the baseline's epoch (``curve``: ``{epoch: val/acc}``) whose validation accuracy is
    nearest the top-down net's final one (``target``'s last epoch), the later epoch on a tie."""
    goal = target[max(target)]
    return min(curve, key=lambda e: (abs(curve[e] - goal), -e)), goal
