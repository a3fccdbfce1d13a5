"""Image pyramids: one image in, a list of levels out, ordered coarse to fine.

All methods are pure torch ops, so gradients flow from any level back to the image (attacks and
feature visualizations need that).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

PYRAMID_METHODS = ("gaussian", "antialias", "noblur", "pool")


def gaussian_kernel1d(sigma: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A normalised 1-D Gaussian kernel of radius ceil(3 sigma)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable depthwise Gaussian blur with reflect padding; x: (N, C, H, W)."""
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma, x.dtype).to(x.device)
    c = x.shape[1]
    r = k.numel() // 2
    # Reflect padding needs pad < size; fall back to replicate on tiny maps.
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    x = F.pad(x, (r, r, r, r), mode=mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # blur along W
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # blur along H
    return x


def _reflect(i: int, n: int) -> int:
    """Index ``i`` of an axis of length ``n`` after reflect padding (the edge pixel not repeated)."""
    return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)


@functools.lru_cache(maxsize=64)
def _blur_subsample_matrix(n: int, sigma: float, factor: int, reflect: bool) -> torch.Tensor:
    """The (n / factor, n) matrix that blurs one axis of length ``n`` (Gaussian ``sigma``, reflect or replicate
    padding as :func:`gaussian_blur` pads) and keeps every ``factor``-th pixel from ``factor // 2 - 1``."""
    k = gaussian_kernel1d(sigma, torch.float64)
    r = k.numel() // 2
    m = torch.zeros(n // factor, n, dtype=torch.float64)
    for j, centre in enumerate(range(factor // 2 - 1, n, factor)):
        for t, weight in enumerate(k):
            i = centre + t - r
            m[j, _reflect(i, n) if reflect else min(max(i, 0), n - 1)] += weight
    return m


def gaussian_downscale(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``gaussian_blur(x, factor / 2)`` subsampled at every ``factor``-th pixel from ``factor // 2 - 1``, as two
    small matrix products (one per axis): the same image to float rounding at a fraction of the cost of
    blurring every pixel (about 1/7 of the convolutions' time for a 64 px pyramid, forward and backward)."""
    h, w = x.shape[-2:]
    reflect = min(h, w) > math.ceil(3 * factor / 2)
    rows = _blur_subsample_matrix(h, factor / 2, factor, reflect).to(x.device, x.dtype)
    cols = _blur_subsample_matrix(w, factor / 2, factor, reflect).to(x.device, x.dtype)
    return rows @ x @ cols.T


def downscale(x: torch.Tensor, factor: int, method: str = "gaussian") -> torch.Tensor:
    """Downscale (N, C, H, W) by an integer power-of-two factor with the given method."""
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise ConfigError(f"image size {h}x{w} is not divisible by the pyramid factor {factor}")
    if method == "gaussian":
        # sigma = 1 per octave below full resolution (1 for 1/2, 2 for 1/4, ...), then subsample;
        # each level is made from the full image, not from the previous level.
        return gaussian_downscale(x, factor)
    if method == "antialias":
        return F.interpolate(x, size=(h // factor, w // factor), mode="bilinear", antialias=True, align_corners=False)
    if method == "noblur":
        return x[..., ::factor, ::factor]
    if method == "pool":
        return F.avg_pool2d(x, kernel_size=factor)
    raise ConfigError(f"unknown pyramid method {method!r}; choose one of {PYRAMID_METHODS}")


class ImagePyramid(nn.Module):
    """Image in [0, 1] -> list of ``num_levels`` images, coarse to fine, factor 2 per level.

    Level ``i`` has size ``H / 2**(num_levels - 1 - i)``; the last level is the input itself.

    Args:
        num_levels: how many levels (1 gives just the image).
        method: ``gaussian`` (blur, sigma 1 per octave, then subsample), ``antialias`` (antialiased
            bilinear resize), ``noblur`` (strided subsampling) or ``pool`` (average pooling).
    """

    def __init__(self, num_levels: int = 4, method: str = "gaussian") -> None:
        super().__init__()
        if num_levels < 1:
            raise ConfigError(f"num_levels must be >= 1, got {num_levels}")
        if method not in PYRAMID_METHODS:
            raise ConfigError(f"unknown pyramid method {method!r}; choose one of {PYRAMID_METHODS}")
        self.num_levels = num_levels
        self.method = method

    def factors(self) -> list[int]:
        """Downscaling factor of each level, coarse to fine."""
        return [2 ** (self.num_levels - 1 - i) for i in range(self.num_levels)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 4:
            raise ConfigError(f"expected images of shape (N, C, H, W), got {tuple(x.shape)}")
        return [downscale(x, f, self.method) for f in self.factors()]

    def extra_repr(self) -> str:
        return f"num_levels={self.num_levels}, method={self.method!r}"


class LowPass(nn.Module):
    """A fixed low-pass: the image's pyramid level at 1/``factor`` resolution, upsampled back to full size.

    Differentiable (a blur, a subsampling and a bilinear resize), so it masks no gradient: an attack on a net
    behind it is as strong as on any other net.
    """

    def __init__(self, factor: int = 2, method: str = "gaussian") -> None:
        super().__init__()
        if factor < 2 or factor & (factor - 1):
            raise ConfigError(f"input_lowpass must be a power of two >= 2, got {factor}")
        self.factor = factor
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        small = downscale(x, self.factor, self.method)  # (N, C, H / f, W / f)
        return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)  # (N, C, H, W)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, method={self.method!r}"
