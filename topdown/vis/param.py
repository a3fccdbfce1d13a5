"""Image parameterizations: what the optimizer actually changes, and how it becomes an image in [0, 1].

A parameterization is an :class:`ImageParam` ``(params, image_fn)``: ``params`` go to the optimizer,
``image_fn()`` returns the batch of images ``(B, 3, H, W)`` in [0, 1]. Pieces:

* :func:`pixel_image` / :func:`fft_image`: the raw (pre-sigmoid, decorrelated-colour) tensor, in pixel
  space or as a Fourier spectrum scaled by ``1 / f**decay_power`` (high frequencies start small and learn
  slowly, so the image is not dominated by pixel noise).
* :func:`lowres_tensor`: a low-resolution tensor upsampled to full size, optionally one for the whole
  batch (``shared=True``): the common part that keeps landmarks in place in an aligned interpolation.
* :class:`ColorStats` / :func:`color_stats`: mean colour and the square root of the colour covariance of
  *the training data*; :func:`to_valid_rgb` maps decorrelated colour through it and a sigmoid.
* :func:`image`: everything above, composed; :func:`from_image` starts the same parameterization exactly
  at a given image.

Initial values are drawn from a ``torch.Generator`` on the CPU and then moved to ``device``, so a seed
gives the same start on every device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

TensorFn = Callable[[], torch.Tensor]


class ImageParam(NamedTuple):
    """``params`` for the optimizer and ``image_fn() -> (B, C, H, W)``. Unpacks like Lucent's pair."""

    params: list[torch.Tensor]
    image_fn: TensorFn

    def __call__(self) -> torch.Tensor:
        return self.image_fn()


def _randn(shape: Sequence[int], sd: float, generator: torch.Generator | None, device: torch.device | str | None):
    t = torch.randn(*shape, generator=generator, dtype=torch.float32) * sd
    return t.to(device).requires_grad_(True)


def _as_generator(seed_or_gen: int | torch.Generator | None) -> torch.Generator:
    if isinstance(seed_or_gen, torch.Generator):
        return seed_or_gen
    return torch.Generator().manual_seed(0 if seed_or_gen is None else int(seed_or_gen))


