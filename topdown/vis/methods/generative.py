"""Methods that render through a net's learned prior (its generator, :mod:`topdown.generator`): DGN-AM
(``dgn_am``), the PPGN sampler (``ppgn``), and every prior side by side (``priors``: Fourier, MACO, DGN-AM and
PPGN, measured by :mod:`topdown.vis.priors`). Each method's settings and its class the runner calls sit
together; the samplers are :mod:`topdown.generator.prior`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ...generator.model import codes
from ...generator.prior import code_distance, dgn_am, facet_starts, ppgn
from .. import quality as Q
from ..priors import PRIORS, measure, table
from ..units import visualize_classes
from .base import Job, Method, Outcome, row, rows, scaled_steps
from .classes import ClassesSettings

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
    ctx = job.ctx
    with torch.no_grad():
        h = torch.cat([codes(job.net, x.to(ctx.device)) for x in ctx.train_images.split(128)])
    return h, ctx.train_labels.to(ctx.device)


def _chain_details(job: Job, chains: Any, data_codes: torch.Tensor) -> dict[str, Any]:
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
    confidence = Q.class_confidence(job.net, chains.images, chains.classes.tolist())
    return {"class_confidence": confidence, **job.natural(chains.images)}


# dgn_am: activation maximization in the code space of the generator
@dataclass
class DgnAmSettings:
    """``dgn_am``: activation maximization of every class in the code space of the net's generator (DGN-AM).

    Args:
        max_classes: the first this-many classes are rendered.
        steps: ascent steps on the code.
        lr: each step's size, in units of the codes' per-dimension spread (the gradient normalized by its mean
            absolute value, as the original).
    """

    max_classes: int = 24
    steps: int = 200
    lr: float = 0.05


class DgnAm(Method, name="dgn_am", takes_layer=False, settings=DgnAmSettings):
    """Every class through the net's generator: gradient ascent on the code (DGN-AM)."""

    uses_generator = True

    def applies(self, job: Job) -> bool:
        return job.prior is not None

    def run(self, job: Job) -> Outcome:
        s = job.settings
        classes = _class_list(job, s.max_classes)
        r = dgn_am(job.prior, classes, steps=s.steps, lr=s.lr)
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


# ppgn: the PPGN-h sampler, several chains per class and from facet means
@dataclass
class PpgnSettings:
    """``ppgn``: the PPGN-h sampler through the net's generator, several chains per class, and the same
    sampler started from the means of a class's code clusters (multifaceted).

    Args:
        max_classes: the first this-many classes are sampled.
        chains: chains per class (diversity).
        steps: sampler steps.
        eps1: weight of the prior term ``R(h) - h``.
        eps2: weight of the class term (the class log-probability's gradient, normalized as DGN-AM's, in units
            of the codes' spread).
        eps3: noise, in units of the codes' spread.
        prior: ``dae`` (the code autoencoder trained with the generator) or ``reconstruction`` (``E(G(h))``).
        facets: clusters of a class's training codes whose means start the multifaceted chains.
        facet_classes: the first this-many classes get multifaceted chains.
    """

    max_classes: int = 24
    chains: int = 3
    steps: int = 200
    eps1: float = 0.1
    eps2: float = 0.05
    eps3: float = 0.02
    prior: Literal["dae", "reconstruction"] = "dae"
    facets: int = 2
    facet_classes: int = 2


class Ppgn(Method, name="ppgn", takes_layer=False, settings=PpgnSettings):
    """The PPGN-h sampler through the net's generator: several chains per class, and chains from the means of a
    class's code clusters (multifaceted)."""

    uses_generator = True

    def applies(self, job: Job) -> bool:
        return job.prior is not None

    def run(self, job: Job) -> Outcome:
        s, ctx = job.settings, job.ctx
        classes = _class_list(job, s.max_classes)
        knobs = {"steps": s.steps, "eps1": s.eps1, "eps2": s.eps2, "eps3": s.eps3, "kind": s.prior}
        r = ppgn(job.prior, classes, chains=s.chains, seed=ctx.seed, **knobs)
        data_codes, labels = _train_codes(job)
        facet_classes = [c for c in classes[: s.facet_classes] if (labels == c).sum() >= s.facets]
        facets = None
        if facet_classes and s.facets > 1:
            starts = torch.cat([facet_starts(data_codes[labels == c], s.facets, ctx.seed) for c in facet_classes])
            facets = ppgn(job.prior, facet_classes, chains=s.facets, seed=ctx.seed, start=starts, **knobs)
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


# priors: the class objectives through every prior, measured side by side
@dataclass
class PriorsSettings(ClassesSettings):
    """``priors``: the same class objectives through each prior (Fourier, MACO and, where the net has a
    generator, DGN-AM and PPGN), measured side by side: the target's probability under this net and under
    every other net, diversity within a class, KID to the class's real images and the distance to the nearest
    training image (both under every other net's features), the objective against real images' maxima, and
    the time per render. The pixel-space renders use the ``classes`` recipe (these settings default to its own).

    Args:
        renders: images per class and prior (render seeds; chains for PPGN; starts for DGN-AM).
        dgn_am: DGN-AM's settings here.
        ppgn: PPGN's settings here.
    """

    max_classes: int = 6
    renders: int = 3
    dgn_am: DgnAmSettings = field(default_factory=DgnAmSettings)
    ppgn: PpgnSettings = field(default_factory=PpgnSettings)


class Priors(Method, name="priors", takes_layer=False, settings=PriorsSettings):
    """The class objectives through every prior the net has, measured side by side (:mod:`topdown.vis.priors`)."""

    uses_generator = True
    uses_other_nets = True

    def _pixel(self, job: Job, classes: list[int], maco: bool) -> tuple[torch.Tensor, torch.Tensor]:
        s, ctx = job.settings, job.ctx
        images, targets = [], []
        for k in range(s.renders):
            recipe = ctx.recipe.with_(
                steps=scaled_steps(ctx.recipe.steps, s.steps_scale),
                starts=tuple(s.starts),
                seed=ctx.recipe.seed + k,
                spectrum=ctx.spectrum if maco else None,
            )
            r = visualize_classes(job.net, classes, ctx.size, recipe, ctx.color, job.real, s.logprob_weight)
            images.append(r.images)
            targets.append(torch.tensor(classes))
        return torch.cat(images), torch.cat(targets)

    def _learned(self, job: Job, classes: list[int], which: str) -> tuple[torch.Tensor, torch.Tensor]:
        s, ctx, prior = job.settings, job.ctx, job.prior
        if which == "ppgn":
            p = s.ppgn
            knobs = {"steps": p.steps, "eps1": p.eps1, "eps2": p.eps2, "eps3": p.eps3, "kind": p.prior}
            r = ppgn(prior, classes, chains=s.renders, seed=ctx.seed, **knobs)
        else:  # the first start the codes' mean, the others spread around it
            gen = torch.Generator().manual_seed(ctx.seed)
            each = [c for c in classes for _ in range(s.renders)]
            noise = torch.randn(len(each), prior.mean.numel(), generator=gen).to(prior.mean.device)
            noise[:: s.renders] = 0
            start = prior.clip(prior.mean + 0.5 * prior.std * noise)
            r = dgn_am(prior, each, steps=s.dgn_am.steps, lr=s.dgn_am.lr, start=start)
        return r.images, r.classes

    def run(self, job: Job) -> Outcome:
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
            measures[prior] = measure(
                images[prior],
                targets[order],
                net=job.net,
                others=job.others,
                real=job.real,
                real_labels=ctx.labels,
                train=ctx.train_images,
                seconds=secs,
                seed=ctx.seed,
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
