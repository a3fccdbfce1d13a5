"""Feature-visualization methods built on objectives, parameterizations, transforms and :func:`render`.

* :func:`visualize_channels`, :func:`visualize_neurons`, :func:`visualize_classes`: activation maximization,
  many units per render (image ``i`` of the batch serves unit ``i``).
* :func:`dream`, :func:`caricature`: start from a real image and exaggerate what a layer sees in it.
* :func:`invert`: reconstruct images from a layer's representation (Mahendran & Vedaldi).
* :func:`channel_pairs`, :func:`interpolate`: neuron interaction, and aligned interpolation between two
  channels.
* :func:`compare`: the same method on several networks.

Every method returns a :class:`~topdown.vis.render.RenderResult` whose ``values`` are the *raw* unit
values of the final images (no penalty, no normalization, no transforms), which is what the quality
figures compare with real images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from . import objectives as O
from .hooks import activations
from .param import ColorStats, shared_interpolation_image
from .quality import channel_means
from .recipe import Recipe
from .render import RenderResult, evaluate


def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


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
    device = _device(model)
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
    recipe: Recipe | None = None,
    color: ColorStats | None = None,
    position: tuple[int, int] | None = None,
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


# --------------------------------------------------------------------------------------------------
# From real images
# --------------------------------------------------------------------------------------------------
def _amplify(
    model: nn.Module,
    images: torch.Tensor,
    objective: O.Objective,
    recipe: Recipe,
    color: ColorStats | None,
    record: dict[str, Any],
) -> RenderResult:
    """Start at ``images`` and raise ``objective``, normalized per image by its value on ``images`` (so
    every image pushes equally hard); ``values`` is the raw objective of the result."""
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
    recipe = recipe or Recipe(steps=32, lr=0.02)
    images = images.to(_device(model))
    return _amplify(model, images, O.deepdream(layer), recipe, color, {"method": "dream", "layer": layer})


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
    recipe = recipe or Recipe(steps=32, lr=0.02)
    images = images.to(_device(model))
    target = activations(model, images, [layer])[layer]
    record = {"method": "caricature", "layer": layer, "cossim_pow": cossim_pow}
    return _amplify(model, images, O.caricature(layer, target, cossim_pow), recipe, color, record)


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
    recipe = recipe or Recipe(steps=256, lr=0.05, tv_weight=0.05, transforms=_no_transforms(), redirect_relu_steps=0)
    images = images.to(_device(model))
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


def _no_transforms():
    from .transforms import Compose

    return Compose(())


# --------------------------------------------------------------------------------------------------
# Neuron interaction
# --------------------------------------------------------------------------------------------------
def channel_pairs(
    model: nn.Module,
    layer: str,
    pairs: Sequence[tuple[int, int]],
    size: int,
    recipe: Recipe | None = None,
    color: ColorStats | None = None,
    real: torch.Tensor | None = None,
) -> RenderResult:
    """Each image jointly maximizes two channels (each normalized as in :func:`visualize_channels`):
    what the pair responds to together. ``values`` is ``(B, 2)``: both channels' raw means."""
    recipe = recipe or Recipe()
    pairs = [(int(a), int(b)) for a, b in pairs]
    n = 1 + max(max(p) for p in pairs)
    scale = unit_scale(model, layer, real, n)
    device = _device(model)
    a_idx, b_idx = [p[0] for p in pairs], [p[1] for p in pairs]
    obj = O.channels(layer, a_idx, scale=scale[a_idx]) + O.channels(layer, b_idx, scale=scale[b_idx])
    if recipe.tv_weight:
        obj = obj - recipe.tv_weight * O.total_variation()
    r = recipe.render(model, obj, recipe.param(size, len(pairs), color, device))
    r.values = torch.stack(
        [evaluate(model, O.channels(layer, a_idx), r.images), evaluate(model, O.channels(layer, b_idx), r.images)], 1
    )
    r.recipe = {"method": "channel_pairs", "layer": layer, "pairs": pairs, **recipe.to_dict()}
    return r


def interpolate(
    model: nn.Module,
    layer: str,
    a: int,
    b: int,
    size: int,
    frames: int = 6,
    recipe: Recipe | None = None,
    color: ColorStats | None = None,
    real: torch.Tensor | None = None,
    aligned: bool = True,
    alignment_weight: float = 0.5,
    shared_scale: float = 0.2,
) -> RenderResult:
    """Frames that move from channel ``a`` to channel ``b`` of ``layer`` (weights ``1 - t`` and ``t``).

    With ``aligned=True`` (Lucid's aligned interpolation) the frames share low-resolution components of
    their parameterization and an alignment penalty at ``layer`` keeps neighbouring frames alike, so
    landmarks stay in place; ``aligned=False`` renders every frame independently (the reference the
    smoothness figure compares with). ``values`` is ``(frames, 2)``: both channels' raw means.
    """
    recipe = recipe or Recipe()
    device = _device(model)
    scale = unit_scale(model, layer, real, 1 + max(a, b))
    sa, sb = float(scale[a]), float(scale[b])

    def fn(acts: dict[str, torch.Tensor]) -> torch.Tensor:
        t = acts[layer]
        w = torch.linspace(0.0, 1.0, t.shape[0], device=t.device)
        return (1 - w) * t[:, a].flatten(1).mean(1) / sa + w * t[:, b].flatten(1).mean(1) / sb

    obj = O.Objective(fn, [layer], f"channel_interpolate({layer}:{a} -> {layer}:{b}, normalized)")
    if aligned:
        param = shared_interpolation_image(
            size,
            frames,
            color=color,
            decorrelate=recipe.decorrelate,
            generator=recipe.seed,
            device=device,
            shared_scale=shared_scale,
        )
        if alignment_weight:
            # Alignment in units of the layer's typical activation, like the objective.
            obj = obj - alignment_weight / (sa * sb) * O.alignment(layer)
    else:
        param = recipe.param(size, frames, color, device)
    if recipe.tv_weight:
        obj = obj - recipe.tv_weight * O.total_variation()
    r = recipe.render(model, obj, param)
    r.values = torch.stack(
        [evaluate(model, O.channel(layer, a), r.images), evaluate(model, O.channel(layer, b), r.images)], 1
    )
    r.recipe = {
        "method": "interpolate",
        "layer": layer,
        "a": a,
        "b": b,
        "frames": frames,
        "aligned": aligned,
        "alignment_weight": alignment_weight if aligned else 0.0,
        **recipe.to_dict(),
    }
    return r


# --------------------------------------------------------------------------------------------------
# Several networks
# --------------------------------------------------------------------------------------------------
def compare(models: dict[str, nn.Module], method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``method(model, *args, **kwargs)`` for every network: the same recipe, side by side."""
    return {name: method(model, *args, **kwargs) for name, model in models.items()}
