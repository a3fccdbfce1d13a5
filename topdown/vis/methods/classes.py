"""Methods that render whole classes: every class logit (``classes``), the naive control (``naive``), the
frequencies the class renders carry (``spectra``) and a class's facets (``multifaceted``). Each method's settings
and its class the runner calls sit together; the batched renders they share are :mod:`topdown.vis.units`,
clustering into facets :mod:`topdown.vis.facets`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import objectives as O
from .. import quality as Q
from ..facets import multifaceted
from ..recipe import Recipe
from ..units import visualize_channels, visualize_classes
from .base import Job, Method, Outcome, row, rows, scaled_steps


# classes: activation maximization of every class logit
@dataclass
class ClassesSettings:
    """``classes``: activation maximization of every class logit.

    Args:
        max_classes: the first this-many classes are rendered.
        steps_scale: render steps as a multiple of ``steps`` (logits sit at the end of the network: they
            need more steps than a middle layer's channels).
        logprob_weight: weight of the class's log-probability added to its logit.
        starts: the flat colours each class is rendered from (``mean``: the data's mean colour; ``gray``);
            per class the render with the higher objective in expectation over the transforms is kept, and
            vis.json records which (``started_from``).
    """

    max_classes: int = 24
    steps_scale: float = 1.5
    logprob_weight: float = 1.0
    starts: list[str] = field(default_factory=lambda: ["mean", "gray"])


class Classes(Method, name="classes", takes_layer=False, settings=ClassesSettings):
    """Every class logit (plus its log-probability), batched."""

    def run(self, job: Job) -> Outcome:
        s, ctx = job.settings, job.ctx
        classes = list(range(min(job.net.num_classes, s.max_classes)))
        recipe = ctx.recipe.with_(steps=scaled_steps(ctx.recipe.steps, s.steps_scale), starts=tuple(s.starts))
        r = visualize_classes(job.net, classes, ctx.size, recipe, ctx.color, job.real, logprob_weight=s.logprob_weight)
        names = [str(ctx.data.classes[c]) for c in classes]
        return Outcome(
            {**r.recipe, "logprob_weight": s.logprob_weight},
            {"classes": names, "logits": r.values.tolist()},
            render=r,
            classes=classes,
            recipe_used=recipe,
        )

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        images = out.render.images
        return {
            "class_confidence": Q.class_confidence(job.net, images, out.classes),
            **job.natural(images),
            "transform_robustness": Q.transform_robustness(
                job.net, O.classes(out.classes), images, out.recipe_used.tf()
            ),
        }

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        return rows([row("classes: " + ", ".join(out.details["classes"]), out.render.images)])

    def describe(self, job: Job, out: Outcome) -> str:
        return "Activation maximization of every class logit (plus its log-probability), batched."


# naive: the control the natural-statistics check must reject
@dataclass
class NaiveSettings:
    """``naive``: the control, rendered with pixels, no colour decorrelation, no transforms and no penalty.

    Args:
        lr: its Adam learning rate (pixels need a larger step than the Fourier parameterization).
    """

    lr: float = 0.05


class Naive(Method, name="naive", settings=NaiveSettings):
    """The control the natural-statistics check must reject."""

    def run(self, job: Job) -> Outcome:
        ctx = job.ctx
        chans = job.sample_channels()
        shared = ctx.recipe
        naive = Recipe.naive(steps=shared.steps, lr=job.settings.lr, seed=shared.seed, batch_size=shared.batch_size)
        rc = visualize_channels(job.net, job.layer, chans, ctx.size, recipe=naive, real=job.real)
        rk = visualize_classes(job.net, range(job.net.num_classes), ctx.size, naive, None, job.real)
        return Outcome(naive.to_dict(), channels=chans, channel_images=rc.images, class_images=rk.images)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        hc = Q.high_frequency_ratio(out.channel_images.cpu(), job.ctx.real)
        hk = Q.high_frequency_ratio(out.class_images.cpu(), job.ctx.real)
        # The control passes when the natural-statistics check *rejects* the naive render.
        return {
            "channels_rejected": Q.figure(hc.value, 2.0, ">", **hc.detail),
            "classes_rejected": Q.figure(hk.value, 2.0, ">", **hk.detail),
        }

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        ncol = min(len(out.channels), 6)
        channels = row(f"naive {job.layer} channels", out.channel_images, ncol=ncol)
        return rows([channels, row("naive classes", out.class_images)])

    def describe(self, job: Job, out: Outcome) -> str:
        return (
            "Control: the same objectives with a naive recipe (pixels, no colour decorrelation, no transforms, no "
            "penalty). Its high-frequency ratio must exceed 2, i.e. the natural-statistics check must reject it."
        )


# spectra: the class renders' frequencies, over several seeds
@dataclass
class SpectraSettings(ClassesSettings):
    """``spectra``: what frequencies the class renders carry, relative to the reference photos. Every class is
    rendered as ``classes`` renders it (these settings default to its own) and with the naive recipe, from each
    of ``seeds`` render seeds (the run's seed, then the next ones), so a difference between two nets' renders can
    be told from one seed's luck; each render's radially averaged power spectrum is kept.

    Args:
        seeds: render seeds.
        naive_lr: the naive renders' Adam learning rate (``naive.lr``'s default).
    """

    seeds: int = 3
    naive_lr: float = 0.05


class Spectra(Method, name="spectra", takes_layer=False, settings=SpectraSettings):
    """What frequencies the class renders carry, over several render seeds, beside the naive renders'."""

    def run(self, job: Job) -> Outcome:
        s, ctx = job.settings, job.ctx
        classes = list(range(min(job.net.num_classes, s.max_classes)))
        steps = scaled_steps(ctx.recipe.steps, s.steps_scale)
        seeds = [ctx.recipe.seed + k for k in range(s.seeds)]
        photos = Q.radial_power(ctx.real.cpu())
        rendered: dict[str, list[torch.Tensor]] = {"class": [], "naive": []}
        for seed in seeds:
            recipe = ctx.recipe.with_(steps=steps, starts=tuple(s.starts), seed=seed)
            r = visualize_classes(job.net, classes, ctx.size, recipe, ctx.color, job.real, s.logprob_weight)
            rendered["class"].append(r.images.cpu())
            naive = Recipe.naive(steps=ctx.recipe.steps, lr=s.naive_lr, seed=seed, batch_size=ctx.recipe.batch_size)
            rendered["naive"].append(visualize_classes(job.net, classes, ctx.size, naive, None, job.real).images.cpu())
        photo_high = float(Q.high_frequency_share(photos).mean())
        details: dict[str, Any] = {"classes": classes, "seeds": seeds, "photos_high": photo_high}
        for kind, images in rendered.items():
            power = Q.radial_power(torch.cat(images))  # seed-major: seeds[0]'s classes, then seeds[1]'s...
            high = Q.high_frequency_share(power)
            details[f"{kind}_high"] = high.tolist()
            details[f"{kind}_high_ratio"] = (high / max(photo_high, 1e-12)).tolist()
            details[f"{kind}_relative_spectrum"] = Q.relative_spectrum(power, photos)
        recipe = ctx.recipe.with_(steps=steps, starts=tuple(s.starts))
        return Outcome({**recipe.to_dict(), "seeds": seeds}, details, images=rendered)

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        seeds = out.details["seeds"]
        return rows(
            [
                row(f"{kind} renders, seed {seed}", out.images[kind][i])
                for kind in out.images
                for i, seed in enumerate(seeds)
            ]
        )

    def describe(self, job: Job, out: Outcome) -> str:
        d = out.details
        ratio = float(np.mean(d["class_high_ratio"]))
        naive = float(np.mean(d["naive_high_ratio"]))
        return (
            f"Every class rendered from {len(d['seeds'])} seeds, with the classes recipe and with the naive one. Their "
            f"power above half the Nyquist frequency is {ratio:.1f}x the photos' share (naive renders: {naive:.1f}x)."
        )


# multifaceted: facets of a class from clusters of its best test images
@dataclass
class MultifacetedSettings:
    """``multifaceted``: facets of a class found by clustering its best test images.

    Args:
        classes: the first this-many classes.
        facets: clusters (facets) per class.
        top: best test images clustered.
        steps_scale: render steps as a multiple of ``steps`` (each facet starts from its cluster's mean).
        min_steps: at least this many steps.
    """

    classes: int = 2
    facets: int = 2
    top: int = 60
    steps_scale: float = 0.5
    min_steps: int = 32


class Multifaceted(Method, name="multifaceted", takes_layer=False, settings=MultifacetedSettings):
    """Facets of the first classes, from clusters of their best test images."""

    def run(self, job: Job) -> Outcome:
        s, ctx, net = job.settings, job.ctx, job.net
        embed = net.stage_names()[0]
        recipe = ctx.recipe.with_(steps=scaled_steps(ctx.recipe.steps, s.steps_scale, s.min_steps))
        facets = [
            multifaceted(
                net,
                O.class_logit(c),
                ctx.test_set,
                embed,
                n_facets=s.facets,
                n_top=s.top,
                recipe=recipe,
                color=ctx.color,
            )
            for c in range(min(s.classes, net.num_classes))
        ]
        details = {
            f"class{c}": {
                "indices": f.indices.tolist(),
                "assignments": f.assignments.tolist(),
                "values": f.values.tolist(),
            }
            for c, f in enumerate(facets)
        }
        return Outcome({"embed_layer": embed, **facets[-1].recipe}, details, facets=facets, embed=embed)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        src, idx = job.ctx.data.splits()["test"]
        subtypes = getattr(src, "subtypes", None)
        quality = {}
        for c, f in enumerate(out.facets):
            quality[f"objective_rises_class{c}"] = Q.objective_rises(f.values.cpu(), f.scores[:1].expand(len(f.values)))
            if subtypes is not None:
                truth = torch.tensor([subtypes[idx[int(i)]] for i in f.indices])
                quality[f"facet_purity_class{c}"] = Q.facet_purity(f.assignments, truth)
        return quality

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        labelled = []
        for c, f in enumerate(out.facets):
            labelled += [row(f"class {c}: facet starts (cluster means)", f.starts), row(f"class {c}: facets", f.images)]
        return rows(labelled)

    def describe(self, job: Job, out: Outcome) -> str:
        s = job.settings
        return (
            f"Multifaceted visualization (Nguyen et al. 2016): the top-{s.top} test images of a class, embedded at "
            f"{out.embed}, clustered (k-means, {s.facets} facets), each facet rendered from its cluster's mean image. "
            "Purity is measured against the procedural data's planted sub-types."
        )
