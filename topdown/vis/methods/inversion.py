"""Methods that start from real images: amplify what a layer sees in them (``dream``), push its activation
further along what it saw (``caricature``) and reconstruct them from the layer's activation (``inversion``).
Each method's settings, its algorithm and its class the runner calls sit together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import objectives as O
from .. import quality as Q
from ..hooks import activations, device_of
from ..param import ColorStats
from ..recipe import Recipe
from ..render import RenderResult, evaluate
from ..transforms import Compose
from .base import Job, Method, Outcome, row, rows, scaled_steps


# dream and caricature: amplify what the layer sees in real images
@dataclass
class DreamSettings:
    """``dream`` and ``caricature``: start from real images and amplify what the layer sees.

    Args:
        steps_scale: render steps as a multiple of ``steps`` (starting from a real image, fewer are needed).
        min_steps: at least this many steps.
        lr: Adam learning rate (smaller than the shared one: the image must stay recognizable).
    """

    steps_scale: float = 0.25
    min_steps: int = 16
    lr: float = 0.02


def _amplify(
    model: nn.Module,
    images: torch.Tensor,
    make_objective: Callable[[torch.Tensor], O.Objective],
    recipe: Recipe | None,
    color: ColorStats | None,
    record: dict[str, Any],
) -> RenderResult:
    """Start at ``images`` and raise ``make_objective(images)``, normalized per image by its value on ``images``
    (so every image pushes equally hard); ``values`` is the raw objective of the result."""
    recipe = recipe or Recipe(steps=32, lr=0.02)
    images = images.to(device_of(model))
    objective = make_objective(images)
    start = evaluate(model, objective, images).abs().clamp_min(1e-6)
    layer = objective.layers[0]
    obj = O.Objective(lambda a: objective(a) / start.to(a[layer].device), objective.layers, f"{objective.name} / start")
    if recipe.tv_weight:
        obj = obj - recipe.tv_weight * O.total_variation()
    r = recipe.render(model, obj, recipe.param_from(images, color))
    r.values = evaluate(model, objective, r.images)
    r.recipe = {**record, **recipe.to_dict(), "start_values": start.tolist()}
    return r


def dream(
    model: nn.Module,
    images: torch.Tensor,
    layer: str,
    recipe: Recipe | None = None,
    color: ColorStats | None = None,
) -> RenderResult:
    """Deep dream: start at ``images`` and amplify everything ``layer`` responds to (mean squared
    activation, normalized by its value on the original images)."""
    record = {"method": "dream", "layer": layer}
    return _amplify(model, images, lambda x: O.deepdream(layer), recipe, color, record)


def caricature(
    model: nn.Module,
    images: torch.Tensor,
    layer: str,
    recipe: Recipe | None = None,
    color: ColorStats | None = None,
    cossim_pow: float = 1.0,
) -> RenderResult:
    """Caricature: start at ``images`` and push ``layer``'s activation further along what it was on
    them (dot product times cosine with the original activation)."""

    def objective(x: torch.Tensor) -> O.Objective:
        return O.caricature(layer, activations(model, x, [layer])[layer], cossim_pow)

    record = {"method": "caricature", "layer": layer, "cossim_pow": cossim_pow}
    return _amplify(model, images, objective, recipe, color, record)


class Dream(Method, name="dream", settings=DreamSettings):
    """Deep dream: from real images, amplify everything the layer responds to."""

    what = "amplify everything it responds to (mean squared activation)"  # for the description

    def render(self, job: Job, images: torch.Tensor, recipe: Any) -> Any:
        """The render that starts from ``images`` (the one thing a caricature does differently)."""
        return dream(job.net, images, job.layer, recipe, job.ctx.color)

    def start_values(self, job: Job, images: torch.Tensor, r: Any) -> torch.Tensor:
        """The objective on the untouched images, which the render must raise."""
        return torch.tensor(r.recipe["start_values"])

    def run(self, job: Job) -> Outcome:
        s, ctx = job.settings, job.ctx
        imgs, _ = ctx.real_images()
        recipe = ctx.recipe.with_(steps=scaled_steps(ctx.recipe.steps, s.steps_scale, s.min_steps), lr=s.lr)
        r = self.render(job, imgs, recipe)
        start = self.start_values(job, imgs, r)
        return Outcome(r.recipe, {"values": r.values.tolist(), "start": start.tolist()}, render=r, start=start)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        return {
            "objective_rises_from_start": Q.objective_rises(out.render.values.cpu(), out.start, threshold=0.8),
            **job.natural(out.render.images),
        }

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        imgs, _ = job.ctx.real_images()
        return rows([row("real", imgs), row(self.name, out.render.images)])

    def describe(self, job: Job, out: Outcome) -> str:
        return f"{self.name.title()}: start from real images and, at {job.layer}, {self.what}."


class Caricature(Dream, name="caricature"):
    """From real images, push the layer's activation further along what it saw."""

    what = "push its activation further along what it saw (dot product times cosine)"

    def render(self, job: Job, images: torch.Tensor, recipe: Any) -> Any:
        return caricature(job.net, images, job.layer, recipe, job.ctx.color)

    def start_values(self, job: Job, images: torch.Tensor, r: Any) -> torch.Tensor:
        objective = O.caricature(job.layer, activations(job.net, images, [job.layer])[job.layer])
        return evaluate(job.net, objective, images).cpu()


