"""MACO (Fel et al., 2023): feature visualization that optimizes the *phase* of the image's Fourier spectrum only,
its magnitude held at that of the training images, so every render keeps natural images' power at every
frequency; and the transparency map, the objective's input gradient accumulated over the optimization, which
shows where the render matters (:func:`topdown.vis.render.render` with ``transparency=True``).

The magnitude is derived once from the classifier's own training images (:func:`data_spectrum`), as the colour
statistics are, and recorded (:meth:`Spectrum.to_dict`). A render is ``mean colour + irfft2(M * exp(i phase))``
per RGB channel (orthonormal FFT, so ``M`` is in pixel units), clipped to [0, 1]; the clip passes gradients
straight through, so a clipped pixel's phase still learns. Before the clip the render's spectrum magnitude is
``M`` exactly, whatever the phase (:func:`unclipped`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from .param import ImageParam, _as_generator


@dataclass(frozen=True)
class Spectrum:
    """The training images' mean colour and mean Fourier magnitude per channel.

    Attributes:
        magnitude: ``(3, H, W // 2 + 1)``: the mean over images of ``|rfft2(x - mean(x))|`` (orthonormal), the
            DC term zero.
        mean: ``(3,)`` mean colour.
        images: how many images it was computed from.
    """

    magnitude: torch.Tensor
    mean: torch.Tensor
    images: int

    @property
    def size(self) -> tuple[int, int]:
        h, half = self.magnitude.shape[-2:]
        return h, 2 * (half - 1)

    def to_dict(self) -> dict[str, object]:
        """What vis.json records of it: size, image count, mean colour, radial profile and a hash."""
        digest = hashlib.sha256(self.magnitude.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        return {
            "size": list(self.size),
            "images": self.images,
            "mean": [round(v, 6) for v in self.mean.tolist()],
            "total_power": float(self.magnitude.pow(2).sum()),
            "sha256": digest,
        }


@torch.no_grad()
def data_spectrum(images: torch.Tensor | Iterable[torch.Tensor]) -> Spectrum:
    """:class:`Spectrum` of images in [0, 1]: a tensor ``(N, 3, H, W)`` or batches of them (tuples ``(images,
    labels)`` accepted)."""
    batches = [images] if isinstance(images, torch.Tensor) else images
    total, colour, n = None, torch.zeros(3, dtype=torch.float64), 0
    for batch in batches:
        x = (batch[0] if isinstance(batch, (tuple, list)) else batch).detach().double()
        centred = x - x.mean(dim=(-2, -1), keepdim=True)
        mag = torch.fft.rfft2(centred, norm="ortho").abs().sum(0)
        total = mag if total is None else total + mag
        colour += x.mean(dim=(-2, -1)).sum(0)
        n += len(x)
    if not n:
        raise ValueError("data_spectrum needs at least one image")
    return Spectrum((total / n).float(), (colour / n).float(), n)


class _StraightClip(torch.autograd.Function):
    """Clip to [0, 1] forward, identity backward."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return grad


def _hermitian(phase: torch.Tensor, w: int) -> torch.Tensor:
    """The phase with the columns a real image's spectrum holds twice (frequency 0, and the Nyquist column of an
    even width) made odd in the vertical frequency, so the inverse FFT keeps every magnitude as it is."""
    cols = [0] + ([w // 2] if w % 2 == 0 else [])
    out = list(phase.unbind(-1))
    for c in cols:
        col = out[c]
        mirrored = torch.roll(torch.flip(col, [-1]), 1, -1)  # row k -> row -k (mod H)
        out[c] = (col - mirrored) / 2
    return torch.stack(out, -1)


def unclipped(param: ImageParam) -> torch.Tensor:
    """A :func:`maco_image`'s render before the clip: its spectrum magnitude is the spectrum's."""
    return param.image_fn.unclipped()  # type: ignore[attr-defined]


def _maco_param(spectrum: Spectrum, phase: torch.Tensor) -> ImageParam:
    h, w = spectrum.size
    phase = phase.detach().clone().requires_grad_(True)
    magnitude = spectrum.magnitude.to(phase.device)
    mean = spectrum.mean.to(phase.device).view(1, 3, 1, 1)

    def unclipped() -> torch.Tensor:
        coeffs = torch.polar(magnitude.expand_as(phase), _hermitian(phase, w))
        return mean + torch.fft.irfft2(coeffs, s=(h, w), norm="ortho")

    def image_fn() -> torch.Tensor:
        return _StraightClip.apply(unclipped())

    image_fn.unclipped = unclipped  # type: ignore[attr-defined]
    return ImageParam([phase], image_fn)


def maco_from_image(images: torch.Tensor, spectrum: Spectrum) -> ImageParam:
    """MACO images started at the phase of ``images`` (``(B, 3, H, W)`` or ``(3, H, W)`` in [0, 1]), with the
    spectrum's magnitude: for dream, caricatures and facets, which start from real images."""
    x = images[None] if images.dim() == 3 else images
    phase = torch.fft.rfft2(x.detach() - x.detach().mean(dim=(-2, -1), keepdim=True), norm="ortho").angle()
    return _maco_param(spectrum, phase)


def maco_image(
    spectrum: Spectrum,
    batch: int = 1,
    generator: int | torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ImageParam:
    """``batch`` MACO images at the spectrum's size, phases drawn uniformly in [-pi, pi) (seeded)."""
    h, w = spectrum.size
    gen = _as_generator(generator)
    phase = (torch.rand(batch, 3, h, w // 2 + 1, generator=gen) * 2 - 1) * math.pi
    return _maco_param(spectrum, phase.to(device))
