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

from ..errors import ConfigError
from .methods import METHODS
from .methods.attribution import AttributionSettings, DissectionSettings, PyramidAttributionSettings
from .methods.classes import ClassesSettings, MultifacetedSettings, NaiveSettings, SpectraSettings
from .methods.features import DictionarySettings, DiversitySettings, InterpolationSettings, PairsSettings
from .methods.generative import DgnAmSettings, PpgnSettings, PriorsSettings
from .methods.inversion import DreamSettings, InversionSettings
from .recipe import Recipe, check_starts

#: What ``parameterization`` may name.
PARAMETERIZATIONS = ("fourier", "maco")


def _all_methods() -> list[str]:
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
        reference: held-out real images (validation split; test split for nets trained on train+val) for the
            quality figures.
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
    parameterization: Literal["fourier", "maco"] = "fourier"
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
        for key in ("methods", "layers"):
            value = getattr(self, key)
            if not (value is None and key == "layers") and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                raise ConfigError(f"{key}: expected a list of names, got {value!r}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise ConfigError(
                f"parameterization: expected one of {', '.join(PARAMETERIZATIONS)}, got {self.parameterization!r}"
            )
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"methods: unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
        if self.layers is not None and not self.layers:
            raise ConfigError("layers: give at least one layer, or null for each network's middle stage")
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
                raise ConfigError(f"{key} must be >= 1, got {value}")
        rates = {"lr": self.lr, "naive.lr": self.naive.lr, "dream.lr": self.dream.lr, "dgn_am.lr": self.dgn_am.lr}
        rates |= {"caricature.lr": self.caricature.lr, "inversion.lr": self.inversion.lr}
        for key, value in rates.items():
            if not value > 0:
                raise ConfigError(f"{key} must be > 0, got {value}")
        ppgn = {"ppgn.eps1": self.ppgn.eps1, "ppgn.eps2": self.ppgn.eps2, "ppgn.eps3": self.ppgn.eps3}
        for key, value in ppgn.items():
            if value < 0:
                raise ConfigError(f"{key} must be >= 0, got {value}")
        if self.ppgn.prior not in ("dae", "reconstruction"):
            raise ConfigError(f"ppgn.prior: expected dae or reconstruction, got {self.ppgn.prior!r}")
        if not isinstance(self.generators, dict) or not all(isinstance(v, str) for v in self.generators.values()):
            raise ConfigError(f"generators: expected {{model: generator file}}, got {self.generators!r}")
        if self.channels < 2:
            raise ConfigError(f"channels must be >= 2 (pairs and interpolation need two), got {self.channels}")
        if self.interpolation.frames < 2:
            raise ConfigError(f"interpolation.frames must be >= 2 (both ends), got {self.interpolation.frames}")
        if self.multifaceted.top < self.multifaceted.facets:
            raise ConfigError(
                f"multifaceted.top ({self.multifaceted.top}) must be at least multifaceted.facets "
                f"({self.multifaceted.facets})"
            )

        check_starts(self.classes.starts, "classes.starts")
        if not 0 < self.dissection.quantile < 1:
            raise ConfigError(f"dissection.quantile must be in (0, 1), got {self.dissection.quantile}")
        if self.dissection.images is not None and self.dissection.images < 2:
            raise ConfigError(
                f"dissection.images must be at least 2 (or null: the whole test split), got {self.dissection.images}"
            )
