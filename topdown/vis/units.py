"""Activation maximization of many units per render, the building block of the class and feature renders.

* :func:`visualize_channels`, :func:`visualize_neurons`, :func:`visualize_classes`: up to
  ``recipe.batch_size`` units per render (image ``i`` of the batch serves unit ``i``), each render started from
  every flat colour of ``recipe.starts`` and the best start kept per image.
* :func:`unit_scale`: the per-channel normalizer that makes one penalty weight suit every channel.

Every function returns a :class:`~topdown.vis.render.RenderResult` whose ``values`` are the *raw* unit
values of the final images (no penalty, no normalization, no transforms), which is what the quality
figures compare with real images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from . import objectives as O
from .hooks import activations, device_of
from .param import ColorStats
from .quality import channel_means
from .recipe import Recipe
from .render import RenderResult, evaluate


def _concat(results: list[RenderResult], recipe: dict[str, Any]) -> RenderResult:
    steps = max((r.history.shape[0] for r in results), default=0)
    hist = torch.cat([r.history for r in results], 1) if steps else torch.zeros(0)
    return RenderResult(
        images=torch.cat([r.images for r in results]),
        values=torch.cat([r.values for r in results]),
        history=hist,
        recipe=recipe,
        seconds=sum(r.seconds for r in results),
    )


@torch.no_grad()
def unit_scale(model: nn.Module, layer: str, real: torch.Tensor | None, n: int) -> torch.Tensor:
    """Per-channel normalizer: the largest ``|channel mean|`` over real images (1 where none are given).

    Dividing by it makes "1.0" mean "as strong as the strongest real image", so one penalty weight suits
    every channel of every layer.
    """
    if real is None:
        return torch.ones(n)
    means = channel_means(model, layer, real)
    return means.abs().max(0).values.clamp_min(1e-3).cpu()


def _batched_units(
    model: nn.Module,
    make_objective: Callable[[Sequence[int], torch.Tensor], O.Objective],
    raw_objective: Callable[[Sequence[int]], O.Objective],
    units: Sequence[int],
    scale: torch.Tensor,
    size: int,
    recipe: Recipe,
    color: ColorStats | None,
    name: str,
) -> RenderResult:
    device = device_of(model)
    results = []
    started: list[str] = []
    for start in range(0, len(units), recipe.batch_size):
        chunk = list(units[start : start + recipe.batch_size])
        obj = make_objective(chunk, scale[start : start + len(chunk)])
        if recipe.tv_weight:
            obj = obj - recipe.tv_weight * O.total_variation()
        tries = []
        for colour in recipe.starts:
            param = recipe.param(size, len(chunk), color, device, seed_offset=start, start=colour)
            tries.append(recipe.render(model, obj, param, seed_offset=start))
        r, won = _best_start(model, obj, tries, recipe)
        r.values = evaluate(model, raw_objective(chunk), r.images)
        results.append(r)
        started.extend(won)
    out = _concat(
        results,
        {
            "method": name,
            **recipe.to_dict(),
            "units": list(units),
            "objective": results[0].recipe.get("objective") if results else None,
        },
    )
    if len(recipe.starts) > 1:
        out.recipe["started_from"] = started
    return out


def _best_start(
    model: nn.Module, objective: O.Objective, tries: list[RenderResult], recipe: Recipe, draws: int = 8
) -> tuple[RenderResult, list[str]]:
    """Per image, the render (of the same objective from each of ``recipe.starts``) whose objective is highest
    in expectation over the recipe's transforms (what the render maximized; ``draws`` seeded draws), and the
    start each image came from."""
    if len(tries) == 1:
        return tries[0], [recipe.starts[0]] * len(tries[0].images)
    tf = recipe.tf()
    n = draws if len(tf) else 1

    def expected(images: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator().manual_seed(recipe.seed)
        return sum(evaluate(model, objective, images, tf, gen).cpu() for _ in range(n)) / n

    scores = torch.stack([expected(t.images) for t in tries])
    pick = scores.argmax(0)
    rows = torch.arange(len(pick))
    images = torch.stack([t.images for t in tries])[pick.to(tries[0].images.device), rows.to(tries[0].images.device)]
    history = torch.stack([t.history.cpu() for t in tries])[pick, :, rows].T  # (steps, B)
    best = RenderResult(images, scores[pick, rows], history, {}, tries[0].recipe, sum(t.seconds for t in tries))
    return best, [recipe.starts[i] for i in pick.tolist()]


def visualize_channels(
    model: nn.Module,
    layer: str,
    channels: Sequence[int],
    size: int,
    *,
    recipe: Recipe | None = None,
    color: ColorStats | None = None,
    real: torch.Tensor | None = None,
) -> RenderResult:
    """Activation maximization of ``channels`` of ``layer`` (caricaturization), up to
    ``recipe.batch_size`` channels per render.

    Args:
        model: any ``nn.Module`` on its device, taking images in [0, 1].
        layer: a module name (``"layer2"``, ``"layer2.0.act2@in"`` for a pre-activation).
        channels: channel indices; image ``i`` of the result shows ``channels[i]``.
        size: image side.
        recipe: render settings (default :class:`Recipe`).
        color: the training data's colour statistics.
        real: real images; each channel's objective is divided by its largest ``|mean|`` on them.
    """
    recipe = recipe or Recipe()
    channels = list(channels)
    scale = (
        unit_scale(model, layer, real, max(channels) + 1)[channels] if real is not None else torch.ones(len(channels))
    )
    return _batched_units(
        model,
        lambda chunk, s: O.channels(layer, chunk, scale=s),
        lambda chunk: O.channels(layer, chunk),
        channels,
        scale,
        size,
        recipe,
        color,
        "channels",
    )


def visualize_neurons(
    model: nn.Module,
    layer: str,
    channels: Sequence[int],
    size: int,
    position: tuple[int, int] | None = None,
    *,
    recipe: Recipe | None = None,
    color: ColorStats | None = None,
) -> RenderResult:
    """Activation maximization of one spatial position (default: the centre) of each channel."""
    recipe = recipe or Recipe()
    x, y = (None, None) if position is None else position

    def objective(chunk: Sequence[int]) -> O.Objective:
        return O.Objective.sum([O.neuron(layer, c, x, y, batch=i) for i, c in enumerate(chunk)])

    return _batched_units(
        model,
        lambda chunk, s: objective(chunk),
        objective,
        list(channels),
        torch.ones(len(channels)),
        size,
        recipe,
        color,
        "neurons",
    )


def visualize_classes(
    model: nn.Module,
    classes: Sequence[int],
    size: int,
    recipe: Recipe | None = None,
    color: ColorStats | None = None,
    real: torch.Tensor | None = None,
    logprob_weight: float = 0.0,
) -> RenderResult:
    """Activation maximization of class logits (normalized by the largest ``|logit|`` on ``real``),
    plus ``logprob_weight`` times the log-probability, which also pushes the other classes down."""
    recipe = recipe or Recipe()
    classes = list(classes)
    if real is not None:
        with torch.no_grad():
            logits = activations(model, real, ["logits"], stop_early=False)["logits"]
        scale = logits.abs().max(0).values.clamp_min(1e-3).cpu()[classes]
    else:
        scale = torch.ones(len(classes))

    def objective(chunk: Sequence[int], s: torch.Tensor) -> O.Objective:
        obj = O.classes(chunk, scale=s)
        return obj + logprob_weight * O.classes(chunk, logprob=True) if logprob_weight else obj

    return _batched_units(
        model, objective, lambda chunk: O.classes(chunk), classes, scale, size, recipe, color, "classes"
    )
