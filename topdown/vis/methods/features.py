"""Methods that render units of one layer: sampled channels (``channels``), their centre neurons
(``neurons``), channels two at a time (``pairs``), aligned interpolation between two channels
(``interpolation``), one channel several times with a diversity term (``diversity``), the semantic dictionary
(``dictionary``) and the activation grid (``activation_grid``). Each method's settings, its algorithm where it is
its own and its class the runner calls sit together; the batched renders they share are
:mod:`topdown.vis.units`, the dataset examples and icons :mod:`topdown.vis.dictionary`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import objectives as O
from .. import quality as Q
from ..dictionary import activation_grid, semantic_dictionary
from ..hooks import activations, device_of
from ..param import ColorStats, shared_interpolation_image
from ..recipe import Recipe
from ..render import RenderResult, evaluate
from ..units import unit_scale, visualize_channels, visualize_neurons
from .base import Job, Method, Outcome, row, rows


# channels and neurons: batched activation maximization of sampled units
def _units_figures(job: Job, out: Outcome, objective: Any) -> dict[str, Any]:
    """Figures of a batched render of units: reaching the real maxima, natural statistics, robustness."""
    return {
        "objective_rises": Q.objective_rises(out.render.values, out.real_max),
        **job.natural(out.render.images),
        "transform_robustness": Q.transform_robustness(job.net, objective, out.render.images, job.ctx.recipe.tf()),
    }


def _units_details(chans: list[int], r: Any, real_max: torch.Tensor) -> dict[str, Any]:
    return {"channels": chans, "values": r.values.tolist(), "real_max": real_max.tolist()}


def _units_panels(job: Job, out: Outcome, label: str) -> dict[str, np.ndarray]:
    chans = out.details["channels"]
    return rows([row(f"{job.layer} {label} {chans}", out.render.images, ncol=min(len(chans), 6))])


class Channels(Method, name="channels"):
    """Sampled channels of the layer, one batched render."""

    def run(self, job: Job) -> Outcome:
        ctx = job.ctx
        chans = job.sample_channels()
        r = visualize_channels(job.net, job.layer, chans, ctx.size, recipe=ctx.recipe, color=ctx.color, real=job.real)
        real_max = Q.channel_means(job.net, job.layer, job.real).max(0).values[chans]
        return Outcome(r.recipe, _units_details(chans, r, real_max), render=r, real_max=real_max)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        return _units_figures(job, out, O.channels(job.layer, out.details["channels"]))

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        return _units_panels(job, out, "channels")

    def describe(self, job: Job, out: Outcome) -> str:
        n = len(out.details["channels"])
        return f"Activation maximization of {n} sampled channels of {job.layer}, all in one batched render."


class Neurons(Method, name="neurons"):
    """The centre neuron of the sampled channels."""

    def run(self, job: Job) -> Outcome:
        ctx = job.ctx
        chans = job.sample_channels()
        r = visualize_neurons(job.net, job.layer, chans, ctx.size, recipe=ctx.recipe, color=ctx.color)
        t = activations(job.net, job.real, [job.layer])[job.layer]
        real_max = t[:, chans, t.shape[2] // 2, t.shape[3] // 2].max(0).values
        return Outcome(r.recipe, _units_details(chans, r, real_max), render=r, real_max=real_max)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        objective = O.Objective.sum([O.neuron(job.layer, c, batch=i) for i, c in enumerate(out.details["channels"])])
        return _units_figures(job, out, objective)

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        return _units_panels(job, out, "centre neurons")

    def describe(self, job: Job, out: Outcome) -> str:
        n = len(out.details["channels"])
        return f"The centre neuron of {n} channels of {job.layer} (spatially localized caricatures)."


# pairs: neuron interaction
@dataclass
class PairsSettings:
    """``pairs``: sampled channels optimized two at a time.

    Args:
        max_pairs: at most this many pairs (consecutive sampled channels).
    """

    max_pairs: int = 4


def _both_values(model: nn.Module, first: O.Objective, second: O.Objective, images: torch.Tensor) -> torch.Tensor:
    """``(B, 2)``: the raw values of two objectives on ``images``."""
    return torch.stack([evaluate(model, first, images), evaluate(model, second, images)], 1)


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
    device = device_of(model)
    a_idx, b_idx = [p[0] for p in pairs], [p[1] for p in pairs]
    obj = O.channels(layer, a_idx, scale=scale[a_idx]) + O.channels(layer, b_idx, scale=scale[b_idx])
    if recipe.tv_weight:
        obj = obj - recipe.tv_weight * O.total_variation()
    r = recipe.render(model, obj, recipe.param(size, len(pairs), color, device))
    r.values = _both_values(model, O.channels(layer, a_idx), O.channels(layer, b_idx), r.images)
    r.recipe = {"method": "channel_pairs", "layer": layer, "pairs": pairs, **recipe.to_dict()}
    return r


class Pairs(Method, name="pairs", settings=PairsSettings):
    """Pairs of channels optimized jointly."""

    def run(self, job: Job) -> Outcome:
        ctx = job.ctx
        chans = job.sample_channels()
        pairs = [(chans[i], chans[i + 1]) for i in range(0, min(len(chans) - 1, 2 * job.settings.max_pairs), 2)]
        r = channel_pairs(job.net, job.layer, pairs, ctx.size, ctx.recipe, ctx.color, job.real)
        real_max = Q.channel_means(job.net, job.layer, job.real).max(0).values
        return Outcome(r.recipe, {"pairs": pairs, "values": r.values.tolist()}, render=r, real_max=real_max)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        idx = torch.tensor(out.details["pairs"])
        reached = out.render.values.flatten().cpu()
        return {
            "objective_rises": Q.objective_rises(reached, out.real_max[idx].flatten().cpu()),
            **job.natural(out.render.images),
        }

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        return rows([row(f"pairs {out.details['pairs']}", out.render.images)])

    def describe(self, job: Job, out: Outcome) -> str:
        return (
            f"Neuron interaction: pairs of {job.layer} channels optimized jointly (both normalized by their real "
            "maxima)."
        )


# interpolation: aligned interpolation between two channels
@dataclass
class InterpolationSettings:
    """``interpolation``: aligned interpolation between two channels.

    Args:
        frames: images from the first channel to the second, ends included.
    """

    frames: int = 6


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
    device = device_of(model)
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
    r.values = _both_values(model, O.channel(layer, a), O.channel(layer, b), r.images)
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


class Interpolation(Method, name="interpolation", settings=InterpolationSettings):
    """Aligned interpolation between two channels."""

    def run(self, job: Job) -> Outcome:
        ctx, frames = job.ctx, job.settings.frames
        a, b = job.sample_channels()[:2]
        args = (job.net, job.layer, a, b, ctx.size, frames, ctx.recipe, ctx.color, job.real)
        aligned = interpolate(*args)
        independent = interpolate(*args, aligned=False)
        details = {"a": a, "b": b, "values": aligned.values.tolist()}
        return Outcome(aligned.recipe, details, aligned=aligned, independent=independent)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        al, ind = out.aligned, out.independent
        return {
            "smoothness": Q.interpolation_smoothness(al.images.cpu(), ind.images.cpu()),
            "ends_differ": Q.interpolation_ends_differ(al.images.cpu(), ind.images.cpu()),
            "handover_monotone": Q.handover_monotone(al.values[:, 0], al.values[:, 1]),
        }

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        return rows([row("aligned", out.aligned.images), row("independent", out.independent.images)])

    def describe(self, job: Job, out: Outcome) -> str:
        return (
            f"Aligned interpolation from channel {out.details['a']} to channel {out.details['b']} of {job.layer}: "
            "shared low-resolution parameterization and an alignment penalty, against independently rendered frames."
        )


# diversity: one channel rendered several times
@dataclass
class DiversitySettings:
    """``diversity``: one channel rendered several times with a diversity term.

    Args:
        images: images rendered together.
        weight: weight of the Gram-matrix diversity term (in units of the channel's largest real mean).
    """

    images: int = 6
    weight: float = 2.0


def _in_words(n: int) -> str:
    words = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n - 1] if 1 <= n <= len(words) else str(n)


class Diversity(Method, name="diversity", settings=DiversitySettings):
    """One channel rendered several times, with and without a diversity term."""

    def run(self, job: Job) -> Outcome:
        s, ctx, layer = job.settings, job.ctx, job.layer
        c = job.sample_channels()[0]
        scale = float(unit_scale(job.net, layer, job.real, c + 1)[c])
        base = O.channel(layer, c) / scale - ctx.recipe.tv_weight * O.total_variation()
        renders, values = {}, {}
        for key, weight in (("without", 0.0), ("with", s.weight)):
            objective = base - weight * O.diversity(layer) if weight else base
            param = ctx.recipe.param(ctx.size, s.images, ctx.color, ctx.device)
            renders[key] = ctx.recipe.render(job.net, objective, param)
            values[key] = evaluate(job.net, O.channel(layer, c), renders[key].images)
        details = {"channel": c, "values_with": values["with"].tolist(), "values_without": values["without"].tolist()}
        return Outcome({**renders["with"].recipe, "diversity_weight": s.weight}, details, renders=renders)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        with_term = Q.batch_feature_cosine(job.net, job.layer, out.renders["with"].images)
        without = Q.batch_feature_cosine(job.net, job.layer, out.renders["without"].images)
        with_term.detail.update(without=without.value)
        return {"batch_feature_cosine": with_term}

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        r = out.renders
        return rows([row("without diversity", r["without"].images), row("with diversity", r["with"].images)])

    def describe(self, job: Job, out: Outcome) -> str:
        return (
            f"Diversity: {_in_words(job.settings.images)} images of channel {out.details['channel']} of {job.layer} "
            "with a Gram-matrix diversity "
            f"term (weight {job.settings.weight:g}), against the same render without it."
        )


# dictionary and activation_grid: channels beside their dataset examples
@dataclass
class DictionarySettings:
    """``dictionary``: each channel's icon beside its top test examples.

    Args:
        channels: the first this-many sampled channels.
        examples: top test examples per channel.
    """

    channels: int = 8
    examples: int = 6


class Dictionary(Method, name="dictionary", settings=DictionarySettings):
    """Each channel's icon beside its top test examples."""

    def run(self, job: Job) -> Outcome:
        s, ctx = job.settings, job.ctx
        chans = job.sample_channels()[: s.channels]
        sd = semantic_dictionary(
            job.net,
            job.layer,
            ctx.test_set,
            ctx.size,
            chans,
            k=s.examples,
            recipe=ctx.recipe,
            color=ctx.color,
            real=job.real,
        )
        real_max = Q.channel_means(job.net, job.layer, job.real).max(0).values[chans]
        details = {
            "channels": chans,
            "top_values": sd.examples.values.tolist(),
            "top_indices": sd.examples.indices.tolist(),
            "receptive_field": list(sd.field.centre_box),
        }
        return Outcome(sd.recipe, details, dictionary=sd, real_max=real_max)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        return {"objective_rises": Q.objective_rises(out.dictionary.icons.values, out.real_max)}

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        sd, k = out.dictionary, job.settings.examples
        return rows(
            [
                row(
                    f"channel {c}: icon, then top-{k} test examples (receptive-field crops)",
                    torch.cat([sd.icons.images[i : i + 1].cpu(), sd.crops[i]]),
                )
                for i, c in enumerate(out.details["channels"])
            ]
        )

    def describe(self, job: Job, out: Outcome) -> str:
        return f"Semantic dictionary of {job.layer}: each channel's visualization beside its top test examples."


class ActivationGrid(Method, name="activation_grid"):
    """The dominant channel of every cell of one image, as icons."""

    def run(self, job: Job) -> Outcome:
        ctx = job.ctx
        img = ctx.real[0].to(ctx.device)
        g = activation_grid(job.net, img, job.layer, recipe=ctx.recipe, color=ctx.color, real=job.real)
        details = {"channels": g.channel.tolist(), "strength": g.strength.tolist()}
        return Outcome(g.recipe, details, grid=g, image=img)

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        side = out.grid.mosaic.shape[-1]
        big = F.interpolate(out.image[None].cpu(), size=(side, side), mode="nearest")
        return rows([row("image | dominant channels", torch.cat([big, out.grid.mosaic[None]]))])

    def describe(self, job: Job, out: Outcome) -> str:
        return f"Activation grid of {job.layer}: at each cell, the icon of its strongest channel, faded by strength."
