"""The visualize command's settings: typed dataclasses that jsonargparse turns into options and YAML.

``configs/vis/quick.yaml`` (the defaults) and ``configs/vis/full.yaml`` fill these in. The shared render
recipe (``steps``, ``lr``, ``tv_weight``, ``batch_size``, ``seed``) is the one every method starts from; a
method that renders differently says how in its own section, named after it (``--dream.lr 0.02``,
``--inversion.steps_scale 2``), so every number a method uses is an option, recorded in ``vis.json`` and
part of the fingerprint that decides whether a saved result can be reused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Literal

from .recipe import Recipe


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


#: What ``parameterization`` may name.
PARAMETERIZATIONS = ("fourier", "maco")


def _all_methods() -> list[str]:
    from .catalog import METHODS

    return list(METHODS)


@dataclass
class VisConfig:
    """Everything one visualize run does.

    Args:
        methods: methods to run, in this order (see ``topdown/vis/SCHEMA.md``).
        layers: layers to visualize (module names such as ``layer2`` or ``layer2.0.conv1``); null: each
            network's middle stage.
        seed: seeds every render, sample and transform.
        steps: optimizer steps of a render.
        lr: Adam learning rate of a render.
        tv_weight: total-variation penalty (normalized units).
        parameterization: ``fourier`` (Lucid's: a 1/f-scaled spectrum, decorrelated colour) or ``maco`` (only
            the spectrum's phase, its magnitude the training images': :mod:`topdown.vis.maco`), for every method
            that renders with the shared recipe.
        batch_size: most images optimized together.
        channels: channels sampled per layer.
        images: real images for dream, inversion and attribution.
        reference: held-out real images (validation split) for the quality figures.
        color_images: training images the colour-decorrelation statistics are computed from.
        device: ``cpu``, ``cuda``, ``cuda:1``, ``mps``...
        classes, naive, spectra, dream, caricature, inversion, pairs, interpolation, diversity, dictionary,
            multifaceted, attribution, pyramid_attribution, dissection, dgn_am, ppgn, priors: each of these
            methods' own settings.
        generators: ``{model: generator file}`` (``python -m topdown.generator``): the learned prior of each
            named model, for ``dgn_am``, ``ppgn`` and ``priors``; a model without one is not rendered by the first
            two, and ``priors`` measures only the pixel-space recipes for it.
    """

    methods: list[str] = field(default_factory=_all_methods)
    layers: list[str] | None = None
    seed: int = Recipe.seed
    steps: int = Recipe.steps
    lr: float = Recipe.lr
    tv_weight: float = Recipe.tv_weight
    parameterization: str = "fourier"
    batch_size: int = Recipe.batch_size
    channels: int = 12
    images: int = 6
    reference: int = 128
    color_images: int = 512
    device: str = "cpu"
    classes: ClassesSettings = field(default_factory=ClassesSettings)
    naive: NaiveSettings = field(default_factory=NaiveSettings)
    spectra: SpectraSettings = field(default_factory=SpectraSettings)
    dream: DreamSettings = field(default_factory=DreamSettings)
    caricature: DreamSettings = field(default_factory=DreamSettings)
    inversion: InversionSettings = field(default_factory=InversionSettings)
    pairs: PairsSettings = field(default_factory=PairsSettings)
    interpolation: InterpolationSettings = field(default_factory=InterpolationSettings)
    diversity: DiversitySettings = field(default_factory=DiversitySettings)
    dictionary: DictionarySettings = field(default_factory=DictionarySettings)
    multifaceted: MultifacetedSettings = field(default_factory=MultifacetedSettings)
    attribution: AttributionSettings = field(default_factory=AttributionSettings)
    pyramid_attribution: PyramidAttributionSettings = field(default_factory=PyramidAttributionSettings)
    dissection: DissectionSettings = field(default_factory=DissectionSettings)
    dgn_am: DgnAmSettings = field(default_factory=DgnAmSettings)
    ppgn: PpgnSettings = field(default_factory=PpgnSettings)
    priors: PriorsSettings = field(default_factory=PriorsSettings)
    generators: dict[str, str] = field(default_factory=dict)

    def recipe(self) -> Recipe:
        """The shared render recipe every method starts from."""
        return Recipe(
            steps=self.steps, lr=self.lr, tv_weight=self.tv_weight, batch_size=self.batch_size, seed=self.seed
        )

    def shared(self) -> dict[str, Any]:
        """The settings every method reads (all but the method list, the layers and the methods' own sections)."""
        own = {f.name for f in fields(self) if is_dataclass(getattr(self, f.name))}
        skip = ("methods", "layers", "generators")  # a generator enters the fingerprint of the methods that use it
        return {k: v for k, v in asdict(self).items() if k not in own and k not in skip}

    def settings(self, method: str) -> Any:
        """The section of ``method`` (``None`` for a method that only reads the shared settings)."""
        value = getattr(self, method, None)
        return value if is_dataclass(value) else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the option for settings no method can run with."""
        from .catalog import METHODS

        for key in ("methods", "layers"):
            value = getattr(self, key)
            if not (value is None and key == "layers") and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                raise ValueError(f"{key}: expected a list of names, got {value!r}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization: expected one of {', '.join(PARAMETERIZATIONS)}, got {self.parameterization!r}"
            )
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods: unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
        if self.layers is not None and not self.layers:
            raise ValueError("layers: give at least one layer, or null for each network's middle stage")
        positive = {
            "steps": self.steps,
            "batch_size": self.batch_size,
            "images": self.images,
            "reference": self.reference,
            "color_images": self.color_images,
            "classes.max_classes": self.classes.max_classes,
            "spectra.max_classes": self.spectra.max_classes,
            "spectra.seeds": self.spectra.seeds,
            "inversion.min_images": self.inversion.min_images,
            "pairs.max_pairs": self.pairs.max_pairs,
            "diversity.images": self.diversity.images,
            "dictionary.channels": self.dictionary.channels,
            "dictionary.examples": self.dictionary.examples,
            "multifaceted.classes": self.multifaceted.classes,
            "multifaceted.facets": self.multifaceted.facets,
            "multifaceted.top": self.multifaceted.top,
            "attribution.ig_steps": self.attribution.ig_steps,
            "attribution.smoothgrad_samples": self.attribution.smoothgrad_samples,
            "pyramid_attribution.ig_steps": self.pyramid_attribution.ig_steps,
            "dgn_am.max_classes": self.dgn_am.max_classes,
            "dgn_am.steps": self.dgn_am.steps,
            "ppgn.max_classes": self.ppgn.max_classes,
            "ppgn.chains": self.ppgn.chains,
            "ppgn.steps": self.ppgn.steps,
            "ppgn.facets": self.ppgn.facets,
            "priors.max_classes": self.priors.max_classes,
            "priors.renders": self.priors.renders,
        }
        for key, value in positive.items():
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        rates = {"lr": self.lr, "naive.lr": self.naive.lr, "dream.lr": self.dream.lr, "dgn_am.lr": self.dgn_am.lr}
        rates |= {"caricature.lr": self.caricature.lr, "inversion.lr": self.inversion.lr}
        for key, value in rates.items():
            if not value > 0:
                raise ValueError(f"{key} must be > 0, got {value}")
        ppgn = {"ppgn.eps1": self.ppgn.eps1, "ppgn.eps2": self.ppgn.eps2, "ppgn.eps3": self.ppgn.eps3}
        for key, value in ppgn.items():
            if value < 0:
                raise ValueError(f"{key} must be >= 0, got {value}")
        if self.ppgn.prior not in ("dae", "reconstruction"):
            raise ValueError(f"ppgn.prior: expected dae or reconstruction, got {self.ppgn.prior!r}")
        if not isinstance(self.generators, dict) or not all(isinstance(v, str) for v in self.generators.values()):
            raise ValueError(f"generators: expected {{model: generator file}}, got {self.generators!r}")
        if self.channels < 2:
            raise ValueError(f"channels must be >= 2 (pairs and interpolation need two), got {self.channels}")
        if self.interpolation.frames < 2:
            raise ValueError(f"interpolation.frames must be >= 2 (both ends), got {self.interpolation.frames}")
        if self.multifaceted.top < self.multifaceted.facets:
            raise ValueError(
                f"multifaceted.top ({self.multifaceted.top}) must be at least multifaceted.facets "
                f"({self.multifaceted.facets})"
            )
        from .recipe import check_starts

        check_starts(self.classes.starts, "classes.starts")
        if not 0 < self.dissection.quantile < 1:
            raise ValueError(f"dissection.quantile must be in (0, 1), got {self.dissection.quantile}")
