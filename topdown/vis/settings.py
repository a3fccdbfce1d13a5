"""Each visualization method's own settings: one dataclass per method that renders or samples differently from
the shared recipe, named after the method (``--dream.lr 0.02``). :class:`~topdown.vis.config.VisConfig` holds one
of each; the method's class in :mod:`topdown.vis.catalog` names its dataclass, so the two are found together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


def scaled_steps(steps: int, scale: float, minimum: int = 1) -> int:
    """``max(minimum, int(scale * steps))``: a method's render steps relative to the shared ``steps``."""
    return max(minimum, int(scale * steps))


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


@dataclass
class NaiveSettings:
    """``naive``: the control, rendered with pixels, no colour decorrelation, no transforms and no penalty.

    Args:
        lr: its Adam learning rate (pixels need a larger step than the Fourier parameterization).
    """

    lr: float = 0.05


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


@dataclass
class PairsSettings:
    """``pairs``: sampled channels optimized two at a time.

    Args:
        max_pairs: at most this many pairs (consecutive sampled channels).
    """

    max_pairs: int = 4


@dataclass
class InterpolationSettings:
    """``interpolation``: aligned interpolation between two channels.

    Args:
        frames: images from the first channel to the second, ends included.
    """

    frames: int = 6


@dataclass
class DiversitySettings:
    """``diversity``: one channel rendered several times with a diversity term.

    Args:
        images: images rendered together.
        weight: weight of the Gram-matrix diversity term (in units of the channel's largest real mean).
    """

    images: int = 6
    weight: float = 2.0


@dataclass
class DictionarySettings:
    """``dictionary``: each channel's icon beside its top test examples.

    Args:
        channels: the first this-many sampled channels.
        examples: top test examples per channel.
    """

    channels: int = 8
    examples: int = 6


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


@dataclass
class PyramidAttributionSettings:
    """``pyramid_attribution``: integrated gradients with respect to each pyramid level.

    Args:
        ig_steps: Gauss-Legendre steps to start from (doubled until the completeness error passes).
    """

    ig_steps: int = 128


@dataclass
class DissectionSettings:
    """``dissection``: unit IoU with the procedural flowers' part masks.

    Args:
        quantile: a unit is "on" above this quantile of its activations.
    """

    quantile: float = 0.95


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
