"""Every method ``evaluate.py visualize`` runs, each one :class:`~topdown.vis.method.Method` object, and
:data:`METHODS`, the one registry of them (in the order they run).

Each method reads the shared recipe from its job's context and its own numbers from its settings
(``VisConfig.<method>``); nothing here changes a step count or a learning rate that is not an option.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..models.base import is_topdown
from . import settings as S
from .method import Job, Method, Outcome, row, rows


def _units_figures(job: Job, out: Outcome, objective: Any) -> dict[str, Any]:
    """Figures of a batched render of units: reaching the real maxima, natural statistics, robustness."""
    from . import quality as Q

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


class Classes(Method, name="classes", takes_layer=False, settings=S.ClassesSettings):
    """Every class logit (plus its log-probability), batched."""

    def run(self, job: Job) -> Outcome:
        from .methods import visualize_classes

        s, ctx = job.settings, job.ctx
        classes = list(range(min(job.net.num_classes, s.max_classes)))
        recipe = ctx.recipe.with_(steps=S.scaled_steps(ctx.recipe.steps, s.steps_scale), starts=tuple(s.starts))
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
        from . import objectives as O
        from . import quality as Q

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


class Channels(Method, name="channels"):
    """Sampled channels of the layer, one batched render."""

    def run(self, job: Job) -> Outcome:
        from . import quality as Q
        from .methods import visualize_channels

        ctx = job.ctx
        chans = job.sample_channels()
        r = visualize_channels(job.net, job.layer, chans, ctx.size, ctx.recipe, ctx.color, job.real)
        real_max = Q.channel_means(job.net, job.layer, job.real).max(0).values[chans]
        return Outcome(r.recipe, _units_details(chans, r, real_max), render=r, real_max=real_max)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        from . import objectives as O

        return _units_figures(job, out, O.channels(job.layer, out.details["channels"]))

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        return _units_panels(job, out, "channels")

    def describe(self, job: Job, out: Outcome) -> str:
        n = len(out.details["channels"])
        return f"Activation maximization of {n} sampled channels of {job.layer}, all in one batched render."


class Neurons(Method, name="neurons"):
    """The centre neuron of the sampled channels."""

    def run(self, job: Job) -> Outcome:
        from .hooks import activations
        from .methods import visualize_neurons

        ctx = job.ctx
        chans = job.sample_channels()
        r = visualize_neurons(job.net, job.layer, chans, ctx.size, ctx.recipe, ctx.color)
        t = activations(job.net, job.real, [job.layer])[job.layer]
        real_max = t[:, chans, t.shape[2] // 2, t.shape[3] // 2].max(0).values
        return Outcome(r.recipe, _units_details(chans, r, real_max), render=r, real_max=real_max)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        from . import objectives as O

        objective = O.Objective.sum([O.neuron(job.layer, c, batch=i) for i, c in enumerate(out.details["channels"])])
        return _units_figures(job, out, objective)

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        return _units_panels(job, out, "centre neurons")

    def describe(self, job: Job, out: Outcome) -> str:
        n = len(out.details["channels"])
        return f"The centre neuron of {n} channels of {job.layer} (spatially localized caricatures)."


class Naive(Method, name="naive", settings=S.NaiveSettings):
    """The control the natural-statistics check must reject."""

    def run(self, job: Job) -> Outcome:
        from .methods import visualize_channels, visualize_classes
        from .recipe import Recipe

        ctx = job.ctx
        chans = job.sample_channels()
        shared = ctx.recipe
        naive = Recipe.naive(steps=shared.steps, lr=job.settings.lr, seed=shared.seed, batch_size=shared.batch_size)
        rc = visualize_channels(job.net, job.layer, chans, ctx.size, naive, None, job.real)
        rk = visualize_classes(job.net, range(job.net.num_classes), ctx.size, naive, None, job.real)
        return Outcome(naive.to_dict(), channels=chans, channel_images=rc.images, class_images=rk.images)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        from . import quality as Q

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


class Spectra(Method, name="spectra", takes_layer=False, settings=S.SpectraSettings):
    """What frequencies the class renders carry, over several render seeds, beside the naive renders'."""

    def run(self, job: Job) -> Outcome:
        from . import quality as Q
        from .methods import visualize_classes
        from .recipe import Recipe

        s, ctx = job.settings, job.ctx
        classes = list(range(min(job.net.num_classes, s.max_classes)))
        steps = S.scaled_steps(ctx.recipe.steps, s.steps_scale)
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


