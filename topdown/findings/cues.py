"""Which cue a decision follows, on the procedural flowers, whose classes cross a coarse *form* with a fine
*pattern* (``class_table``: class c is form c // 2, pattern c % 2 for up to 12 classes).

- Hybrids: the low-pass band of one flower plus the high-pass band of another that differs from it in both form
  and pattern. A decision whose form is the first flower's follows the coarse image; one whose pattern is the
  second's follows the fine image.
- Band accuracy: the form and the pattern of the decision scored apart, on low-passed and on high-passed images.
- Pyramid swaps (top-down nets): the coarse levels of one flower's pyramid, the fine levels of the other's.

Every figure is per image, so two nets are compared on the same images with a paired test.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..batches import map_batches
from ..models.pyramid import gaussian_blur


def lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``sigma`` px: what a coarse level keeps."""
    return gaussian_blur(x, sigma)


def highpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """What the blur removes, on the image's own mean colour (so it stays an image in [0, 1])."""
    return (x - lowpass(x, sigma) + x.mean(dim=(-2, -1), keepdim=True)).clamp(0, 1)


def hybrid(coarse: torch.Tensor, fine: torch.Tensor, sigma: float) -> torch.Tensor:
    """``coarse``'s low-pass band plus ``fine``'s high-pass band."""
    return (lowpass(coarse, sigma) + fine - lowpass(fine, sigma)).clamp(0, 1)


def partners(forms: Sequence[int], patterns: Sequence[int], seed: int = 0) -> np.ndarray:
    """For each image, another one that differs from it in both form and pattern (seeded draw)."""
    forms, patterns = np.asarray(forms), np.asarray(patterns)
    rng = np.random.default_rng(seed)
    out = np.empty(len(forms), dtype=np.int64)
    for i in range(len(forms)):
        pool = np.flatnonzero((forms != forms[i]) & (patterns != patterns[i]))
        if not len(pool):
            raise ValueError("cue tests need images of at least two forms and two patterns")
        out[i] = rng.choice(pool)
    return out


def _factors(
    table: Sequence[tuple[int, int]], labels: torch.Tensor, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each class's form and pattern, and each image's partner (:func:`partners`)."""
    form = torch.tensor([f for f, _ in table])
    pattern = torch.tensor([p for _, p in table])
    return form, pattern, torch.from_numpy(partners(form[labels].tolist(), pattern[labels].tolist(), seed))


@torch.no_grad()
def predict(net: nn.Module, x: torch.Tensor | Sequence[torch.Tensor], batch_size: int = 128) -> torch.Tensor:
    """Top-1 class of every image (or of every pyramid, given as its list of levels)."""
    net.eval()
    return map_batches(lambda chunk: net(chunk).argmax(1), x, batch_size=batch_size)


def cue_reliance(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    table: Sequence[tuple[int, int]],
    sigmas: Sequence[float],
    seed: int = 0,
) -> dict[str, dict[str, list[bool]]]:
    """Per cut-off (``"sigma=2"``): hybrids' ``follows_form`` (of the coarse image) and ``follows_pattern`` (of
    the fine image); low- and high-passed images' ``form_correct`` and ``pattern_correct``; one bool per image."""
    form, pattern, other = _factors(table, labels, seed)
    out: dict[str, dict[str, list[bool]]] = {}
    for sigma in sigmas:
        mixed = predict(net, hybrid(images, images[other], sigma))
        low = predict(net, lowpass(images, sigma))
        high = predict(net, highpass(images, sigma))
        out[f"sigma={sigma:g}"] = {
            "follows_form": (form[mixed] == form[labels]).tolist(),
            "follows_pattern": (pattern[mixed] == pattern[labels[other]]).tolist(),
            "lowpass_form_correct": (form[low] == form[labels]).tolist(),
            "lowpass_pattern_correct": (pattern[low] == pattern[labels]).tolist(),
            "highpass_form_correct": (form[high] == form[labels]).tolist(),
            "highpass_pattern_correct": (pattern[high] == pattern[labels]).tolist(),
        }
    return out


def pyramid_swaps(
    net: nn.Module, images: torch.Tensor, labels: torch.Tensor, table: Sequence[tuple[int, int]], seed: int = 0
) -> dict[str, dict[str, list[bool]]]:
    """For a top-down net: per split ``k`` (``"coarse_levels=k"``), the first ``k`` pyramid levels from one flower
    and the rest from its partner; does the decision take the form of the first, the pattern of the second?"""
    form, pattern, other = _factors(table, labels, seed)
    with torch.no_grad():
        levels_a, levels_b = net.pyramid(images), net.pyramid(images[other])
    out = {}
    for k in range(1, len(levels_a)):
        mixed = predict(net, [*levels_a[:k], *levels_b[k:]])
        out[f"coarse_levels={k}"] = {
            "follows_form": (form[mixed] == form[labels]).tolist(),
            "follows_pattern": (pattern[mixed] == pattern[labels[other]]).tolist(),
        }
    return out
