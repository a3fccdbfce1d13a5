"""Random image transforms applied before every forward pass of a render (transformation robustness).

A transform is a callable ``t(x, generator) -> x`` on a batch ``(B, C, H, W)``: randomness comes only
from the ``torch.Generator`` passed in (always a CPU generator, so a seed means the same draws on every
device), and sizes are fractions of the image side, so one recipe suits 32 px and 224 px images alike.
Every image of the batch gets its own draw. All transforms are differentiable in ``x``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F


class Transform(Protocol):
    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


def _pixels(fraction: float, size: int) -> int:
    return max(1, round(fraction * size)) if fraction > 0 else 0


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


@dataclass(frozen=True)
class Pad:
    """Pad every side by ``fraction`` of the image side (``reflect``, ``replicate`` or ``constant``)."""

    fraction: float
    mode: str = "reflect"
    value: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        p = _pixels(self.fraction, max(x.shape[-2:]))
        if p == 0:
            return x
        if self.mode == "constant":
            return F.pad(x, (p, p, p, p), mode="constant", value=self.value)
        if self.mode == "reflect" and p >= min(x.shape[-2:]):
            return F.pad(x, (p, p, p, p), mode="replicate")  # reflect needs pad < size
        return F.pad(x, (p, p, p, p), mode=self.mode)


@dataclass(frozen=True)
class Jitter:
    """Crop ``d = fraction * side`` pixels off, at a random offset in ``[0, d]`` per image and axis
    (an integer shift: exact, no interpolation)."""

    fraction: float

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        d = _pixels(self.fraction, max(h, w))
        if d == 0:
            return x
        oy = torch.randint(0, d + 1, (b,), generator=generator).to(x.device)
        ox = torch.randint(0, d + 1, (b,), generator=generator).to(x.device)
        rows = oy[:, None] + torch.arange(h - d, device=x.device)  # (B, H - d)
        cols = ox[:, None] + torch.arange(w - d, device=x.device)  # (B, W - d)
        bi = torch.arange(b, device=x.device)[:, None, None]
        out = x.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # (B, H - d, W - d, C)
        return out.permute(0, 3, 1, 2)


def _affine(x: torch.Tensor, theta: torch.Tensor, padding_mode: str) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


@dataclass(frozen=True)
class RandomScale:
    """Zoom about the centre by a factor drawn per image from ``scales`` (kept size; >1 zooms in)."""

    scales: tuple[float, ...] = (0.9, 0.95, 1.0, 1.05, 1.1)
    padding_mode: str = "reflection"

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b = x.shape[0]
        choice = torch.randint(0, len(self.scales), (b,), generator=generator)
        s = torch.tensor(self.scales, dtype=torch.float64)[choice]
        theta = torch.zeros(b, 2, 3, dtype=torch.float64)
        theta[:, 0, 0] = 1.0 / s
        theta[:, 1, 1] = 1.0 / s
        return _affine(x, theta, self.padding_mode)


@dataclass(frozen=True)
class RandomRotate:
    """Rotate about the centre by an angle drawn per image, uniform in ``[-degrees, degrees]`` (or from
    ``choices`` when given)."""

    degrees: float = 10.0
    choices: tuple[float, ...] = field(default_factory=tuple)
    padding_mode: str = "reflection"

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        if self.choices:
            pick = torch.randint(0, len(self.choices), (b,), generator=generator)
            deg = torch.tensor(self.choices, dtype=torch.float64)[pick]
        else:
            deg = _uniform(b, -self.degrees, self.degrees, generator)
        a = deg * math.pi / 180.0
        cos, sin = torch.cos(a), torch.sin(a)
        theta = torch.zeros(b, 2, 3, dtype=torch.float64)
        # affine_grid works in normalized coordinates; the aspect terms keep a non-square image undistorted.
        theta[:, 0, 0] = cos
        theta[:, 0, 1] = -sin * h / w
        theta[:, 1, 0] = sin * w / h
        theta[:, 1, 1] = cos
        return _affine(x, theta, self.padding_mode)


@dataclass(frozen=True)
class Compose:
    """Apply transforms in order, all drawing from the same generator."""

    transforms: tuple[Any, ...]

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, generator)
        return x

    def __len__(self) -> int:
        return len(self.transforms)


def compose(transforms: Sequence[Transform] | Compose | None) -> Compose:
    """A :class:`Compose` from a list of transforms (``None`` or ``[]``: no transform)."""
    if isinstance(transforms, Compose):
        return transforms
    return Compose(tuple(transforms or ()))


def standard_transforms() -> Compose:
    """Lucid's standard recipe, in fractions of the side (at 224 px: pad 12, jitter 8, scale, rotate,
    jitter 4): pad 6%, jitter 6%, scale 0.9-1.1, rotate +-10 degrees, jitter 3%."""
    return Compose((Pad(0.06), Jitter(0.06), RandomScale(), RandomRotate(10.0), Jitter(0.03)))


def describe(transforms: Compose | Sequence[Transform] | None) -> list[dict[str, Any]]:
    """A JSON-ready recipe: ``[{"type": "Pad", "fraction": 0.06, ...}, ...]``."""
    out = []
    for t in compose(transforms).transforms:
        try:
            out.append({"type": type(t).__name__, **asdict(t)})
        except TypeError:
            out.append({"type": type(t).__name__, "repr": repr(t)})
    return out


__all__ = [
    "Compose",
    "Jitter",
    "Pad",
    "RandomRotate",
    "RandomScale",
    "Transform",
    "compose",
    "describe",
    "standard_transforms",
]