# inversion: images reconstructed from their activation (Mahendran & Vedaldi)
@dataclass
class InversionSettings:
    """``inversion``: reconstruct real images from the layer's activation.

    Args:
        min_images: at least this many images are inverted (the identification figure needs several).
        steps_scale: render steps as a multiple of ``steps`` (a whole activation is harder to match than
            one channel).
        lr: Adam learning rate.
        tv_weight: total-variation prior.
        transforms: random transforms during the render (off: the reconstruction must match pixel for pixel).
        redirect_relu_steps: steps with redirected ReLUs.
    """

    min_images: int = 4
    steps_scale: float = 2.0
    lr: float = 0.05
    tv_weight: float = 0.05
    transforms: bool = False
    redirect_relu_steps: int = 0


def invert(
    model: nn.Module,
    images: torch.Tensor,
    layer: str,
    recipe: Recipe | None = None,
    color: ColorStats | None = None,
    alpha: float = 6.0,
    alpha_weight: float = 1.0,
) -> RenderResult:
    """Feature inversion (Mahendran & Vedaldi 2015): from noise, find images whose ``layer`` activation
    matches that of ``images``, with an alpha-norm prior (``alpha_weight``, keeps pixels in range) and the
    recipe's total-variation prior (keeps them smooth). No transforms by default: the features must match
    exactly, not on average.

    ``values`` of the result is the relative feature error ``||phi(x) - phi(x0)|| / ||phi(x0)||``.
    """
    recipe = recipe or Recipe(steps=256, lr=0.05, tv_weight=0.05, transforms=Compose(()), redirect_relu_steps=0)
    images = images.to(device_of(model))
    target = activations(model, images, [layer])[layer]
    dist = O.feature_distance(layer, target)
    obj = -dist
    if alpha_weight:
        obj = obj - alpha_weight * O.alpha_norm("image", alpha)
    if recipe.tv_weight:
        obj = obj - recipe.tv_weight * O.total_variation()
    param = recipe.param(images.shape[-1], len(images), color, images.device)
    r = recipe.render(model, obj, param)
    r.values = evaluate(model, dist, r.images).sqrt()
    r.recipe = {"method": "invert", "layer": layer, "alpha": alpha, "alpha_weight": alpha_weight, **recipe.to_dict()}
    return r


class Inversion(Method, name="inversion", settings=InversionSettings):
    """Images reconstructed from their activation at the layer."""

    def run(self, job: Job) -> Outcome:
        s, ctx = job.settings, job.ctx
        imgs, _ = ctx.real_images(max(s.min_images, ctx.images))
        recipe = ctx.recipe.with_(
            steps=scaled_steps(ctx.recipe.steps, s.steps_scale),
            lr=s.lr,
            tv_weight=s.tv_weight,
            transforms=None if s.transforms else Compose(()),
            redirect_relu_steps=s.redirect_relu_steps,
        )
        r = invert(job.net, imgs, job.layer, recipe, ctx.color)
        return Outcome(r.recipe, {"relative_error": r.values.tolist()}, render=r, sources=imgs)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        images = out.render.images
        return {
            "feature_error": Q.inversion_error(job.net, job.layer, images, out.sources),
            "identification": Q.inversion_identification(images.cpu(), out.sources.cpu()),
        }

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        return rows([row("source", out.sources), row(f"from {job.layer}", out.render.images)])

    def describe(self, job: Job, out: Outcome) -> str:
        return (
            f"Inversion (Mahendran & Vedaldi): images reconstructed from their {job.layer} activation, from noise, "
            "with alpha-norm and total-variation priors."
        )
