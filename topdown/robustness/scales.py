"""Per-scale ablation: perturb one pyramid level at a time and see which one hurts most.

Pyramid level ``i`` (coarse to fine, ``i = 0 .. L-1``) has downscaling factor ``f_i = 2**(L-1-i)``. A
perturbation is a tensor ``delta`` at that level's resolution, the same for both models (seeded per image
and level):

* **top-down** net: ``delta`` is added to level ``i`` of the net's own pyramid (``net.pyramid(x)``), the
  other levels untouched, and the net is fed the pyramid (the paper's ``_multi`` protocol).
* **baseline**: it has no pyramid, so ``delta`` enters the image through the band of frequencies that
  level ``i`` adds to the pyramid, ``B_i(delta)``: ``u = up_{f_i}(delta)`` (bilinear), then, for ``i > 0``,
  ``BAND_ITERATIONS`` times ``u <- u - up_{2 f_i}(down_{2 f_i}(u))``, where ``down`` is the pyramid's own
  Gaussian downscaling of the full image. Each pass removes what the next coarser level would see of ``u``
  (one pass is a Laplacian-pyramid band; a Gaussian pyramid's levels overlap in frequency, so one pass
  leaves ~29 % (finest) / ~64 % (middle) of the level's RMS visible one level up; three leave ~10 % / ~23 %).
  The coarsest level keeps the whole low-pass part. ``B_i`` is linear, so PGD on ``delta`` through it is an
  attack restricted to that band. The baseline sees ``clip(x + B_i(z' - z), 0, 1)``, with ``z =
  down_{f_i}(x)`` its "virtual" level ``i`` and ``z' = clip(z + delta, 0, 1)``.

Both get the same ``delta`` under the same budget (noise std, or Linf epsilon at the level's resolution),
and the image-space L2 size of what the baseline received is reported beside it. The two are comparable in
what is perturbed (the information at one scale), not in pixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models import is_topdown
from ..models.pyramid import downscale
from .attacks import derive_seed, fool_model, seeded
from .sweep import Perturbed, Sweep


def level_factors(num_levels: int) -> list[int]:
    """Downscaling factor of each level, coarse to fine."""
    return [2 ** (num_levels - 1 - i) for i in range(num_levels)]


def _up(t: torch.Tensor, factor: int) -> torch.Tensor:
    if factor == 1:
        return t
    return F.interpolate(t, scale_factor=factor, mode="bilinear", align_corners=False)


BAND_ITERATIONS = 3


def band(delta: torch.Tensor, level: int, num_levels: int, iterations: int = BAND_ITERATIONS) -> torch.Tensor:
    """``B_level(delta)``: a level-resolution tensor mapped into its image band at full resolution."""
    f = level_factors(num_levels)[level]
    u = _up(delta, f)
    if level > 0:
        for _ in range(iterations):
            u = u - _up(downscale(u, 2 * f, "gaussian"), 2 * f)  # drop what the next coarser level sees
    return u


class LevelInput(nn.Module):
    """``z -> logits`` for one pyramid level ``z``, every other input held fixed (per batch, by
    :meth:`set_context`). foolbox attacks this module, so its bounds check and clipping act on the level.
    """

    def __init__(self, net: nn.Module, level: int, num_levels: int) -> None:
        super().__init__()
        self.net = net
        self.level = level
        self.num_levels = num_levels
        self.topdown = is_topdown(net)
        self._ctx: list[torch.Tensor] = []
        self.train(net.training)  # foolbox warns about (and mistrusts) a module in training mode

    def set_context(self, x: torch.Tensor) -> torch.Tensor:
        """Hold the batch ``x`` fixed; returns its clean level (the attack's starting input)."""
        with torch.no_grad():
            if self.topdown:
                self._ctx = [t.detach() for t in self.net.pyramid(x)]
                return self._ctx[self.level]
            z = downscale(x, level_factors(self.num_levels)[self.level], "gaussian").detach()
            self._ctx = [x.detach(), z]
            return z

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.topdown:
            levels = list(self._ctx)
            levels[self.level] = z
            return self.net(levels)
        x, z0 = self._ctx
        return self.net(self.image(x, z0, z))

    def image(self, x: torch.Tensor, z0: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The baseline's image for a perturbed virtual level ``z``."""
        return (x + band(z - z0, self.level, self.num_levels)).clamp(0, 1)


def num_levels_of(net: nn.Module, default: int) -> int:
    """The levels of ``net``'s image pyramid; ``default`` (the image bands to ablate) for a net without one."""
    return net.pyramid.num_levels if is_topdown(net) else default


def _noise(shape: Sequence[int], indices: np.ndarray, seed: int, level: int) -> torch.Tensor:
    gens = [torch.Generator().manual_seed(derive_seed(seed, "scale-noise", level, int(i))) for i in indices]
    return torch.stack([torch.randn(list(shape), generator=g) for g in gens])


def _each_level(
    sw: Sweep, num_levels: int, strengths: int, perturb: Callable[[LevelInput, int], Perturbed]
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and mean L2 of the change, each ``[level][strength]``, one level perturbed at a time:
    ``perturb(model, level)`` perturbs a batch at every strength through ``model``, the net seen from that level."""
    acc = np.zeros((num_levels, strengths))
    mean_l2 = np.zeros((num_levels, strengths))
    for lvl in range(num_levels):
        correct, l2 = sw.run(strengths, perturb(LevelInput(sw.net, lvl, num_levels), lvl))
        acc[lvl] = correct.mean(1)
        mean_l2[lvl] = l2.mean(1)
    return acc, mean_l2


@torch.no_grad()
def scale_noise(sw: Sweep, num_levels: int, sigmas: list[float], seed: int) -> dict[str, Any]:
    """Gaussian noise of each std in ``sigmas`` on one level at a time (see the module docstring); ``sw``'s
    test-split indices seed the noise."""
    start = time.perf_counter()

    def noise(model: LevelInput, lvl: int) -> Perturbed:
        def perturbed(xb: torch.Tensor, yb: torch.Tensor, rows: slice) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
            z0 = model.set_context(xb)
            g = _noise(z0.shape[1:], sw.indices[rows], seed, lvl).to(z0)
            for s in sigmas:
                z = (z0 + s * g).clamp(0, 1)
                yield model(z), _l2(model, xb, z0, z)

        return perturbed

    acc, mean_l2 = _each_level(sw, num_levels, len(sigmas), noise)
    return _summary("noise", sw.net, num_levels, "sigma", sigmas, acc, mean_l2, seed, start)


def scale_pgd(
    sw: Sweep, num_levels: int, epsilons: list[float], steps: int, rel_stepsize: float, seed: int
) -> dict[str, Any]:
    """Linf PGD (foolbox) on one level at a time, the other inputs fixed."""
    import foolbox.attacks as fa  # foolbox (and GitPython under it) only when an attack runs

    start = time.perf_counter()
    attack = fa.LinfProjectedGradientDescentAttack(rel_stepsize=rel_stepsize, steps=steps, random_start=True)

    def pgd(model: LevelInput, lvl: int) -> Perturbed:
        fmodel = fool_model(model, sw.device)

        def perturbed(xb: torch.Tensor, yb: torch.Tensor, rows: slice) -> list[tuple[torch.Tensor, np.ndarray]]:
            with torch.inference_mode(False), torch.enable_grad():
                xb, yb = xb.clone(), yb.clone()
                z0 = model.set_context(xb).clone()
                with seeded(derive_seed(seed, "scale-pgd", lvl, rows.start // sw.batch_size)):
                    _, advs, _ = attack(fmodel, z0, yb, epsilons=list(epsilons))
                with torch.no_grad():
                    return [(model(z), _l2(model, xb, z0, z)) for z in advs]

        return perturbed

    acc, mean_l2 = _each_level(sw, num_levels, len(epsilons), pgd)
    out = _summary("pgd", sw.net, num_levels, "epsilon", epsilons, acc, mean_l2, seed, start)
    out["settings"] = {"steps": steps, "rel_stepsize": rel_stepsize, "random_start": True, "norm": "linf"}
    return out


def _l2(model: LevelInput, x: torch.Tensor, z0: torch.Tensor, z: torch.Tensor) -> np.ndarray:
    """L2 size of the change: in image space for the baseline, at the level's resolution for the top-down
    net (which sees the level itself)."""
    delta = (model.image(x, z0, z) - x) if not model.topdown else (z - z0)
    return delta.flatten(1).double().norm(dim=1).cpu().numpy()


def _summary(
    kind: str,
    net: nn.Module,
    num_levels: int,
    strength_name: str,
    strengths: list[float],
    acc: np.ndarray,
    mean_l2: np.ndarray,
    seed: int,
    start: float,
) -> dict[str, Any]:
    worst = int(np.argmin(acc.mean(1)))  # lowest accuracy averaged over the strengths
    factors = level_factors(num_levels)
    return {
        "kind": kind,
        "mode": "pyramid_level" if is_topdown(net) else "image_band",
        "levels": list(range(num_levels)),
        "factors": factors,
        strength_name + "s": [float(s) for s in strengths],
        "strength": strength_name,
        "accuracy": acc.tolist(),  # [level][strength]
        # mean L2 of the change: of the image (baseline) or of the level (top-down)
        "l2_space": "pyramid level" if is_topdown(net) else "image",
        "mean_l2": mean_l2.tolist(),
        "most_harmful_level": worst,
        "most_harmful_factor": factors[worst],
        "most_harmful_per_strength": [int(i) for i in np.argmin(acc, axis=0)],
        "seed": seed,
        "time_s": time.perf_counter() - start,
    }
