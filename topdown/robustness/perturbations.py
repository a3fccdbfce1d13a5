"""The reference paper's perturbations, measured as accuracy against the perturbation's L2 size.

Lelekas et al. ran foolbox 2's noise, blur, contrast and spatial attacks and plotted accuracy against each
image's smallest fooling L2 distance. Here every perturbation is a seeded function ``apply(x, level, draws)``
swept over increasing levels from the identity (level 0). Per image the random draw is fixed across levels
(noise is scaled, salt-and-pepper pixels are nested, the shift direction and rotation sign are kept), so a
higher level is the same perturbation made stronger, as in foolbox's line searches.

For each image ``i``, ``min_l2[i]`` is the smallest L2 norm ``||x' - x||_2`` over the levels whose image the
model misclassifies (``0`` if the clean image is already wrong, ``inf`` if no level fools it). Then
``accuracy(t) = mean(min_l2 > t)`` is the paper's curve, non-increasing by construction and equal to the
clean accuracy at ``t = 0``. Its normalised area under the curve up to ``l2_max`` (the mean L2 of the
strongest level over the images, which depends on the data and the seed only, so it is the same for every
model) is ``auc = mean_i min(min_l2[i], l2_max) / l2_max``: 0 for a model fooled by anything, the clean
accuracy for a model that the sweep never fools.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..models.pyramid import gaussian_blur
from .attacks import derive_seed
from .sweep import Sweep

#: Draws are generated per image from ``(seed, name, image index)``: independent of batching and subsets.
Draws = dict[str, torch.Tensor]


def _noise_draws(x: torch.Tensor, gens: list[torch.Generator]) -> Draws:
    return {"z": torch.stack([torch.randn(x.shape[1:], generator=g) for g in gens])}


def _uniform_draws(x: torch.Tensor, gens: list[torch.Generator]) -> Draws:
    return {"u": torch.stack([torch.rand(x.shape[1:], generator=g) * 2 - 1 for g in gens])}


def _pixel_draws(x: torch.Tensor, gens: list[torch.Generator]) -> Draws:
    # one uniform per pixel location (all channels together, as foolbox's salt and pepper) and a coin
    h, w = x.shape[-2:]
    return {
        "u": torch.stack([torch.rand(1, h, w, generator=g) for g in gens]),
        "salt": torch.stack([torch.rand(1, h, w, generator=g) < 0.5 for g in gens]),
    }


def _direction_draws(x: torch.Tensor, gens: list[torch.Generator]) -> Draws:
    # one of 8 directions for shifts; a sign for rotations
    k = torch.stack([torch.randint(0, 8, (1,), generator=g) for g in gens]).view(-1)
    angle = k.double() * (math.pi / 4)
    return {"dir": torch.stack([torch.cos(angle), torch.sin(angle)], 1), "sign": (k % 2).double() * 2 - 1}


def _no_draws(x: torch.Tensor, gens: list[torch.Generator]) -> Draws:
    return {}


def gaussian_noise(x: torch.Tensor, level: float, d: Draws, scale: float) -> torch.Tensor:
    return (x + level * d["z"].to(x)).clamp(0, 1)


def uniform_noise(x: torch.Tensor, level: float, d: Draws, scale: float) -> torch.Tensor:
    return (x + level * d["u"].to(x)).clamp(0, 1)


def salt_and_pepper(x: torch.Tensor, level: float, d: Draws, scale: float) -> torch.Tensor:
    hit = d["u"].to(x.device) < level  # nested: a pixel hit at one level is hit at every higher level
    value = d["salt"].to(x)
    return torch.where(hit, value.expand_as(x), x)


def blur(x: torch.Tensor, level: float, d: Draws, scale: float) -> torch.Tensor:
    return gaussian_blur(x, level * scale)


def contrast(x: torch.Tensor, level: float, d: Draws, scale: float) -> torch.Tensor:
    # Blend towards mid-grey, the middle of the bounds (foolbox's contrast reduction).
    return (1 - level) * x + level * 0.5


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    # Zero (black) fill outside the image and bilinear resampling, like foolbox's spatial attack.
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0, 1)


def shift(x: torch.Tensor, level: float, d: Draws, scale: float) -> torch.Tensor:
    n, _, h, w = x.shape
    pixels = level * scale
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    # affine_grid works in [-1, 1] coordinates: one pixel is 2 / size
    theta[:, 0, 2] = -d["dir"][:, 0] * pixels * 2 / w
    theta[:, 1, 2] = -d["dir"][:, 1] * pixels * 2 / h
    return _affine(x, theta) if level else x


def rotation(x: torch.Tensor, level: float, d: Draws, scale: float) -> torch.Tensor:
    n = x.shape[0]
    a = d["sign"] * math.radians(level)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = torch.cos(a)
    theta[:, 0, 1] = -torch.sin(a)
    theta[:, 1, 0] = torch.sin(a)
    theta[:, 1, 1] = torch.cos(a)
    return _affine(x, theta) if level else x


PerturbFn = Callable[[torch.Tensor, float, Draws, float], torch.Tensor]

#: name -> (apply, draw, unit of the level, whether the level scales with image size / 32)
PERTURBATIONS: dict[str, tuple[PerturbFn, Callable[..., Draws], str, bool]] = {
    "gaussian_noise": (gaussian_noise, _noise_draws, "std", False),
    "uniform_noise": (uniform_noise, _uniform_draws, "half-width", False),
    "salt_and_pepper": (salt_and_pepper, _pixel_draws, "fraction of pixels", False),
    "gaussian_blur": (blur, _no_draws, "sigma (px at 32 px)", True),
    "contrast": (contrast, _no_draws, "blend to grey", False),
    "shift": (shift, _direction_draws, "px at 32 px", True),
    "rotation": (rotation, _direction_draws, "degrees", False),
}


def draws_for(name: str, x: torch.Tensor, indices: np.ndarray, seed: int) -> Draws:
    """The random draws of ``name`` for images whose dataset indices are ``indices``."""
    gens = [torch.Generator().manual_seed(derive_seed(seed, "perturbation", name, int(i))) for i in indices]
    return PERTURBATIONS[name][1](x, gens)


def apply_perturbation(name: str, x: torch.Tensor, level: float, draws: Draws) -> torch.Tensor:
    """Perturb a batch ``x`` in [0, 1] at ``level`` with its per-image ``draws`` (:func:`draws_for`)."""
    fn, _, _, scaled = PERTURBATIONS[name]
    scale = x.shape[-1] / 32 if scaled else 1.0
    return fn(x, float(level), draws, scale) if level else x


@torch.no_grad()
def run_perturbation(sw: Sweep, name: str, levels: list[float], seed: int) -> dict[str, Any]:
    """Sweep one perturbation over ``levels`` and measure accuracy against L2 (see the module docstring).

    Args:
        sw: the model and the images (their test-split indices seed the draws).
        name: one of :data:`PERTURBATIONS`.
        levels: increasing, starting at 0.
        seed: the suite seed.
    """
    start = time.perf_counter()
    n = len(sw.x)

    def perturbed(xb: torch.Tensor, yb: torch.Tensor, rows: slice) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        draws = {k: v.to(sw.device) for k, v in draws_for(name, xb, sw.indices[rows], seed).items()}
        for level in levels:
            xp = apply_perturbation(name, xb, level, draws)
            yield sw.net(xp), (xp - xb).flatten(1).double().norm(dim=1).cpu().numpy()

    correct, l2 = sw.run(len(levels), perturbed)
    min_l2 = np.where(~correct, l2, np.inf).min(axis=0)
    min_l2[~correct[0]] = 0.0  # level 0 is the identity: a misclassified clean image is broken at 0
    l2_max = float(l2[-1].mean())
    grid = np.linspace(0, l2_max, 51)
    finite = min_l2[np.isfinite(min_l2)]
    return {
        "name": name,
        "unit": PERTURBATIONS[name][2],
        "levels": [float(v) for v in levels],
        "seed": seed,
        "accuracy_per_level": correct.mean(axis=1).tolist(),
        "mean_l2_per_level": l2.mean(axis=1).tolist(),
        "min_l2": [None if not math.isfinite(v) else float(v) for v in min_l2],
        "l2_grid": grid.tolist(),
        "accuracy_vs_l2": [float((min_l2 > t).mean()) for t in grid],
        "l2_max": l2_max,
        "auc": float(np.minimum(min_l2, l2_max).mean() / l2_max) if l2_max > 0 else math.nan,
        "median_min_l2": float(np.median(min_l2)) if n else math.nan,
        "fooled_fraction": float(np.isfinite(min_l2).mean()),
        "mean_fooling_l2": float(finite.mean()) if len(finite) else None,
        "time_s": time.perf_counter() - start,
    }
