"""Which frequency bands a decision rests on, on any images (real photos included), with the robustness suite's
band split (:func:`topdown.robustness.scales.band`): band ``i`` of an image is what pyramid level ``i`` adds to
the coarser levels (level 0, the coarsest, keeps the whole low-pass part).

Per image and band: is the decision still right with that band removed (``removed_correct``), and what share of
the integrated-gradients energy lies in that band, normalized per pixel (``ig_per_pixel``: the band's share of the
energy over its share of the frequency plane, so 1 is an attribution spread like white noise and a band that
holds few coefficients is not read as unimportant for holding little energy).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models.pyramid import downscale
from ..robustness.scales import band, level_factors
from .cues import predict
from .localization import attributions

#: Levels of the split when no net in the comparison has a pyramid (the reference top-down net's three).
DEFAULT_LEVELS = 3


def bands(x: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """The image's component in every band, coarse to fine, each at full resolution."""
    out = []
    for level, f in enumerate(level_factors(num_levels)):
        out.append(band(downscale(x, f, "gaussian"), level, num_levels))
    return out


def plane_shares(size: int, num_levels: int) -> list[float]:
    """Each band's share of the frequency plane: the coefficients its level adds to the coarser ones."""
    sides = [size // f for f in level_factors(num_levels)]
    counts = [sides[0] ** 2] + [b**2 - a**2 for a, b in zip(sides, sides[1:])]
    return [c / size**2 for c in counts]


def band_reliance(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_levels: int = DEFAULT_LEVELS,
    ig_steps: int = 32,
    ig: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Per band ``"level=i"``: ``removed_correct`` (one bool per image) and ``ig_per_pixel`` (one share per
    image); ``plane_share`` (the band's share of the frequency plane) and ``image_per_pixel`` (the images' own
    energy per band, normalized alike, for reference). ``ig``: the images' integrated gradients where already
    computed."""
    planes = plane_shares(images.shape[-1], num_levels)
    parts = bands(images, num_levels)
    mean = images.mean(dim=(-2, -1), keepdim=True)
    out: dict[str, Any] = {}
    maps = ig if ig is not None else attributions(net, images, labels, "integrated_gradients", n_steps=ig_steps)
    energy = torch.stack([p.pow(2).flatten(1).sum(1) for p in bands(maps, num_levels)], 1)  # (N, levels)
    shares = energy / energy.sum(1, keepdim=True).clamp_min(1e-30)
    own = torch.stack([p.pow(2).flatten(1).sum(1) for p in parts], 1)
    own = own / own.sum(1, keepdim=True).clamp_min(1e-30)
    for level, part in enumerate(parts):
        removed = (images - part + (mean if level == 0 else 0)).clamp(0, 1)
        out[f"level={level}"] = {
            "removed_correct": (predict(net, removed) == labels).tolist(),
            "ig_per_pixel": (shares[:, level] / planes[level]).tolist(),
            "plane_share": planes[level],
            "image_per_pixel": float((own[:, level] / planes[level]).mean()),
        }
    return out
