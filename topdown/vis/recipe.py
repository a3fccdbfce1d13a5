"""A render recipe: the settings every method shares, recorded verbatim in ``vis.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .maco import Spectrum, maco_from_image, maco_image
from .objectives import Objective
from .param import ColorStats, ImageParam, from_image, image
from .render import RenderResult, render
from .transforms import Compose, describe, standard_transforms

STARTS = ("mean", "gray")
#: MACO: the seed distance between the phase draws of two starts (far beyond any batch's ``seed_offset``).
MACO_DRAW_STRIDE = 100_003


def check_starts(starts: object, key: str = "starts") -> None:
    """A one-line ``ValueError`` naming ``key`` unless ``starts`` is a non-empty list or tuple of :data:`STARTS`."""
    if not isinstance(starts, list | tuple) or not starts or any(v not in STARTS for v in starts):
        raise ConfigError(f"{key} must be a non-empty list of {list(STARTS)}, got {starts!r}")


def start_color(color: ColorStats | None, start: str) -> ColorStats | None:
    """``color`` with its mean replaced by the flat colour ``start`` names (``"mean"``: unchanged)."""
    if start == "mean":
        return color
    if start == "gray":
        return replace(color or ColorStats.identity(), mean=(0.5, 0.5, 0.5))
    raise ConfigError(f"unknown start {start!r}: expected one of {list(STARTS)}")


@dataclass(frozen=True)
class Recipe:
    """How to render.

    Args:
        steps: optimizer steps.
        lr: Adam learning rate.
        tv_weight: weight of the total-variation penalty. Methods normalize their objectives so that 1.0
            means "as strong as the strongest real image" (channels, classes), which keeps one weight
            right for every layer and model.
        fft: Fourier parameterization (else pixels).
        decorrelate: decorrelated colour through the training data's colour statistics.
        decay_power: spectrum decay of the Fourier parameterization.
        transforms: random transforms before every forward pass (``None``: :func:`standard_transforms`;
            an empty ``Compose``: none).
        redirect_relu_steps: redirected ReLUs during the first this-many steps.
        batch_size: most images optimized together.
        seed: seeds the initial images and the transforms.
        spectrum: MACO: optimize only the phase of the image's spectrum, its magnitude this one (the training
            images', :func:`~topdown.vis.maco.data_spectrum`); ``None``: the parameterization ``fft`` names.
        starts: the flat colours a render starts from, each image rendered once from each and the one whose
            objective ends highest kept: ``"mean"`` (the training data's mean colour) and ``"gray"`` (mid-grey,
            Lucid's start). A flat start is a saddle some units never leave: on the procedural flowers the
            baseline's five-broad classes stay below p = 0.25 from the mean colour and reach 0.96 from grey,
            while two of the top-down net's classes do the reverse.
    """

    steps: int = 128
    lr: float = 0.03
    tv_weight: float = 0.4
    fft: bool = True
    decorrelate: bool = True
    decay_power: float = 1.0
    transforms: Compose | None = None
    redirect_relu_steps: int = 16
    batch_size: int = 64
    seed: int = 0
    starts: tuple[str, ...] = ("mean",)
    spectrum: Spectrum | None = None

    def __post_init__(self) -> None:
        check_starts(self.starts)

    def tf(self) -> Compose:
        return standard_transforms() if self.transforms is None else self.transforms

    def render(self, model: nn.Module, objective: Objective, param: ImageParam, seed_offset: int = 0) -> RenderResult:
        """:func:`render` with this recipe's transforms, steps, learning rate, seed (plus ``seed_offset``) and
        redirected-ReLU steps."""
        return render(
            model, objective, param, self.tf(), self.steps, self.lr, self.seed + seed_offset, self.redirect_relu_steps
        )

    def with_(self, **changes: Any) -> Recipe:
        return replace(self, **changes)

    def param(
        self,
        size: int,
        batch: int,
        color: ColorStats | None,
        device: torch.device | str | None,
        seed_offset: int = 0,
        start: str | None = None,
    ) -> ImageParam:
        """A fresh batch of images for this recipe (seeded by ``seed + seed_offset``), flat at the colour
        ``start`` names (default: this recipe's first); with a ``spectrum``, MACO images of random phase, where a
        flat start cannot apply (every MACO image has the data's power at every frequency): each start is
        another draw of the phase, so the best of the starts is the best of that many draws."""
        if self.spectrum is not None:
            draw = STARTS.index(start or self.starts[0])
            seed = self.seed + seed_offset + MACO_DRAW_STRIDE * draw
            return maco_image(self.spectrum, batch, generator=seed, device=device)
        return image(
            size,
            batch,
            self.fft,
            self.decorrelate,
            start_color(color, start or self.starts[0]),
            0.01,
            self.decay_power,
            generator=self.seed + seed_offset,
            device=device,
        )

    def param_from(self, images: torch.Tensor, color: ColorStats | None) -> ImageParam:
        """This recipe's parameterization started at ``images`` (MACO: at their phase)."""
        if self.spectrum is not None:
            return maco_from_image(images, self.spectrum)
        return from_image(images, self.fft, self.decorrelate, color, self.decay_power)

    @property
    def parameterization(self) -> str:
        """``maco``, ``fourier`` or ``pixel``."""
        return "maco" if self.spectrum is not None else "fourier" if self.fft else "pixel"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(replace(self, spectrum=None))
        d["starts"] = list(self.starts)
        d["transforms"] = describe(self.tf())
        if self.spectrum is not None:
            d["spectrum"] = self.spectrum.to_dict()
        else:
            d.pop("spectrum")
        return d

    @staticmethod
    def naive(**changes: Any) -> Recipe:
        """The naive baseline the quality figures must reject: pixel parameterization, no colour
        decorrelation, no transforms, no penalty."""
        base = Recipe(fft=False, decorrelate=False, transforms=Compose(()), tv_weight=0.0)
        return replace(base, **changes)