# --------------------------------------------------------------------------------------------------
# Spatial parameterizations (return the raw tensor, not yet an image)
# --------------------------------------------------------------------------------------------------
def pixel_image(
    shape: Sequence[int],
    sd: float = 0.01,
    generator: int | torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ImageParam:
    """One free parameter per pixel and channel: the naive parameterization."""
    t = _randn(shape, sd, _as_generator(generator), device)
    return ImageParam([t], lambda: t)


def rfft2d_freqs(h: int, w: int) -> torch.Tensor:
    """Frequency magnitude (cycles per pixel) of every coefficient of ``torch.fft.rfft2`` on an h x w grid."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return torch.sqrt(fx * fx + fy * fy)  # (h, w // 2 + 1)


def _spectrum_scale(h: int, w: int, decay_power: float) -> torch.Tensor:
    freqs = rfft2d_freqs(h, w)
    # 1/f with the DC term capped at the lowest frequency, as in Lucid; the ortho FFT keeps the pixel
    # scale independent of image size.
    return 1.0 / freqs.clamp_min(1.0 / max(h, w)) ** decay_power


# Lucid's spectrum scale leaves images with about this many times the variance we want; dividing the
# output (rather than the initial values) keeps Adam's per-coefficient step sizes image-size independent.
_FFT_OUTPUT_SCALE = 0.25


def fft_image(
    shape: Sequence[int],
    sd: float = 0.01,
    decay_power: float = 1.0,
    generator: int | torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ImageParam:
    """A Fourier-space parameterization: spectrum coefficients scaled by ``1 / f**decay_power``.

    Args:
        shape: ``(B, C, H, W)``.
        sd: standard deviation of the initial coefficients.
        decay_power: 0 is white (like pixels), 1 is Lucid's default, larger favours smoother images.
    """
    b, c, h, w = shape
    scale = _spectrum_scale(h, w, decay_power).to(device)
    spectrum = _randn((b, c, h, w // 2 + 1, 2), sd, _as_generator(generator), device)

    def image_fn() -> torch.Tensor:
        coeffs = torch.view_as_complex(spectrum) * scale
        return torch.fft.irfft2(coeffs, s=(h, w), norm="ortho") * _FFT_OUTPUT_SCALE

    return ImageParam([spectrum], image_fn)


def fft_from_tensor(t: torch.Tensor, decay_power: float = 1.0) -> ImageParam:
    """The :func:`fft_image` parameterization whose ``image_fn()`` returns ``t`` exactly (up to rounding)."""
    b, c, h, w = t.shape
    scale = _spectrum_scale(h, w, decay_power).to(t.device)
    coeffs = torch.fft.rfft2(t.detach() / _FFT_OUTPUT_SCALE, norm="ortho") / scale
    spectrum = torch.view_as_real(coeffs).contiguous().requires_grad_(True)

    def image_fn() -> torch.Tensor:
        return torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(h, w), norm="ortho") * _FFT_OUTPUT_SCALE

    return ImageParam([spectrum], image_fn)


def lowres_tensor(
    shape: Sequence[int],
    factor: int,
    sd: float = 0.01,
    shared: bool = True,
    generator: int | torch.Generator | None = None,
    device: torch.device | str | None = None,
    scale: float = 1.0,
) -> ImageParam:
    """A tensor of resolution ``H / factor`` upsampled (bilinear) to ``shape``, times ``scale``; with
    ``shared=True`` one for the whole batch (it broadcasts over the batch axis)."""
    b, c, h, w = shape
    low_shape = (1 if shared else b, c, max(1, h // factor), max(1, w // factor))
    low = _randn(low_shape, sd, _as_generator(generator), device)

    def image_fn() -> torch.Tensor:
        up = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False) * scale
        return up.expand(b, -1, -1, -1) if shared else up

    return ImageParam([low], image_fn)


# --------------------------------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColorStats:
    """Mean colour and colour-correlation square root of a dataset (both in [0, 1] pixel units).

    ``sqrt_cov`` is ``U sqrt(S)`` of the 3x3 pixel covariance, scaled so its largest column norm is 1
    (as Lucid normalizes its ImageNet matrix); mapping independent unit-variance noise through it gives
    colours correlated the way the data's are.
    """

    mean: tuple[float, float, float]
    sqrt_cov: tuple[tuple[float, float, float], ...]

    def matrix(self, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.tensor(self.sqrt_cov, dtype=torch.float32, device=device)

    def mean_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.tensor(self.mean, dtype=torch.float32, device=device)

    def to_dict(self) -> dict[str, list]:
        return {"mean": list(self.mean), "sqrt_cov": [list(r) for r in self.sqrt_cov]}

    @staticmethod
    def identity() -> ColorStats:
        """No decorrelation, mid-grey mean."""
        return ColorStats((0.5, 0.5, 0.5), ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))


@torch.no_grad()
def color_stats(images: torch.Tensor | Iterable[torch.Tensor], max_batches: int | None = None) -> ColorStats:
    """Mean colour and normalized covariance square root of images in [0, 1].

    Args:
        images: a tensor ``(N, 3, H, W)`` or an iterable of such batches (e.g. a ``DataLoader``; tuples
            ``(images, labels)`` are accepted).
        max_batches: stop after this many batches.
    """
    batches = [images] if isinstance(images, torch.Tensor) else images
    n = 0
    s = torch.zeros(3, dtype=torch.float64)
    ss = torch.zeros(3, 3, dtype=torch.float64)
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        px = x.detach().double().permute(1, 0, 2, 3).reshape(3, -1)  # (3, N*H*W)
        n += px.shape[1]
        s += px.sum(1)
        ss += px @ px.T
    if n == 0:
        raise ValueError("color_stats needs at least one image")
    mean = s / n
    cov = ss / n - torch.outer(mean, mean)
    u, sv, _ = torch.linalg.svd(cov)
    sqrt = u * sv.clamp_min(1e-8).sqrt()  # columns scaled by sqrt of eigenvalues
    sqrt = sqrt / sqrt.norm(dim=0).max()
    return ColorStats(tuple(mean.tolist()), tuple(tuple(r) for r in sqrt.tolist()))


def _logit(p: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


def to_valid_rgb(raw: torch.Tensor, color: ColorStats | None = None, decorrelate: bool = True) -> torch.Tensor:
    """Raw tensor ``(B, 3, H, W)`` in decorrelated colour space -> image in [0, 1].

    ``sigmoid(M @ raw + logit(mean))``: at ``raw = 0`` the image is the data's mean colour.
    """
    color = color or ColorStats.identity()
    if decorrelate:
        m = color.matrix(raw.device)
        raw = torch.einsum("ij,bjhw->bihw", m, raw)
    offset = _logit(color.mean_tensor(raw.device)).view(1, 3, 1, 1)
    return torch.sigmoid(raw + offset)


def from_valid_rgb(img: torch.Tensor, color: ColorStats | None = None, decorrelate: bool = True) -> torch.Tensor:
    """Inverse of :func:`to_valid_rgb` (images are clamped slightly inside (0, 1) first)."""
    color = color or ColorStats.identity()
    raw = _logit(img) - _logit(color.mean_tensor(img.device)).view(1, 3, 1, 1)
    if decorrelate:
        m_inv = torch.linalg.inv(color.matrix(img.device))
        raw = torch.einsum("ij,bjhw->bihw", m_inv, raw)
    return raw


# --------------------------------------------------------------------------------------------------
# The composed image
# --------------------------------------------------------------------------------------------------
def image(
    size: int | tuple[int, int],
    batch: int = 1,
    fft: bool = True,
    decorrelate: bool = True,
    color: ColorStats | None = None,
    sd: float = 0.01,
    decay_power: float = 1.0,
    shared: Sequence[ImageParam] = (),
    generator: int | torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ImageParam:
    """A batch of ``batch`` RGB images of ``size``: Fourier (or pixel) space, decorrelated colour, sigmoid.

    Args:
        size: side, or ``(H, W)``.
        batch: number of images.
        fft: Fourier parameterization (otherwise one parameter per pixel).
        decorrelate: map colour through ``color``'s covariance square root.
        color: the training data's colour statistics (:func:`color_stats`); ``None``: identity, grey mean.
        sd: initial scale.
        decay_power: spectrum decay of the Fourier parameterization.
        shared: further raw tensors added before the colour map (e.g. :func:`lowres_tensor` with
            ``shared=True`` for aligned interpolation).
        generator: a seed or ``torch.Generator`` for the initial values.
        device: where the parameters live.
    """
    h, w = (size, size) if isinstance(size, int) else size
    gen = _as_generator(generator)
    shape = (batch, 3, h, w)
    base = fft_image(shape, sd, decay_power, gen, device) if fft else pixel_image(shape, sd, gen, device)
    parts = [base, *shared]

    def image_fn() -> torch.Tensor:
        raw = parts[0].image_fn()
        for p in parts[1:]:
            raw = raw + p.image_fn()
        return to_valid_rgb(raw, color, decorrelate)

    return ImageParam([t for p in parts for t in p.params], image_fn)


def from_image(
    img: torch.Tensor,
    fft: bool = True,
    decorrelate: bool = True,
    color: ColorStats | None = None,
    decay_power: float = 1.0,
    device: torch.device | str | None = None,
) -> ImageParam:
    """The parameterization of :func:`image`, started at ``img`` (``(B, 3, H, W)`` or ``(3, H, W)`` in
    [0, 1]) instead of noise: for deep dream, caricatures and facets started from a mean image."""
    img = img.detach().to(device if device is not None else img.device)
    if img.dim() == 3:
        img = img[None]
    raw = from_valid_rgb(img, color, decorrelate)
    if fft:
        base = fft_from_tensor(raw, decay_power)
    else:
        t = raw.clone().requires_grad_(True)
        base = ImageParam([t], lambda: t)
    return ImageParam(base.params, lambda: to_valid_rgb(base.image_fn(), color, decorrelate))


def shared_interpolation_image(
    size: int,
    frames: int,
    factors: Sequence[int] = (2, 4, 8),
    color: ColorStats | None = None,
    decorrelate: bool = True,
    generator: int | torch.Generator | None = None,
    device: torch.device | str | None = None,
    sd: float = 0.01,
    shared_scale: float = 0.2,
) -> ImageParam:
    """``frames`` Fourier images plus low-resolution components shared by all of them (Lucid's aligned
    interpolation parameterization): the shared part carries the common layout from frame to frame.

    ``shared_scale`` damps the shared components: they receive the gradient of every frame at once, and at
    full scale they saturate the colours before the per-frame parts can make the frames differ.
    """
    gen = _as_generator(generator)
    shape = (frames, 3, size, size)
    shared = [lowres_tensor(shape, f, sd, True, gen, device, shared_scale) for f in factors if size // f >= 1]
    return image(size, frames, True, decorrelate, color, sd, 1.0, shared, gen, device)


def image_param_size(param: ImageParam) -> tuple[int, ...]:
    """Shape of the images a parameterization produces (runs it once without gradients)."""
    with torch.no_grad():
        return tuple(param.image_fn().shape)


__all__ = [
    "ColorStats",
    "ImageParam",
    "color_stats",
    "fft_from_tensor",
    "fft_image",
    "from_image",
    "from_valid_rgb",
    "image",
    "image_param_size",
    "lowres_tensor",
    "pixel_image",
    "rfft2d_freqs",
    "shared_interpolation_image",
    "to_valid_rgb",
]