class Dream(Method, name="dream", settings=S.DreamSettings):
    """Deep dream: from real images, amplify everything the layer responds to."""

    what = "amplify everything it responds to (mean squared activation)"  # for the description

    def render(self, job: Job, images: torch.Tensor, recipe: Any) -> Any:
        """The render that starts from ``images`` (the one thing a caricature does differently)."""
        from .methods import dream

        return dream(job.net, images, job.layer, recipe, job.ctx.color)

    def start_values(self, job: Job, images: torch.Tensor, r: Any) -> torch.Tensor:
        """The objective on the untouched images, which the render must raise."""
        return torch.tensor(r.recipe["start_values"])

    def run(self, job: Job) -> Outcome:
        s, ctx = job.settings, job.ctx
        imgs, _ = ctx.real_images()
        recipe = ctx.recipe.with_(steps=S.scaled_steps(ctx.recipe.steps, s.steps_scale, s.min_steps), lr=s.lr)
        r = self.render(job, imgs, recipe)
        start = self.start_values(job, imgs, r)
        return Outcome(r.recipe, {"values": r.values.tolist(), "start": start.tolist()}, render=r, start=start)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        from . import quality as Q

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
        from .methods import caricature

        return caricature(job.net, images, job.layer, recipe, job.ctx.color)

    def start_values(self, job: Job, images: torch.Tensor, r: Any) -> torch.Tensor:
        from . import objectives as O
        from .hooks import activations
        from .render import evaluate

        objective = O.caricature(job.layer, activations(job.net, images, [job.layer])[job.layer])
        return evaluate(job.net, objective, images).cpu()


class Inversion(Method, name="inversion", settings=S.InversionSettings):
    """Images reconstructed from their activation at the layer."""

    def run(self, job: Job) -> Outcome:
        from .methods import invert
        from .transforms import Compose

        s, ctx = job.settings, job.ctx
        imgs, _ = ctx.real_images(max(s.min_images, ctx.images))
        recipe = ctx.recipe.with_(
            steps=S.scaled_steps(ctx.recipe.steps, s.steps_scale),
            lr=s.lr,
            tv_weight=s.tv_weight,
            transforms=None if s.transforms else Compose(()),
            redirect_relu_steps=s.redirect_relu_steps,
        )
        r = invert(job.net, imgs, job.layer, recipe, ctx.color)
        return Outcome(r.recipe, {"relative_error": r.values.tolist()}, render=r, sources=imgs)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        from . import quality as Q

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


class Pairs(Method, name="pairs", settings=S.PairsSettings):
    """Pairs of channels optimized jointly."""

    def run(self, job: Job) -> Outcome:
        from . import quality as Q
        from .methods import channel_pairs

        ctx = job.ctx
        chans = job.sample_channels()
        pairs = [(chans[i], chans[i + 1]) for i in range(0, min(len(chans) - 1, 2 * job.settings.max_pairs), 2)]
        r = channel_pairs(job.net, job.layer, pairs, ctx.size, ctx.recipe, ctx.color, job.real)
        real_max = Q.channel_means(job.net, job.layer, job.real).max(0).values
        return Outcome(r.recipe, {"pairs": pairs, "values": r.values.tolist()}, render=r, real_max=real_max)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        from . import quality as Q

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


class Interpolation(Method, name="interpolation", settings=S.InterpolationSettings):
    """Aligned interpolation between two channels."""

    def run(self, job: Job) -> Outcome:
        from .methods import interpolate

        ctx, frames = job.ctx, job.settings.frames
        a, b = job.sample_channels()[:2]
        args = (job.net, job.layer, a, b, ctx.size, frames, ctx.recipe, ctx.color, job.real)
        aligned = interpolate(*args)
        independent = interpolate(*args, aligned=False)
        details = {"a": a, "b": b, "values": aligned.values.tolist()}
        return Outcome(aligned.recipe, details, aligned=aligned, independent=independent)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        from . import quality as Q

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


def _in_words(n: int) -> str:
    words = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n - 1] if 1 <= n <= len(words) else str(n)


class Diversity(Method, name="diversity", settings=S.DiversitySettings):
    """One channel rendered several times, with and without a diversity term."""

    def run(self, job: Job) -> Outcome:
        from . import objectives as O
        from .methods import unit_scale
        from .render import evaluate

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
        from . import quality as Q

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


