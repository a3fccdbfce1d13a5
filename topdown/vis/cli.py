"""``python evaluate.py visualize``: what each network learned, side by side, with quality figures.

    python evaluate.py visualize --ckpt runs/synthetic/baseline/checkpoints/last.ckpt \\
                                 --ckpt runs/synthetic/topdown/checkpoints/last.ckpt --out outputs/vis

Every method runs with the same recipe and seed on every checkpoint. The run writes PNG grids under
``<out>/<model>/`` and ``<out>/compare/`` (the models side by side), and ``<out>/vis.json``, rewritten
atomically after every method, so an interrupted run leaves a valid file.

``vis.json`` (``schema`` 1)::

    {
      "schema": 1, "created": "<UTC ISO time>", "command": [...], "args": {...}, "seed": 0,
      "data": {<FlowerData.describe()>}, "color": {"mean": [3], "sqrt_cov": [3x3]}, "layers": {model: [..]},
      "models": {
        "<model>": {
          "checkpoint": "<path>", "arch": {...}, "epoch": int,
          "methods": {
            "<method>": {
              "description": str, "layer": str | null, "recipe": {...}, "seed": int, "seconds": float,
              "images": ["<model>/<method>.png", ...],          # relative to <out>
              "quality": {"<figure>": {"value": float, "threshold": float | [low, high],
                                       "direction": ">=" | "<=" | ">" | "in", "passed": bool,
                                       "detail": {...}}},
              "details": {...}
            }}}},
      "comparisons": {"<method>": {"images": ["compare/<method>.png"]}},
      "summary": {"figures": int, "passed": int, "failed": ["<model>/<method>/<figure>", ...]}
    }

With several ``--layers``, layer-based methods are keyed ``"<method>:<layer>"``. ``SCHEMA.md`` beside this
file lists every method and its quality figures.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import env  # noqa: F401  (before albumentations)

#: Every method, in the order they run.
METHODS = (
    "classes",
    "channels",
    "neurons",
    "naive",
    "dream",
    "caricature",
    "inversion",
    "pairs",
    "interpolation",
    "diversity",
    "dictionary",
    "activation_grid",
    "multifaceted",
    "attribution",
    "pyramid_attribution",
    "dissection",
)
#: Weight of the diversity term (in units of the channel's largest real mean).
DIVERSITY_WEIGHT = 2.0
#: Gauss-Legendre steps integrated gradients start from (doubled until their completeness error passes).
IG_STEPS = 128
#: Methods that take ``--layers``.
LAYER_METHODS = set(METHODS) - {"classes", "multifaceted", "attribution", "pyramid_attribution"}


def build_parser() -> Any:
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="evaluate.py visualize", description=__doc__.split("\n\n")[0], default_env=False)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file with any of these options")
    parser.add_argument("--ckpt", type=list[str], default=[], help="checkpoint; repeat (baseline and top-down)")
    parser.add_argument(
        "--names",
        type=list[str] | None,
        default=None,
        help="model keys (default: baseline/topdown from the architecture)",
    )
    parser.add_argument("--out", type=str, required=True, help="output folder (PNGs and vis.json)")
    parser.add_argument("--data.root", type=str | None, default=None, help="data root (default: $TOPDOWN_DATA_ROOT)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every render, sample and transform")
    parser.add_argument("--steps", type=int, default=128, help="optimizer steps of a render")
    parser.add_argument("--lr", type=float, default=0.03, help="Adam learning rate of a render")
    parser.add_argument("--tv_weight", type=float, default=0.4, help="total-variation penalty (normalized units)")
    parser.add_argument(
        "--layers",
        type=list[str] | None,
        default=None,
        help="layers to visualize (default: each network's middle stage)",
    )
    parser.add_argument("--methods", type=list[str], default=list(METHODS), help=f"any of {', '.join(METHODS)}")
    parser.add_argument("--channels", type=int, default=12, help="channels sampled per layer")
    parser.add_argument("--images", type=int, default=6, help="real images for dream, inversion, attribution")
    parser.add_argument("--reference", type=int, default=128, help="held-out real images for the quality figures")
    parser.add_argument("--batch_size", type=int, default=64, help="most images optimized together")
    parser.add_argument("--device", type=str, default="cpu", help="cpu, cuda, cuda:1, mps...")
    parser.add_argument("--progress", type=bool, default=True, help="a line per method")
    return parser


def _repeated(args: list[str], flags: tuple[str, ...] = ("--ckpt", "--names", "--layers")) -> list[str]:
    """Let ``--ckpt a --ckpt b`` (and ``--names``, ``--layers``) append (jsonargparse's syntax: ``--ckpt+ a``)."""
    out = []
    for a in args:
        key, eq, val = a.partition("=")
        if key in flags and not (eq and val.lstrip().startswith("[")):
            out.append(f"{key}+{eq}{val}" if eq else f"{key}+")
        else:
            out.append(a)
    return out


# --------------------------------------------------------------------------------------------------
# The run's shared state
# --------------------------------------------------------------------------------------------------
@dataclass
class Context:
    """What every method needs: data, reference images, colour statistics, the recipe."""

    data: Any
    real: torch.Tensor  # held-out reference images (validation split)
    labels: torch.Tensor
    color: Any
    size: int
    recipe: Any
    args: Any
    device: torch.device
    _test: Any = None

    @property
    def test_set(self) -> Any:
        if self._test is None:
            self._test = self.data.subset("test")
        return self._test

    def images(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        n = n or self.args.images
        return self.real[:n].to(self.device), self.labels[:n].to(self.device)


@dataclass
class MethodOutput:
    """One method on one network."""

    description: str
    recipe: dict[str, Any]
    panels: dict[str, np.ndarray]  # file suffix ("" for the main one) -> image
    quality: dict[str, Any] = field(default_factory=dict)  # name -> quality.Figure
    details: dict[str, Any] = field(default_factory=dict)


def _stack(*tensors: torch.Tensor) -> torch.Tensor:
    return torch.cat([t.detach().cpu() for t in tensors])


def _row(label: str, images: torch.Tensor, ncol: int | None = None) -> tuple[str, np.ndarray]:
    from .plot import grid

    scale = max(1, 96 // images.shape[-1])
    return label, grid(images.detach().cpu(), ncol=ncol or len(images), scale=scale)


def _rows(rows: list[tuple[str, np.ndarray]], title: str = "") -> np.ndarray:
    from .plot import labelled_rows

    return labelled_rows(rows, title or None)


def _sample_channels(net: torch.nn.Module, layer: str, ctx: Context) -> list[int]:
    from .hooks import activations

    c = activations(net, ctx.real[:1].to(ctx.device), [layer])[layer].shape[1]
    gen = torch.Generator().manual_seed(ctx.args.seed)
    return sorted(torch.randperm(c, generator=gen)[: min(ctx.args.channels, c)].tolist())


def _natural(images: torch.Tensor, ctx: Context) -> dict[str, Any]:
    from . import quality as Q

    return Q.natural_statistics(images.cpu(), ctx.real.cpu())


# --------------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------------
def run_classes(net: torch.nn.Module, layer: str | None, ctx: Context) -> MethodOutput:
    from . import objectives as O
    from . import quality as Q
    from .methods import visualize_classes

    classes = list(range(min(net.num_classes, 24)))
    # Logits sit at the end of the network: they need more steps than a middle layer's channels.
    recipe = ctx.recipe.with_(steps=int(1.5 * ctx.recipe.steps))
    r = visualize_classes(net, classes, ctx.size, recipe, ctx.color, ctx.real.to(ctx.device), logprob_weight=1.0)
    q = {
        "class_confidence": Q.class_confidence(net, r.images, classes),
        **_natural(r.images, ctx),
        "transform_robustness": Q.transform_robustness(net, O.classes(classes), r.images, recipe.tf()),
    }
    names = [str(ctx.data.classes[c]) for c in classes] if hasattr(ctx.data, "classes") else list(map(str, classes))
    return MethodOutput(
        "Activation maximization of every class logit (plus its log-probability), batched.",
        {**r.recipe, "logprob_weight": 1.0},
        {"": _rows([_row("classes: " + ", ".join(names), r.images)])},
        q,
        {"classes": names, "logits": r.values.tolist()},
    )


def _units_output(
    net: torch.nn.Module,
    layer: str,
    ctx: Context,
    chans: list[int],
    r: Any,
    real_max: torch.Tensor,
    objective: Any,
    description: str,
    label: str,
) -> MethodOutput:
    """The quality figures and grid of one batched render of ``chans`` (one unit of each channel per image)."""
    from . import quality as Q

    q = {
        "objective_rises": Q.objective_rises(r.values, real_max),
        **_natural(r.images, ctx),
        "transform_robustness": Q.transform_robustness(net, objective, r.images, ctx.recipe.tf()),
    }
    return MethodOutput(
        description,
        r.recipe,
        {"": _rows([_row(f"{layer} {label} {chans}", r.images, ncol=min(len(chans), 6))])},
        q,
        {"channels": chans, "values": r.values.tolist(), "real_max": real_max.tolist()},
    )


def run_channels(net: torch.nn.Module, layer: str, ctx: Context) -> MethodOutput:
    from . import objectives as O
    from . import quality as Q
    from .methods import visualize_channels

    chans = _sample_channels(net, layer, ctx)
    r = visualize_channels(net, layer, chans, ctx.size, ctx.recipe, ctx.color, ctx.real.to(ctx.device))
    real_max = Q.channel_means(net, layer, ctx.real.to(ctx.device)).max(0).values[chans]
    text = f"Activation maximization of {len(chans)} sampled channels of {layer}, all in one batched render."
    return _units_output(net, layer, ctx, chans, r, real_max, O.channels(layer, chans), text, "channels")


def run_neurons(net: torch.nn.Module, layer: str, ctx: Context) -> MethodOutput:
    from . import objectives as O
    from .hooks import activations
    from .methods import visualize_neurons

    chans = _sample_channels(net, layer, ctx)
    r = visualize_neurons(net, layer, chans, ctx.size, ctx.recipe, ctx.color)
    t = activations(net, ctx.real.to(ctx.device), [layer])[layer]
    real_max = t[:, chans, t.shape[2] // 2, t.shape[3] // 2].max(0).values
    obj = O.Objective.sum([O.neuron(layer, c, batch=i) for i, c in enumerate(chans)])
    text = f"The centre neuron of {len(chans)} channels of {layer} (spatially localized caricatures)."
    return _units_output(net, layer, ctx, chans, r, real_max, obj, text, "centre neurons")


def run_naive(net: torch.nn.Module, layer: str, ctx: Context) -> MethodOutput:
    from . import quality as Q
    from .methods import visualize_channels, visualize_classes
    from .recipe import Recipe

    chans = _sample_channels(net, layer, ctx)
    naive = Recipe.naive(steps=ctx.recipe.steps, lr=0.05, seed=ctx.args.seed, batch_size=ctx.recipe.batch_size)
    rc = visualize_channels(net, layer, chans, ctx.size, naive, None, ctx.real.to(ctx.device))
    rk = visualize_classes(net, range(net.num_classes), ctx.size, naive, None, ctx.real.to(ctx.device))
    hc = Q.high_frequency_ratio(rc.images.cpu(), ctx.real)
    hk = Q.high_frequency_ratio(rk.images.cpu(), ctx.real)
    # The control passes when the natural-statistics check *rejects* the naive render.
    q = {
        "channels_rejected": Q.figure(hc.value, 2.0, ">", **hc.detail),
        "classes_rejected": Q.figure(hk.value, 2.0, ">", **hk.detail),
    }
    return MethodOutput(
        "Control: the same objectives with a naive recipe (pixels, no colour decorrelation, no transforms, no "
        "penalty). Its high-frequency ratio must exceed 2, i.e. the natural-statistics check must reject it.",
        naive.to_dict(),
        {
            "": _rows(
                [_row(f"naive {layer} channels", rc.images, ncol=min(len(chans), 6)), _row("naive classes", rk.images)]
            )
        },
        q,
    )


def run_dream(net: torch.nn.Module, layer: str, ctx: Context, kind: str = "dream") -> MethodOutput:
    from . import quality as Q
    from .methods import caricature, dream

    imgs, _ = ctx.images()
    recipe = ctx.recipe.with_(steps=max(16, ctx.recipe.steps // 4), lr=0.02)
    fn = dream if kind == "dream" else caricature
    r = fn(net, imgs, layer, recipe, ctx.color)
    start = torch.tensor(r.recipe["start_values"])
    if kind == "caricature":
        from . import objectives as O
        from .hooks import activations
        from .render import evaluate

        start = evaluate(net, O.caricature(layer, activations(net, imgs, [layer])[layer]), imgs).cpu()
    q = {
        "objective_rises_from_start": Q.objective_rises(r.values.cpu(), start, threshold=0.8),
        **_natural(r.images, ctx),
    }
    what = (
        "amplify everything it responds to (mean squared activation)"
        if kind == "dream"
        else "push its activation further along what it saw (dot product times cosine)"
    )
    return MethodOutput(
        f"{kind.title()}: start from real images and, at {layer}, {what}.",
        r.recipe,
        {"": _rows([_row("real", imgs), _row(kind, r.images)])},
        q,
        {"values": r.values.tolist(), "start": start.tolist()},
    )


def run_inversion(net: torch.nn.Module, layer: str, ctx: Context) -> MethodOutput:
    from . import quality as Q
    from .methods import invert
    from .transforms import Compose

    imgs, _ = ctx.images(max(4, ctx.args.images))
    recipe = ctx.recipe.with_(
        steps=2 * ctx.recipe.steps, lr=0.05, tv_weight=0.05, transforms=Compose(()), redirect_relu_steps=0
    )
    r = invert(net, imgs, layer, recipe, ctx.color)
    q = {
        "feature_error": Q.inversion_error(net, layer, r.images, imgs),
        "identification": Q.inversion_identification(r.images.cpu(), imgs.cpu()),
    }
    return MethodOutput(
        f"Inversion (Mahendran & Vedaldi): images reconstructed from their {layer} activation, from noise, with "
        "alpha-norm and total-variation priors.",
        r.recipe,
        {"": _rows([_row("source", imgs), _row(f"from {layer}", r.images)])},
        q,
        {"relative_error": r.values.tolist()},
    )


def run_pairs(net: torch.nn.Module, layer: str, ctx: Context) -> MethodOutput:
    from . import quality as Q
    from .methods import channel_pairs

    chans = _sample_channels(net, layer, ctx)
    pairs = [(chans[i], chans[i + 1]) for i in range(0, min(len(chans) - 1, 8), 2)]
    r = channel_pairs(net, layer, pairs, ctx.size, ctx.recipe, ctx.color, ctx.real.to(ctx.device))
    real_max = Q.channel_means(net, layer, ctx.real.to(ctx.device)).max(0).values
    idx = torch.tensor(pairs)
    q = {
        "objective_rises": Q.objective_rises(r.values.flatten().cpu(), real_max[idx].flatten().cpu()),
        **_natural(r.images, ctx),
    }
    return MethodOutput(
        f"Neuron interaction: pairs of {layer} channels optimized jointly (both normalized by their real maxima).",
        r.recipe,
        {"": _rows([_row(f"pairs {pairs}", r.images)])},
        q,
        {"pairs": pairs, "values": r.values.tolist()},
    )


def run_interpolation(net: torch.nn.Module, layer: str, ctx: Context) -> MethodOutput:
    from . import quality as Q
    from .methods import interpolate

    a, b = _sample_channels(net, layer, ctx)[:2]
    real = ctx.real.to(ctx.device)
    al = interpolate(net, layer, a, b, ctx.size, 6, ctx.recipe, ctx.color, real)
    ind = interpolate(net, layer, a, b, ctx.size, 6, ctx.recipe, ctx.color, real, aligned=False)
    q = {
        "smoothness": Q.interpolation_smoothness(al.images.cpu(), ind.images.cpu()),
        "ends_differ": Q.interpolation_ends_differ(al.images.cpu(), ind.images.cpu()),
        "handover_monotone": Q.handover_monotone(al.values[:, 0], al.values[:, 1]),
    }
    return MethodOutput(
        f"Aligned interpolation from channel {a} to channel {b} of {layer}: shared low-resolution "
        "parameterization and an alignment penalty, against independently rendered frames.",
        al.recipe,
        {"": _rows([_row("aligned", al.images), _row("independent", ind.images)])},
        q,
        {"a": a, "b": b, "values": al.values.tolist()},
    )


def run_diversity(net: torch.nn.Module, layer: str, ctx: Context) -> MethodOutput:
    from . import objectives as O
    from . import quality as Q
    from .methods import unit_scale
    from .render import evaluate

    c = _sample_channels(net, layer, ctx)[0]
    scale = float(unit_scale(net, layer, ctx.real.to(ctx.device), c + 1)[c])
    base = O.channel(layer, c) / scale - ctx.recipe.tv_weight * O.total_variation()
    out = {}
    for name, w in (("without", 0.0), ("with", DIVERSITY_WEIGHT)):
        obj = base - w * O.diversity(layer) if w else base
        param = ctx.recipe.param(ctx.size, 6, ctx.color, ctx.device)
        r = ctx.recipe.render(net, obj, param)
        out[name] = (r, Q.batch_feature_cosine(net, layer, r.images), evaluate(net, O.channel(layer, c), r.images))
    fig = out["with"][1]
    fig.detail.update(without=out["without"][1].value)
    return MethodOutput(
        f"Diversity: six images of channel {c} of {layer} with a Gram-matrix diversity term "
        f"(weight {DIVERSITY_WEIGHT:g}), against "
        "the same render without it.",
        {**out["with"][0].recipe, "diversity_weight": DIVERSITY_WEIGHT},
        {
            "": _rows(
                [_row("without diversity", out["without"][0].images), _row("with diversity", out["with"][0].images)]
            )
        },
        {"batch_feature_cosine": fig},
        {"channel": c, "values_with": out["with"][2].tolist(), "values_without": out["without"][2].tolist()},
    )


def run_dictionary(net: torch.nn.Module, layer: str, ctx: Context) -> MethodOutput:
    from . import quality as Q
    from .dictionary import semantic_dictionary

    chans = _sample_channels(net, layer, ctx)[:8]
    sd = semantic_dictionary(
        net, layer, ctx.test_set, ctx.size, chans, k=6, recipe=ctx.recipe, color=ctx.color, real=ctx.real.to(ctx.device)
    )
    rows = [
        _row(
            f"channel {c}: icon, then top-6 test examples (receptive-field crops)",
            torch.cat([sd.icons.images[i : i + 1].cpu(), sd.crops[i]]),
        )
        for i, c in enumerate(chans)
    ]
    real_max = Q.channel_means(net, layer, ctx.real.to(ctx.device)).max(0).values[chans]
    return MethodOutput(
        f"Semantic dictionary of {layer}: each channel's visualization beside its top test examples.",
        sd.recipe,
        {"": _rows(rows)},
        {"objective_rises": Q.objective_rises(sd.icons.values, real_max)},
        {
            "channels": chans,
            "top_values": sd.examples.values.tolist(),
            "top_indices": sd.examples.indices.tolist(),
            "receptive_field": list(sd.field.centre_box),
        },
    )


def run_activation_grid(net: torch.nn.Module, layer: str, ctx: Context) -> MethodOutput:
    import torch.nn.functional as F

    from .dictionary import activation_grid

    img = ctx.real[0].to(ctx.device)
    g = activation_grid(net, img, layer, recipe=ctx.recipe, color=ctx.color, real=ctx.real.to(ctx.device))
    side = g.mosaic.shape[-1]
    big = F.interpolate(img[None].cpu(), size=(side, side), mode="nearest")
    return MethodOutput(
        f"Activation grid of {layer}: at each cell, the icon of its strongest channel, faded by strength.",
        g.recipe,
        {"": _rows([_row("image | dominant channels", torch.cat([big, g.mosaic[None]]))])},
        {},
        {"channels": g.channel.tolist(), "strength": g.strength.tolist()},
    )


def run_multifaceted(net: torch.nn.Module, layer: str | None, ctx: Context) -> MethodOutput:
    from . import objectives as O
    from . import quality as Q
    from .facets import multifaceted

    embed = net.stage_names()[0] if hasattr(net, "stage_names") else layer
    src, idx = ctx.data.splits()["test"]
    subtypes = getattr(src, "subtypes", None)
    rows, quality, details = [], {}, {}
    recipe = ctx.recipe.with_(steps=max(32, ctx.recipe.steps // 2))
    for c in range(min(2, net.num_classes)):
        f = multifaceted(net, O.class_logit(c), ctx.test_set, embed, 2, 60, recipe, ctx.color)
        rows += [_row(f"class {c}: facet starts (cluster means)", f.starts), _row(f"class {c}: facets", f.images)]
        quality[f"objective_rises_class{c}"] = Q.objective_rises(f.values.cpu(), f.scores[:1].expand(len(f.values)))
        if subtypes is not None:
            truth = torch.tensor([subtypes[idx[int(i)]] for i in f.indices])
            quality[f"facet_purity_class{c}"] = Q.facet_purity(f.assignments, truth)
        details[f"class{c}"] = {
            "indices": f.indices.tolist(),
            "assignments": f.assignments.tolist(),
            "values": f.values.tolist(),
        }
    return MethodOutput(
        f"Multifaceted visualization (Nguyen et al. 2016): the top-60 test images of a class, embedded at {embed}, "
        "clustered (k-means, 2 facets), each facet rendered from its cluster's mean image. Purity is measured "
        "against the procedural data's planted sub-types.",
        {"embed_layer": embed, **f.recipe},
        {"": _rows(rows)},
        quality,
        details,
    )


def _ig_steps_text() -> str:
    from .attribution import IG_MAX_STEPS
    from .quality import IG_COMPLETENESS_THRESHOLD

    return (
        f"Gauss-Legendre steps from {IG_STEPS}, doubled until the completeness error is at most "
        f"{IG_COMPLETENESS_THRESHOLD} (up to {IG_MAX_STEPS})"
    )


def run_attribution(net: torch.nn.Module, layer: str | None, ctx: Context) -> MethodOutput:
    from . import quality as Q
    from .attribution import METHODS as ATTR
    from .attribution import attribute, integrated_gradients
    from .plot import overlay

    imgs, labels = ctx.images()
    rows = [_row("image (target: its label)", imgs)]
    quality = {}
    ig = integrated_gradients(net, imgs, labels, n_steps=IG_STEPS, tolerance=Q.IG_COMPLETENESS_THRESHOLD)
    for m in ATTR:
        a = ig.attributions if m == "integrated_gradients" else attribute(net, imgs, labels, m, seed=ctx.args.seed)
        rows.append(_row(m, overlay(imgs, a)))
        quality[f"deletion_{m}"] = Q.deletion_test(net, imgs, a, labels, seed=ctx.args.seed)
    quality["ig_completeness"] = Q.ig_completeness(ig.delta, ig.output_change)
    return MethodOutput(
        "Saliency through captum: vanilla gradient, SmoothGrad, integrated gradients (black baseline, "
        f"{_ig_steps_text()}), Grad-CAM (last stage), DeconvNet, guided backprop. Deletion: removing the top-20% "
        "salient pixels must lower the label's probability more than removing the 20% least salient (the drop for "
        "a random, scattered 20% is recorded beside it).",
        {
            "methods": list(ATTR),
            "n_steps": ig.n_steps,
            "smoothgrad_samples": 16,
            "smoothgrad_stdev": 0.1,
            "seed": ctx.args.seed,
        },
        {"": _rows(rows)},
        quality,
    )


def run_pyramid_attribution(net: torch.nn.Module, layer: str | None, ctx: Context) -> MethodOutput | None:
    import torch.nn.functional as F

    from . import quality as Q
    from .attribution import pyramid_attribution
    from .plot import heatmap

    if not hasattr(net, "pyramid"):
        return None
    imgs, labels = ctx.images()
    pa = pyramid_attribution(net, imgs, labels, n_steps=IG_STEPS, tolerance=Q.IG_COMPLETENESS_THRESHOLD)
    rows = [_row("image", imgs)]
    for lv, a in zip(pa.level_sizes, pa.attributions):
        up = F.interpolate(heatmap(a), size=imgs.shape[-2:], mode="nearest")
        rows.append(_row(f"level {lv} px: share {pa.share.mean(0)[len(rows) - 1]:.2f}", up))
    return MethodOutput(
        "Attribution per pyramid level (integrated gradients with respect to every level, coarse to fine, "
        f"{_ig_steps_text()}): which resolution drove the decision.",
        {"n_steps": pa.n_steps, "baseline": 0.0},
        {"": _rows(rows)},
        {"ig_completeness": Q.ig_completeness(pa.delta, pa.output_change)},
        {**pa.summary(), "contribution": pa.contribution.tolist()},
    )


def run_dissection(net: torch.nn.Module, layer: str, ctx: Context) -> MethodOutput | None:
    from . import quality as Q
    from .dissection import dissect, synthetic_masks
    from .plot import matrix_image

    src, idx = ctx.data.splits()["test"]
    if not hasattr(src, "masks"):
        return None  # only the procedural flowers have part masks
    masks = synthetic_masks(src, idx)
    d = dissect(net, layer, ctx.test_set, masks, list(src.PARTS))
    img = matrix_image(d.iou, [str(i) for i in range(d.iou.shape[0])], d.concepts, f"{layer}: IoU per unit")
    return MethodOutput(
        f"Network dissection of {layer} on the procedural flowers' part masks (top-{100 * (1 - d.quantile):.0f}% "
        "activation threshold per unit; chance = masks shuffled between images).",
        {"quantile": d.quantile, "concepts": d.concepts},
        {"": img},
        {"above_chance": Q.dissection_above_chance(d.iou, d.shuffled_iou)},
        {**d.summary(), "iou": d.iou.tolist(), "best": d.best},
    )


RUNNERS: dict[str, Callable[..., MethodOutput | None]] = {
    "classes": run_classes,
    "channels": run_channels,
    "neurons": run_neurons,
    "naive": run_naive,
    "dream": run_dream,
    "caricature": lambda net, layer, ctx: run_dream(net, layer, ctx, "caricature"),
    "inversion": run_inversion,
    "pairs": run_pairs,
    "interpolation": run_interpolation,
    "diversity": run_diversity,
    "dictionary": run_dictionary,
    "activation_grid": run_activation_grid,
    "multifaceted": run_multifaceted,
    "attribution": run_attribution,
    "pyramid_attribution": run_pyramid_attribution,
    "dissection": run_dissection,
}


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------
def default_layer(net: torch.nn.Module) -> str:
    """The middle stage (``layer2`` of a 3- or 4-stage network); other networks must pass ``--layers``."""
    names = getattr(net, "stage_names", None)
    if names is None:
        raise ValueError(f"{type(net).__name__} has no stage_names(): pass --layers")
    stages = names()
    return stages[(len(stages) - 1) // 2]


def load_models(paths: list[str], names: list[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``{name: LoadedModel}`` and the shared data description (an error if they disagree)."""
    from ..checkpoint import CheckpointError, load_model
    from ..models import is_topdown

    if not paths:
        raise ValueError("no checkpoint given: pass --ckpt <baseline.ckpt> [--ckpt <topdown.ckpt>]")
    if names is not None and len(names) != len(paths):
        raise ValueError(f"--names has {len(names)} entries for {len(paths)} checkpoints")
    out: dict[str, Any] = {}
    first = None
    for i, p in enumerate(paths):
        lm = load_model(p)
        if not lm.data:
            raise CheckpointError(f"{p}: the checkpoint does not record the data it was trained on")
        first = first or lm
        for k in ("dataset", "image_size", "num_classes", "seed", "synthetic_size", "synthetic_classes"):
            if lm.data.get(k) != first.data.get(k):
                raise CheckpointError(
                    f"{p} was trained on other data than {first.path} ({k}: "
                    f"{lm.data.get(k)!r} vs {first.data.get(k)!r})"
                )
        name = names[i] if names else ("topdown" if is_topdown(lm.net) else "baseline")
        if name in out:
            name = f"{name}_{i + 1}"
        out[name] = lm
    assert first is not None
    return out, dict(first.data)


def _context(args: Any, data_desc: dict[str, Any], device: torch.device) -> Context:
    from ..data import FlowerData
    from .param import color_stats
    from .recipe import Recipe

    data = FlowerData.from_description(data_desc, root=args.data.root, batch_size=args.batch_size)
    val = data.subset("val")
    n = min(args.reference, len(val))
    gen = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(val), generator=gen)[:n].tolist()
    items = [val[i] for i in pick]
    real = torch.stack([x for x, _ in items])
    labels = torch.tensor([y for _, y in items])
    train = data.subset("train")
    m = min(512, len(train))
    tpick = torch.randperm(len(train), generator=gen)[:m].tolist()
    color = color_stats(torch.stack([train[i][0] for i in tpick]))
    recipe = Recipe(steps=args.steps, lr=args.lr, tv_weight=args.tv_weight, batch_size=args.batch_size, seed=args.seed)
    return Context(data, real, labels, color, int(data.image_size), recipe, args, device)


def quality_figures(doc: dict[str, Any], model: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``("model/method/figure", figure)`` for every quality figure of a ``vis.json`` document (of one model)."""
    return [
        (f"{mname}/{meth}/{fname}", f)
        for mname, m in doc.get("models", {}).items()
        if model is None or mname == model
        for meth, entry in m.get("methods", {}).items()
        for fname, f in entry.get("quality", {}).items()
    ]


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    figures = quality_figures(doc)
    failed = [name for name, f in figures if not f["passed"]]
    return {"figures": len(figures), "passed": len(figures) - len(failed), "failed": failed}


def main(args: list[str] | None = None) -> dict[str, Any]:
    """Parse ``args`` (default ``sys.argv[1:]``), visualize every checkpoint, write PNGs and ``vis.json``;
    returns the ``vis.json`` document."""
    from rich.console import Console

    from ..io import atomic_write_json
    from .plot import save_png, side_by_side

    argv = list(sys.argv[1:] if args is None else args)
    parser = build_parser()
    ns = parser.parse_args(_repeated(argv))
    unknown = [m for m in ns.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if ns.steps < 1 or ns.channels < 2 or ns.images < 1:
        raise ValueError("--steps and --images must be >= 1 and --channels >= 2")
    console = Console(stderr=True, quiet=not ns.progress)
    device = torch.device(ns.device)
    models, data_desc = load_models(list(ns.ckpt), ns.names)
    for lm in models.values():
        lm.net.to(device).eval()
    ctx = _context(ns, data_desc, device)
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    layers = {name: list(ns.layers) if ns.layers else [default_layer(lm.net)] for name, lm in models.items()}
    doc: dict[str, Any] = {
        "schema": 1,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": ["evaluate.py", "visualize", *argv],
        "args": {k: v for k, v in ns.as_dict().items() if k not in ("config", "__path__")},
        "seed": ns.seed,
        "data": data_desc,
        "color": ctx.color.to_dict(),
        "layers": layers,
        "models": {
            name: {"checkpoint": str(lm.path), "arch": lm.arch, "epoch": lm.epoch, "methods": {}}
            for name, lm in models.items()
        },
        "comparisons": {},
    }
    panels: dict[str, dict[str, np.ndarray]] = {}
    for method in ns.methods:
        for name, lm in models.items():
            lays = layers[name] if method in LAYER_METHODS else [None]
            for layer in lays:
                key = method if len(lays) == 1 else f"{method}:{layer}"
                start = time.perf_counter()
                torch.manual_seed(ns.seed)  # anything that draws from the global RNG starts the same
                res = RUNNERS[method](lm.net, layer, ctx)
                secs = time.perf_counter() - start
                if res is None:
                    console.print(f"[{name}] {key}: not applicable, skipped", markup=False)
                    continue
                images = []
                for suffix, arr in res.panels.items():
                    rel = f"{name}/{key.replace(':', '_')}{'_' + suffix if suffix else ''}.png"
                    save_png(arr, out / rel)
                    images.append(rel)
                panels.setdefault(key, {})[name] = next(iter(res.panels.values()))
                quality = {k: f.to_dict() for k, f in res.quality.items()}
                doc["models"][name]["methods"][key] = {
                    "description": res.description,
                    "layer": layer,
                    "recipe": res.recipe,
                    "seed": ns.seed,
                    "seconds": round(secs, 2),
                    "images": images,
                    "quality": quality,
                    "details": res.details,
                }
                ok = sum(q["passed"] for q in quality.values())
                marks = ", ".join(f"{k} {q['value']:.3g}{'' if q['passed'] else ' FAIL'}" for k, q in quality.items())
                console.print(
                    f"[{name}] {key}: {secs:.1f}s, {ok}/{len(quality)} figures passed  {marks}",
                    markup=False,
                    soft_wrap=True,
                )
                doc["summary"] = _summary(doc)
                atomic_write_json(out / "vis.json", doc)
        for key, by_model in panels.items():
            if (key == method or key.startswith(method + ":")) and len(by_model) > 1:
                rel = f"compare/{key.replace(':', '_')}.png"
                save_png(side_by_side(list(by_model.items())), out / rel)
                doc["comparisons"][key] = {"images": [rel]}
    doc["summary"] = _summary(doc)
    atomic_write_json(out / "vis.json", doc)
    s = doc["summary"]
    console.print(f"{s['passed']}/{s['figures']} quality figures passed; results in {out / 'vis.json'}")
    return doc
