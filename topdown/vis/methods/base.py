"""What a visualization method is to the visualize command: one object with its name, whether it takes a
layer, the settings it reads, how it runs, its quality figures and its panels.

A method runs on one :class:`Job` (a network, a layer, the run's shared :class:`VisContext` and the method's
settings) in three steps, always in this order: :meth:`Method.run` computes (renders, attributions,
dissections) and returns an :class:`Outcome`; :meth:`Method.figures` measures it; :meth:`Method.panels`
lays it out as images. :meth:`Method.__call__` does the three and returns a :class:`MethodOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import torch

from ...models.base import ImageClassifierNet
from .. import quality as Q
from ..hooks import activations
from ..plot import grid, labelled_rows
from ..recipe import Recipe


def scaled_steps(steps: int, scale: float, minimum: int = 1) -> int:
    """``max(minimum, int(scale * steps))``: a method's render steps relative to the shared ``steps``."""
    return max(minimum, int(scale * steps))


@dataclass
class VisContext:
    """What every method needs: data, reference images, colour statistics, the shared recipe.

    Args:
        data: the ``FlowerData`` the checkpoints were trained on.
        real: held-out reference images (validation split; test split for nets trained on train+val), on the CPU.
        labels: their labels.
        color: colour statistics of training images (colour decorrelation).
        size: image size.
        recipe: the shared render recipe.
        channels: channels sampled per layer.
        images: real images for dream, inversion and attribution.
        device: where the networks and renders are.
        nets: every model of the run by name (for the methods that judge one net's images by another).
        priors: each model's learned prior, where it has one.
        spectrum: the training images' magnitude spectrum.
        train_images: the training images the colour statistics and the spectrum come from.
    """

    data: Any
    real: torch.Tensor
    labels: torch.Tensor
    color: Any
    size: int
    recipe: Recipe
    channels: int
    images: int
    device: torch.device
    nets: dict[str, ImageClassifierNet] = field(default_factory=dict)  # every model of the run, by name
    priors: dict[str, Any] = field(default_factory=dict)  # model -> its LearnedPrior (``generators``)
    spectrum: Any = None  # the training images' magnitude spectrum (MACO)
    train_images: torch.Tensor | None = None  # the training images behind the colour statistics and the spectrum
    train_labels: torch.Tensor | None = None
    _test: Any = None

    @property
    def seed(self) -> int:
        return self.recipe.seed

    @property
    def test_set(self) -> Any:
        if self._test is None:
            self._test = self.data.subset("test")
        return self._test

    def real_images(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` (default: ``images``) reference images and labels, on the device."""
        n = n or self.images
        return self.real[:n].to(self.device), self.labels[:n].to(self.device)


@dataclass
class Job:
    """One method on one network: what its three steps read."""

    net: ImageClassifierNet
    layer: str | None
    ctx: VisContext
    settings: Any = None
    model: str = ""  # the net's name in the run

    @property
    def prior(self) -> Any:
        """This net's learned prior (``None`` where it has none)."""
        return self.ctx.priors.get(self.model)

    @property
    def others(self) -> dict[str, ImageClassifierNet]:
        """Every other model of the run, by name."""
        return {name: net for name, net in self.ctx.nets.items() if name != self.model}

    @property
    def real(self) -> torch.Tensor:
        """All reference images, on the device."""
        return self.ctx.real.to(self.ctx.device)

    def sample_channels(self) -> list[int]:
        """``ctx.channels`` channels of the layer, drawn with the run's seed (the same draw for every method)."""
        c = activations(self.net, self.ctx.real[:1].to(self.ctx.device), [self.layer])[self.layer].shape[1]
        gen = torch.Generator().manual_seed(self.ctx.seed)
        return sorted(torch.randperm(c, generator=gen)[: min(self.ctx.channels, c)].tolist())

    def natural(self, images: torch.Tensor) -> dict[str, Any]:
        """The natural-image-statistics figures of ``images`` against the reference images."""
        return Q.natural_statistics(images.cpu(), self.ctx.real.cpu())


class Outcome(SimpleNamespace):
    """What :meth:`Method.run` computed: the recipe it used and its numbers for ``vis.json``, plus whatever
    tensors its figures and panels are made from, as attributes (``Outcome(recipe, details, images=...)``)."""

    def __init__(self, recipe: dict[str, Any], details: dict[str, Any] | None = None, **tensors: Any) -> None:
        super().__init__(recipe=recipe, details=details or {}, **tensors)


@dataclass
class MethodOutput:
    """One method on one network."""

    description: str
    recipe: dict[str, Any]
    panels: dict[str, np.ndarray]  # file suffix ("" for the main one) -> image
    quality: dict[str, Any] = field(default_factory=dict)  # name -> quality.Figure
    details: dict[str, Any] = field(default_factory=dict)


class Method:
    """A visualization method as the visualize command runs it.

    A subclass names itself in its class line, ``class Dream(Method, name="dream", settings=DreamSettings)``:
    ``name`` is its key in ``vis.json`` and on the command line, ``takes_layer`` (default true) says whether
    it runs once per ``--layers`` entry, ``settings`` is the dataclass of its own settings, defined beside it in
    the same module (``VisConfig`` has a section of that type named after the method; none for a method that only
    reads the shared settings). It implements :meth:`run`, :meth:`panels` and :meth:`describe`, and
    :meth:`figures` where it has any.
    """

    name: ClassVar[str]
    takes_layer: ClassVar[bool] = True
    settings_type: ClassVar[type | None] = None
    uses_generator: ClassVar[bool] = False  # its result depends on the net's learned prior
    uses_other_nets: ClassVar[bool] = False  # ... and on every other model's weights

    def __init_subclass__(
        cls, name: str | None = None, takes_layer: bool | None = None, settings: type | None = None, **kw: Any
    ) -> None:
        super().__init_subclass__(**kw)
        # What a subclass does not say it inherits (Caricature is a Dream with another name).
        if name is not None:
            cls.name = name
        if takes_layer is not None:
            cls.takes_layer = takes_layer
        if settings is not None:
            cls.settings_type = settings

    def applies(self, job: Job) -> bool:
        """Whether the method can run on this network and data (``False``: skipped, absent from vis.json)."""
        return True

    def run(self, job: Job) -> Outcome:
        raise NotImplementedError

    def figures(self, job: Job, out: Outcome) -> dict[str, Any]:
        """Quality figures (name -> ``quality.Figure``) that say whether the method did its job."""
        return {}

    def panels(self, job: Job, out: Outcome) -> dict[str, np.ndarray]:
        """Images (file suffix, ``""`` for the main one -> uint8 HxWx3)."""
        raise NotImplementedError

    def describe(self, job: Job, out: Outcome) -> str:
        raise NotImplementedError

    def __call__(self, job: Job) -> MethodOutput | None:
        if not self.applies(job):
            return None
        out = self.run(job)
        quality = self.figures(job, out)
        return MethodOutput(self.describe(job, out), out.recipe, self.panels(job, out), quality, out.details)


def row(label: str, images: torch.Tensor, ncol: int | None = None) -> tuple[str, np.ndarray]:
    """A labelled row of images, enlarged to about 96 px each."""
    scale = max(1, 96 // images.shape[-1])
    return label, grid(images.detach().cpu(), ncol=ncol or len(images), scale=scale)


def rows(labelled: list[tuple[str, np.ndarray]], title: str = "") -> dict[str, np.ndarray]:
    """The main panel: labelled rows stacked."""
    return {"": labelled_rows(labelled, title or None)}
