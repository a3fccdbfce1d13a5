"""Network dissection of every stage on the procedural flowers' part masks, so two nets are compared at the stages
whose maps have the same resolution (the top-down net's late stages are fine where the baseline's are coarse).
Each unit's IoU with its best part is set against the same with the masks shuffled between images (chance)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from ..vis.dissection import dissect
from .localization import stage_resolutions

#: The procedural flowers' mask values, in order.
PARTS = ("background", "petals", "centre")


def stage_detectors(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor,
    quantile: float = 0.95,
    layers: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per stage (or per one of ``layers``): its map's ``side``, the units, the detectors per part (best IoU >=
    0.04, NetDissect's rule), and the mean best IoU against its shuffled-mask chance level."""
    stages = list(layers or net.stage_names())
    sides = stage_resolutions(net, images.shape[-1], stages)
    out = {}
    for stage in stages:
        d = dissect(net, stage, TensorDataset(images, labels), masks, PARTS, quantile=quantile)
        out[stage] = {"side": sides[stage], **d.summary()}
    return out


def matched_stages(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> list[tuple[int, str, str]]:
    """``(side, stage of a, stage of b)`` for every map side both nets have (the later stage of each on a tie),
    finest first."""

    def last_at(rec: dict[str, dict[str, Any]]) -> dict[int, str]:
        out: dict[int, str] = {}
        for stage, r in rec.items():
            out[r["side"]] = stage
        return out

    la, lb = last_at(a), last_at(b)
    return [(side, la[side], lb[side]) for side in sorted(set(la) & set(lb), reverse=True)]


def detector_rows(models: dict[str, dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """For the first two of ``names`` (each model's ``detectors`` record): one row per matched side."""
    a, b = names[0], names[1]
    rows = []
    for side, sa, sb in matched_stages(models[a]["detectors"], models[b]["detectors"]):
        rows.append(
            {
                "side": side,
                a: {"stage": sa, **models[a]["detectors"][sa]},
                b: {"stage": sb, **models[b]["detectors"][sb]},
            }
        )
    return rows