class Dictionary(Method, name="dictionary", settings=S.DictionarySettings):
    """Each channel's icon beside its top test examples."""

    def run(self, job: Job) -> Outcome:
        from . import quality as Q
        from .dictionary import semantic_dictionary

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
        from . import quality as Q

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
        from .dictionary import activation_grid

        ctx = job.ctx
        img = ctx.real[0].to(ctx.device)
        g = activation_grid(job.net, img, job.layer, recipe=ctx.recipe, color=ctx.color, real=job.real)
        details = {"channels": g.channel.tolist(), "strength": g.strength.tolist()}
        return Outcome(g.recipe, details, grid=g, image=img)

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        import torch.nn.functional as F

        side = out.grid.mosaic.shape[-1]
        big = F.interpolate(out.image[None].cpu(), size=(side, side), mode="nearest")
        return rows([row("image | dominant channels", torch.cat([big, out.grid.mosaic[None]]))])

    def describe(self, job: Job, out: Outcome) -> str:
        return f"Activation grid of {job.layer}: at each cell, the icon of its strongest channel, faded by strength."


class Multifaceted(Method, name="multifaceted", takes_layer=False, settings=S.MultifacetedSettings):
    """Facets of the first classes, from clusters of their best test images."""

    def run(self, job: Job) -> Outcome:
        from . import objectives as O
        from .facets import multifaceted

        s, ctx, net = job.settings, job.ctx, job.net
        embed = net.stage_names()[0]
        recipe = ctx.recipe.with_(steps=S.scaled_steps(ctx.recipe.steps, s.steps_scale, s.min_steps))
        facets = [
            multifaceted(net, O.class_logit(c), ctx.test_set, embed, s.facets, s.top, recipe, ctx.color)
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
        from . import quality as Q

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


def _ig_steps_text(start: int) -> str:
    from .attribution import IG_MAX_STEPS
    from .quality import IG_COMPLETENESS_THRESHOLD

    return (
        f"Gauss-Legendre steps from {start}, doubled until the completeness error is at most "
        f"{IG_COMPLETENESS_THRESHOLD} (up to {IG_MAX_STEPS})"
    )


class Attribution(Method, name="attribution", takes_layer=False, settings=S.AttributionSettings):
    """captum saliency methods, each with the deletion test."""

    def run(self, job: Job) -> Outcome:
        from . import quality as Q
        from .attribution import METHODS, attribute, integrated_gradients

        s, ctx = job.settings, job.ctx
        imgs, labels = ctx.real_images()
        ig = integrated_gradients(job.net, imgs, labels, n_steps=s.ig_steps, tolerance=Q.IG_COMPLETENESS_THRESHOLD)
        maps = {
            m: ig.attributions
            if m == "integrated_gradients"
            else attribute(
                job.net,
                imgs,
                labels,
                m,
                seed=ctx.seed,
                nt_samples=s.smoothgrad_samples,
                stdev=s.smoothgrad_stdev,
            )
            for m in METHODS
        }
        recipe = {
            "methods": list(METHODS),
            "n_steps": ig.n_steps,
            "smoothgrad_samples": s.smoothgrad_samples,
            "smoothgrad_stdev": s.smoothgrad_stdev,
            "seed": ctx.seed,
        }
        return Outcome(recipe, images=imgs, labels=labels, ig=ig, maps=maps)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        from . import quality as Q

        quality = {
            f"deletion_{m}": Q.deletion_test(job.net, out.images, a, out.labels, seed=job.ctx.seed)
            for m, a in out.maps.items()
        }
        quality["ig_completeness"] = Q.ig_completeness(out.ig.delta, out.ig.output_change)
        return quality

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        from .plot import overlay

        labelled = [row("image (target: its label)", out.images)]
        labelled += [row(m, overlay(out.images, a)) for m, a in out.maps.items()]
        return rows(labelled)

    def describe(self, job: Job, out: Outcome) -> str:
        return (
            "Saliency through captum: vanilla gradient, SmoothGrad, integrated gradients (black baseline, "
            f"{_ig_steps_text(job.settings.ig_steps)}), Grad-CAM (last stage), DeconvNet, guided backprop. Deletion: "
            "removing the top-20% salient pixels must lower the label's probability more than removing the 20% least "
            "salient (the drop for a random, scattered 20% is recorded beside it)."
        )


class PyramidAttribution(Method, name="pyramid_attribution", takes_layer=False, settings=S.PyramidAttributionSettings):
    """Integrated gradients with respect to every pyramid level of a top-down net."""

    def applies(self, job: Job) -> bool:
        return is_topdown(job.net)

    def run(self, job: Job) -> Outcome:
        from . import quality as Q
        from .attribution import pyramid_attribution

        imgs, labels = job.ctx.real_images()
        steps = job.settings.ig_steps
        pa = pyramid_attribution(job.net, imgs, labels, n_steps=steps, tolerance=Q.IG_COMPLETENESS_THRESHOLD)
        details = {**pa.summary(), "contribution": pa.contribution.tolist()}
        return Outcome({"n_steps": pa.n_steps, "baseline": 0.0}, details, attribution=pa, images=imgs)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        from . import quality as Q

        return {"ig_completeness": Q.ig_completeness(out.attribution.delta, out.attribution.output_change)}

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        import torch.nn.functional as F

        from .plot import heatmap

        pa, imgs = out.attribution, out.images
        share = pa.share.mean(0)
        labelled = [row("image", imgs)]
        for i, (size, a) in enumerate(zip(pa.level_sizes, pa.attributions)):
            up = F.interpolate(heatmap(a), size=imgs.shape[-2:], mode="nearest")
            labelled.append(row(f"level {size} px: share {share[i]:.2f}", up))
        return rows(labelled)

    def describe(self, job: Job, out: Outcome) -> str:
        return (
            "Attribution per pyramid level (integrated gradients with respect to every level, coarse to fine, "
            f"{_ig_steps_text(job.settings.ig_steps)}): which resolution drove the decision."
        )


class Dissection(Method, name="dissection", settings=S.DissectionSettings):
    """Unit IoU with the procedural flowers' part masks."""

    def applies(self, job: Job) -> bool:
        from ..data import SyntheticFlowers

        src, _ = job.ctx.data.splits()["test"]
        return isinstance(src, SyntheticFlowers)  # only the procedural flowers have part masks

    def run(self, job: Job) -> Outcome:
        from .dissection import dissect, synthetic_masks

        src, idx = job.ctx.data.splits()["test"]
        masks = synthetic_masks(src, idx)
        d = dissect(job.net, job.layer, job.ctx.test_set, masks, list(src.PARTS), quantile=job.settings.quantile)
        details = {**d.summary(), "iou": d.iou.tolist(), "best": d.best}
        return Outcome({"quantile": d.quantile, "concepts": d.concepts}, details, dissection=d)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        from . import quality as Q

        return {"above_chance": Q.dissection_above_chance(out.dissection.iou, out.dissection.shuffled_iou)}

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        from .plot import matrix_image

        d = out.dissection
        units = [str(i) for i in range(d.iou.shape[0])]
        return {"": matrix_image(d.iou, units, d.concepts, f"{job.layer}: IoU per unit")}

    def describe(self, job: Job, out: Outcome) -> str:
        return (
            f"Network dissection of {job.layer} on the procedural flowers' part masks (top-"
            f"{100 * (1 - out.dissection.quantile):.0f}% activation threshold per unit; chance = masks shuffled "
            "between images)."
        )


_LEARNED_PRIOR_CAVEAT = (
    "What the generator, trained on the data, can draw that the net calls the class: not the net's own preferred "
    "stimulus (compare the pixel-space renders of classes, or the priors method)."
)


def _class_list(job: Job, most: int) -> list[int]:
    return list(range(min(job.net.num_classes, most)))


def _class_names(job: Job, classes: list[int]) -> list[str]:
    return [str(job.ctx.data.classes[c]) for c in classes]


def _train_codes(job: Job) -> tuple[torch.Tensor, torch.Tensor]:
    """The codes of the training images behind the colour statistics, and their labels."""
    from ..generator.model import codes

    ctx = job.ctx
    with torch.no_grad():
        h = torch.cat([codes(job.net, x.to(ctx.device)) for x in ctx.train_images.split(128)])
    return h, ctx.train_labels.to(ctx.device)


def _chain_details(job: Job, chains: Any, data_codes: torch.Tensor) -> dict[str, Any]:
    from ..generator.prior import code_distance

    prior = job.prior
    half = len(data_codes) // 2
    return {
        "classes": chains.classes.tolist(),
        "logits": chains.logits.tolist(),
        "probs": chains.probs.tolist(),
        "prob_trace_start_end": [chains.trace[0], chains.trace[-1]] if chains.trace else [],
        "code_distance": code_distance(prior, chains.codes, data_codes).tolist(),
        # the same distance between two halves of the data's own codes: what "on the data" measures
        "data_code_distance": float(code_distance(prior, data_codes[:half], data_codes[half:]).mean()),
    }


def _chain_figures(job: Job, chains: Any) -> dict[str, Any]:
    from . import quality as Q

    confidence = Q.class_confidence(job.net, chains.images, chains.classes.tolist())
    return {"class_confidence": confidence, **job.natural(chains.images)}


class DgnAm(Method, name="dgn_am", takes_layer=False, settings=S.DgnAmSettings):
    """Every class through the net's generator: gradient ascent on the code (DGN-AM)."""

    uses_generator = True

    def applies(self, job: Job) -> bool:
        return job.prior is not None

    def run(self, job: Job) -> Outcome:
        from ..generator.prior import dgn_am

        s = job.settings
        classes = _class_list(job, s.max_classes)
        r = dgn_am(job.net, job.prior, classes, steps=s.steps, lr=s.lr)
        details = {"class_names": _class_names(job, classes), **_chain_details(job, r, _train_codes(job)[0])}
        return Outcome({**r.recipe, "generator": job.prior.path}, details, chains=r)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        return _chain_figures(job, out.chains)

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        return rows([row("DGN-AM classes: " + ", ".join(out.details["class_names"]), out.chains.images)])

    def describe(self, job: Job, out: Outcome) -> str:
        s = job.settings
        return (
            f"DGN-AM: {s.steps} steps of ascent on each class logit in the code space of this net's generator "
            f"(steps normalized by the gradient's mean size, the code clipped to the training codes' range). "
            + _LEARNED_PRIOR_CAVEAT
        )


class Ppgn(Method, name="ppgn", takes_layer=False, settings=S.PpgnSettings):
    """The PPGN-h sampler through the net's generator: several chains per class, and chains from the means of a
    class's code clusters (multifaceted)."""

    uses_generator = True

    def applies(self, job: Job) -> bool:
        return job.prior is not None

    def run(self, job: Job) -> Outcome:
        from ..generator.prior import facet_starts, ppgn

        s, ctx = job.settings, job.ctx
        classes = _class_list(job, s.max_classes)
        knobs = {"steps": s.steps, "eps1": s.eps1, "eps2": s.eps2, "eps3": s.eps3, "kind": s.prior}
        r = ppgn(job.net, job.prior, classes, chains=s.chains, seed=ctx.seed, **knobs)
        data_codes, labels = _train_codes(job)
        facet_classes = [c for c in classes[: s.facet_classes] if (labels == c).sum() >= s.facets]
        facets = None
        if facet_classes and s.facets > 1:
            starts = torch.cat([facet_starts(data_codes[labels == c], s.facets, ctx.seed) for c in facet_classes])
            facets = ppgn(job.net, job.prior, facet_classes, chains=s.facets, seed=ctx.seed, start=starts, **knobs)
        details = {"class_names": _class_names(job, classes), **_chain_details(job, r, data_codes)}
        if facets is not None:
            details["facets"] = {"classes": facet_classes, "probs": facets.probs.tolist()}
        return Outcome({**r.recipe, "generator": job.prior.path, "facets": s.facets}, details, chains=r, facets=facets)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        return _chain_figures(job, out.chains)

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        chains = job.settings.chains
        labelled = [
            row(f"PPGN, {chains} chains per class: " + ", ".join(out.details["class_names"]), out.chains.images)
        ]
        if out.facets is not None:
            labelled.append(row("PPGN from facet means (multifaceted), per class", out.facets.images))
        return rows(labelled)

    def describe(self, job: Job, out: Outcome) -> str:
        s = job.settings
        return (
            f"PPGN-h: {s.chains} chains per class of {s.steps} steps (prior term eps1 {s.eps1:g} through the "
            f"{'code autoencoder' if s.prior == 'dae' else 'reconstruction E(G(h))'}, class term eps2 {s.eps2:g}, "
            f"noise eps3 {s.eps3:g}), then chains from the means of {s.facets} clusters of a class's training codes. "
            + _LEARNED_PRIOR_CAVEAT
        )


class Priors(Method, name="priors", takes_layer=False, settings=S.PriorsSettings):
    """The class objectives through every prior the net has, measured side by side (:mod:`topdown.vis.priors`)."""

    uses_generator = True
    uses_other_nets = True

    def _pixel(self, job: Job, classes: list[int], maco: bool) -> tuple[torch.Tensor, torch.Tensor]:
        from .methods import visualize_classes

        s, ctx = job.settings, job.ctx
        images, targets = [], []
        for k in range(s.renders):
            recipe = ctx.recipe.with_(
                steps=S.scaled_steps(ctx.recipe.steps, s.steps_scale),
                starts=tuple(s.starts),
                seed=ctx.recipe.seed + k,
                spectrum=ctx.spectrum if maco else None,
            )
            r = visualize_classes(job.net, classes, ctx.size, recipe, ctx.color, job.real, s.logprob_weight)
            images.append(r.images)
            targets.append(torch.tensor(classes))
        return torch.cat(images), torch.cat(targets)

    def _learned(self, job: Job, classes: list[int], which: str) -> tuple[torch.Tensor, torch.Tensor]:
        from ..generator.prior import dgn_am, ppgn

        s, ctx, prior = job.settings, job.ctx, job.prior
        if which == "ppgn":
            p = s.ppgn
            knobs = {"steps": p.steps, "eps1": p.eps1, "eps2": p.eps2, "eps3": p.eps3, "kind": p.prior}
            r = ppgn(job.net, prior, classes, chains=s.renders, seed=ctx.seed, **knobs)
        else:  # the first start the codes' mean, the others spread around it
            gen = torch.Generator().manual_seed(ctx.seed)
            each = [c for c in classes for _ in range(s.renders)]
            noise = torch.randn(len(each), prior.mean.numel(), generator=gen).to(prior.mean.device)
            noise[:: s.renders] = 0
            start = prior.clip(prior.mean + 0.5 * prior.std * noise)
            r = dgn_am(job.net, prior, each, steps=s.dgn_am.steps, lr=s.dgn_am.lr, start=start)
        return r.images, r.classes

    def run(self, job: Job) -> Outcome:
        import time

        from .priors import PRIORS, measure, table

        ctx = job.ctx
        classes = _class_list(job, job.settings.max_classes)
        kept = [p for p in PRIORS if job.prior is not None or p in ("fourier", "maco")]
        images, measures = {}, {}
        for prior in kept:
            start = time.perf_counter()
            if prior in ("fourier", "maco"):
                imgs, targets = self._pixel(job, classes, prior == "maco")
            else:
                imgs, targets = self._learned(job, classes, prior)
            secs = time.perf_counter() - start
            order = torch.argsort(targets, stable=True)  # class-major
            images[prior] = imgs[order].detach()
            real = job.real
            measures[prior] = measure(
                images[prior], targets[order], job.net, job.others, real, ctx.labels, ctx.train_images, secs, ctx.seed
            )
        judges = list(job.others) or [None]
        details = {
            "classes": classes,
            "measures": measures,
            "tables": [table(measures, judge) for judge in judges],
        }
        return Outcome({"priors": kept, "renders": job.settings.renders}, details, images=images)

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        n = job.settings.renders
        return rows([row(f"{prior} ({n} per class)", imgs) for prior, imgs in out.images.items()])

    def describe(self, job: Job, out: Outcome) -> str:
        return (
            f"The class objectives through {', '.join(out.images)}, {job.settings.renders} images per class each, "
            "measured side by side (target probability here and under the other nets, diversity and KID in the other "
            "nets' code space, distance to the nearest training image over real images' own, objective over real "
            "images' largest, time). Fourier and MACO show the net's own preferred stimulus; DGN-AM and PPGN show "
            "what its generator can draw that the net calls the class, not the net's own preferred stimulus."
        )


#: The one registry: every method, in the order they run.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Classes(),
        Channels(),
        Neurons(),
        Naive(),
        Spectra(),
        Dream(),
        Caricature(),
        Inversion(),
        Pairs(),
        Interpolation(),
        Diversity(),
        Dictionary(),
        ActivationGrid(),
        Multifaceted(),
        Attribution(),
        PyramidAttribution(),
        Dissection(),
        DgnAm(),
        Ppgn(),
        Priors(),
    )
}
