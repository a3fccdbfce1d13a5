"""Methods that say what drove a decision and what units detect: captum saliency with the deletion test
(``attribution``), integrated gradients per pyramid level (``pyramid_attribution``) and network dissection on
part masks (``dissection``). Each method's settings and its class the runner calls sit together; the captum
wrappers are :mod:`topdown.vis.attribution` (the findings use them too), the dissection
:mod:`topdown.vis.dissection`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch.utils.data import Subset

from ...data import SyntheticFlowers
from ...models.base import is_topdown
from .. import quality as Q
from ..attribution import ATTRIBUTION_METHODS, IG_MAX_STEPS, attribute, integrated_gradients, pyramid_attribution
from ..dissection import dissect, synthetic_masks
from ..plot import heatmap, matrix_image, overlay
from .base import Job, Method, Outcome, row, rows


def _ig_steps_text(start: int) -> str:
    return (
        f"Gauss-Legendre steps from {start}, doubled until the completeness error is at most "
        f"{Q.IG_COMPLETENESS_THRESHOLD} (up to {IG_MAX_STEPS})"
    )


# attribution: captum saliency methods, each with the deletion test
@dataclass
class AttributionSettings:
    """``attribution``: captum saliency methods and the deletion test.

    Args:
        ig_steps: Gauss-Legendre steps integrated gradients start from (doubled until their completeness
            error passes).
        smoothgrad_samples: noisy copies SmoothGrad averages.
        smoothgrad_stdev: their noise level (pixels in [0, 1]).
    """

    ig_steps: int = 128
    smoothgrad_samples: int = 16
    smoothgrad_stdev: float = 0.1


class Attribution(Method, name="attribution", takes_layer=False, settings=AttributionSettings):
    """captum saliency methods, each with the deletion test."""

    def run(self, job: Job) -> Outcome:
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
            for m in ATTRIBUTION_METHODS
        }
        recipe = {
            "methods": list(ATTRIBUTION_METHODS),
            "n_steps": ig.n_steps,
            "smoothgrad_samples": s.smoothgrad_samples,
            "smoothgrad_stdev": s.smoothgrad_stdev,
            "seed": ctx.seed,
        }
        return Outcome(recipe, images=imgs, labels=labels, ig=ig, maps=maps)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        quality = {
            f"deletion_{m}": Q.deletion_test(job.net, out.images, a, out.labels, seed=job.ctx.seed)
            for m, a in out.maps.items()
        }
        quality["ig_completeness"] = Q.ig_completeness(out.ig.delta, out.ig.output_change)
        return quality

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
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


# pyramid_attribution: integrated gradients per pyramid level
@dataclass
class PyramidAttributionSettings:
    """``pyramid_attribution``: integrated gradients with respect to each pyramid level.

    Args:
        ig_steps: Gauss-Legendre steps to start from (doubled until the completeness error passes).
    """

    ig_steps: int = 128


class PyramidAttribution(Method, name="pyramid_attribution", takes_layer=False, settings=PyramidAttributionSettings):
    """Integrated gradients with respect to every pyramid level of a top-down net."""

    def applies(self, job: Job) -> bool:
        return is_topdown(job.net)

    def run(self, job: Job) -> Outcome:
        imgs, labels = job.ctx.real_images()
        steps = job.settings.ig_steps
        pa = pyramid_attribution(job.net, imgs, labels, n_steps=steps, tolerance=Q.IG_COMPLETENESS_THRESHOLD)
        details = {**pa.summary(), "contribution": pa.contribution.tolist()}
        return Outcome({"n_steps": pa.n_steps, "baseline": 0.0}, details, attribution=pa, images=imgs)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        return {"ig_completeness": Q.ig_completeness(out.attribution.delta, out.attribution.output_change)}

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
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


# dissection: unit IoU with part masks
@dataclass
class DissectionSettings:
    """``dissection``: unit IoU with the procedural flowers' part masks.

    Args:
        quantile: a unit is "on" above this quantile of its activations.
        images: dissect the first this many test images (``None``: the whole test split; the procedural
            flowers' test split is class-balanced in every block of twice the class count).
    """

    quantile: float = 0.95
    images: int | None = None


class Dissection(Method, name="dissection", settings=DissectionSettings):
    """Unit IoU with the procedural flowers' part masks."""

    def applies(self, job: Job) -> bool:
        src, _ = job.ctx.data.splits()["test"]
        return isinstance(src, SyntheticFlowers)  # only the procedural flowers have part masks

    def run(self, job: Job) -> Outcome:
        src, idx = job.ctx.data.splits()["test"]
        n = len(idx) if job.settings.images is None else min(job.settings.images, len(idx))
        masks = synthetic_masks(src, idx[:n])
        images = Subset(job.ctx.test_set, range(n))
        d = dissect(job.net, job.layer, images, masks, list(src.PARTS), quantile=job.settings.quantile)
        details = {**d.summary(), "images": n, "iou": d.iou.tolist(), "best": d.best}
        return Outcome({"quantile": d.quantile, "concepts": d.concepts}, details, dissection=d)

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        return {"above_chance": Q.dissection_above_chance(out.dissection.iou, out.dissection.shuffled_iou)}

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        d = out.dissection
        units = [str(i) for i in range(d.iou.shape[0])]
        return {"": matrix_image(d.iou, units, d.concepts, f"{job.layer}: IoU per unit")}

    def describe(self, job: Job, out: Outcome) -> str:
        return (
            f"Network dissection of {job.layer} on the procedural flowers' part masks (top-"
            f"{100 * (1 - out.dissection.quantile):.0f}% activation threshold per unit; chance = masks shuffled "
            "between images)."
        )
