"""Procedural flowers: an embedded dataset drawn from ``(seed, index)`` with numpy alone, no files.

Each class is a combination of a *coarse form* (petal count, arrangement, petal silhouette) and a
*fine pattern* (a petal texture of period ~3 px at 64 px plus a matching centre texture). With 6
classes that is 3 forms x 2 patterns, so a model that sees only the coarse form can be right at most
half of the time and one that sees only the fine pattern at most a third: a coarse-to-fine network has
to use its fine levels. Stripes and dots are modulations with zero mean, so a blurred or downsampled
image carries no trace of them (the third pattern, a 1 px vein, only matters above 12 classes).

Nuisances: pose (rotation, centre offset), scale (flower radius 25-45 % of the image), per-sample shape
jitter, colour (hue/saturation/value jitter of petals, centre and background), a textured gradient
background with leaves, blobs and grass strokes (sometimes a stroke in front of the flower), and mild
Gaussian pixel noise. Colour never encodes the class: the petal palette family (warm or cool) is a
planted per-class *sub-type*, drawn 50/50 inside every class.

Everything is drawn in continuous image coordinates, so 32, 64 and 96 px renders of one index show the
same flower. Patterns finer than the pixel grid can carry (periods below ~2 px) fade out instead of
aliasing: the fine patterns are at full strength from 64 px, weaker at 48 px and nearly gone at 32 px.

Determinism: labels and sub-types come from one seeded stream over blocks of indices (balanced, and
computed without rendering); every image from ``numpy.random.default_rng([seed, tag, index])``. The
global RNGs are never touched.
"""

from __future__ import annotations

import colorsys
import functools
import math
import multiprocessing
import operator
import signal
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.utils.data

from ..env import usable_cores
from ..errors import ConfigError

__all__ = ["FORMS", "PATTERNS", "SyntheticFlowers", "class_table"]

# Domain tags keep the label stream and the per-image streams independent of each other.
_TAG_LABELS = 0x1AB
_TAG_RENDER = 0x5EED
_MAX_CLASSES = 18


# --------------------------------------------------------------------------------------------------
# The class table
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Whorl:
    """One ring of identical petals; lengths are in flower radii, petal k points at (k+phase)*2pi/n."""

    n: int
    centre: float  # distance of the petal's middle from the flower centre
    half_length: float
    half_width: float
    shape: str = "ellipse"  # "ellipse" (round tips) or "lens" (two-arc, pointed tips)
    taper: float = 0.0  # ellipse only: half-width grows by (1 + taper*u) towards the tip
    notch: float = 0.0  # radius of a notch cut into the tip (0 = none)
    shade: float = 1.0  # brightness of this whorl relative to the petal colour
    phase: float = 0.0


@dataclass(frozen=True)
class _Form:
    name: str
    description: str
    whorls: tuple[_Whorl, ...]
    petal_counts: tuple[int, ...] = ()  # if given, the petal count is drawn from these per sample
    centre_frac: tuple[float, float] = (0.2, 0.27)  # centre disc radius, in flower radii


# Petal half-widths are kept below centre*sin(2pi/n) so a pixel is only ever covered by the two petals
# whose axes bracket its angle: that lets the renderer evaluate two petals per whorl, not n.
FORMS: tuple[_Form, ...] = (
    _Form("five-broad", "5 broad round petals", (_Whorl(5, 0.55, 0.45, 0.34, taper=0.3),)),
    _Form(
        "daisy",
        "9-12 thin strap petals",
        (_Whorl(10, 0.6, 0.4, 0.095),),
        petal_counts=(9, 10, 11, 12),
        centre_frac=(0.25, 0.32),
    ),
    _Form("three-big", "3 big pointed petals", (_Whorl(3, 0.52, 0.48, 0.32, shape="lens"),)),
    _Form(
        "double-whorl",
        "two whorls of 6 round petals, the inner one offset by half a petal",
        (
            _Whorl(6, 0.62, 0.38, 0.25, taper=0.15),
            _Whorl(6, 0.38, 0.3, 0.19, taper=0.1, shade=0.8, phase=0.5),
        ),
        centre_frac=(0.17, 0.22),
    ),
    _Form("six-star", "6 narrow pointed petals", (_Whorl(6, 0.55, 0.45, 0.16, shape="lens"),)),
    _Form("four-notched", "4 broad heart-shaped petals", (_Whorl(4, 0.55, 0.45, 0.37, taper=0.2, notch=0.13),)),
)

# name -> (petal texture, centre texture)
PATTERNS: tuple[tuple[str, str, str], ...] = (
    ("striped", "fine stripes across the petals", "concentric rings"),
    ("dotted", "fine dots on the petals", "seed dots"),
    ("veined", "plain petals with a thin midrib vein", "solid"),
)


def class_table(num_classes: int) -> list[tuple[int, int]]:
    """``(form, pattern)`` indices of every class.

    Two patterns for up to 12 classes (class ``c`` is form ``c // 2``, pattern ``c % 2``), three for 13-18
    (form ``c // 3``, pattern ``c % 3``). With an even count every form appears with every pattern, so
    neither the form nor the pattern alone identifies the class.
    """
    if not 2 <= num_classes <= _MAX_CLASSES:
        raise ConfigError(f"num_classes must be in 2..{_MAX_CLASSES}, got {num_classes}")
    n_patterns = 2 if num_classes <= 12 else 3
    return [(c // n_patterns, c % n_patterns) for c in range(num_classes)]


# --------------------------------------------------------------------------------------------------
# Small drawing helpers (all distances in pixels: negative inside a shape)
# --------------------------------------------------------------------------------------------------
def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _coverage(d_px: np.ndarray) -> np.ndarray:
    """Antialiased coverage from a signed pixel distance: a 1 px linear ramp, the area a straight edge
    covers of a pixel."""
    return np.clip(0.5 - d_px, 0.0, 1.0)


def _fade(period_px: float) -> float:
    """Amplitude left to a pattern of this pixel period: patterns the grid cannot carry fade, not alias."""
    # Full strength from a 2.6 px period, nothing at 1.6 px (below the 2 px Nyquist limit).
    t = min(max(period_px - 1.6, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in image units ([0, 1] across the image), read-only."""
    c = (np.arange(size, dtype=np.float64) + 0.5) / size
    y, x = np.meshgrid(c, c, indexing="ij")
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)))


def _lerp(img: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return img + alpha[..., None] * (colour - img)


def _dots(px: np.ndarray, py: np.ndarray, spacing: float, radius: float, scale_px: float) -> np.ndarray:
    """Coverage of a square lattice of round dots; coordinates and lengths in image units."""
    fx = px / spacing
    fy = py / spacing
    dist = np.hypot(fx - np.round(fx), fy - np.round(fy)) * (spacing * scale_px)
    return _coverage(dist - radius * scale_px)


# --------------------------------------------------------------------------------------------------
# Parameters (drawn independently of image_size, so every size shows the same flower)
# --------------------------------------------------------------------------------------------------
def _draw(rng: np.random.Generator, form: _Form, pattern: int, subtype: int) -> dict[str, Any]:
    u = rng.uniform
    p: dict[str, Any] = {}
    p["radius"] = u(0.25, 0.45)  # petal tips, as a fraction of the image size
    p["center"] = (0.5 + u(-0.1, 0.1), 0.5 + u(-0.1, 0.1))  # (x, y) in image units
    p["rotation"] = u(0.0, 2.0 * math.pi)
    n = int(form.petal_counts[rng.integers(len(form.petal_counts))]) if form.petal_counts else 0
    p["n_petals"] = tuple(n or w.n for w in form.whorls)
    # Shape jitter: petal position/length and width scale separately, a few percent.
    p["shape_jitter"] = (u(0.93, 1.07), u(0.88, 1.12))
    p["petal_brightness"] = u(0.88, 1.08, size=16)  # one per petal (index k mod 16)
    p["centre_radius"] = u(*form.centre_frac)  # in flower radii

    # Sub-type = palette family; hue/saturation/value jitter inside it. Warm: pink-red-orange-yellow,
    # cool: azure-blue-violet. The class never changes the palette.
    hue = u(-0.07, 0.13) if subtype == 0 else u(0.54, 0.78)
    p["petal_hsv"] = (hue % 1.0, u(0.5, 0.9), u(0.75, 1.0))
    dark = rng.random() < 0.5
    p["centre_hsv"] = (u(0.05, 0.16), u(0.55, 1.0), u(0.2, 0.4) if dark else u(0.8, 1.0))
    bg_hue = u(0.12, 0.42)
    p["background_hsv"] = (
        (bg_hue, u(0.25, 0.7), u(0.2, 0.55)),
        (bg_hue + u(-0.06, 0.06), u(0.25, 0.7), u(0.25, 0.6)),
    )
    p["background_gradient"] = (u(0.0, 2.0 * math.pi), u(0.3, 1.2))  # direction, strength
    p["background_waves"] = u(0.0, 1.0, size=(3, 4)).tolist()  # per wave: direction, frequency, phase, amp

    # Fine pattern, sizes in image units: 2.8-3.8 px stripes and 3.2-4 px dot lattices at 64 px.
    p["pattern"] = PATTERNS[pattern][0]
    p["pattern_period"] = u(2.8, 3.8) / 64.0 if pattern != 1 else u(3.2, 4.0) / 64.0
    p["pattern_contrast"] = u(0.35, 0.55)
    p["pattern_phase"] = u(0.0, 2.0 * math.pi)
    p["centre_period"] = u(2.3, 3.0) / 64.0 if pattern != 1 else u(2.6, 3.2) / 64.0
    p["centre_contrast"] = u(0.35, 0.6)

    # Clutter behind the flower: leaves (lens shapes), blobs (discs), grass strokes (segments).
    n_leaves, n_blobs, n_grass = int(rng.integers(2, 6)), int(rng.integers(1, 4)), int(rng.integers(3, 9))
    p["n_clutter"] = n_leaves + n_blobs + n_grass
    k = n_leaves + n_blobs
    is_leaf = np.arange(k) < n_leaves
    half_len = np.where(is_leaf, u(0.06, 0.15, size=k), u(0.03, 0.09, size=k))
    half_wid = np.where(is_leaf, half_len * u(0.25, 0.45, size=k), half_len)
    hues = np.where(is_leaf, u(0.18, 0.4, size=k), u(0.0, 1.0, size=k))
    sats = np.where(is_leaf, u(0.35, 0.8, size=k), u(0.15, 0.55, size=k))
    vals = u(0.25, 0.7, size=k)
    p["_blobs"] = {
        "xy": u(-0.1, 1.1, size=(k, 2)),
        "angle": u(0.0, math.pi, size=k),
        "half_length": half_len,
        "half_width": half_wid,
        "rgb": np.stack([_hsv(h, s, v) for h, s, v in zip(hues, sats, vals, strict=True)]),
        "vein": is_leaf * u(0.15, 0.35, size=k),  # midrib darkening of leaves
    }
    p["_grass"] = _draw_strokes(rng, n_grass)
    p["occluded"] = bool(rng.random() < 0.3)
    p["_front"] = _draw_strokes(rng, 1) if p["occluded"] else None
    p["noise_sigma"] = u(0.01, 0.035)
    return p


def _draw_strokes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    u = rng.uniform
    start = np.stack([u(-0.05, 1.05, size=n), u(0.3, 1.1, size=n)], axis=1)
    angle = -0.5 * math.pi + u(-0.6, 0.6, size=n)  # mostly upright, like grass
    length = u(0.2, 0.6, size=n)
    end = start + length[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    rgb = np.stack([_hsv(u(0.16, 0.33), u(0.35, 0.85), u(0.3, 0.8)) for _ in range(n)])
    return {"start": start, "end": end, "half_width": u(0.004, 0.012, size=n), "rgb": rgb}


# --------------------------------------------------------------------------------------------------
# Painting
# --------------------------------------------------------------------------------------------------
def _paint_background(p: dict[str, Any], x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    direction, strength = p["background_gradient"]
    t = 0.5 + strength * ((x - 0.5) * math.cos(direction) + (y - 0.5) * math.sin(direction))
    for d, f, ph, a in p["background_waves"]:
        ang = d * 2.0 * math.pi
        freq = 1.5 + 4.0 * f  # cycles per image: a soft texture, coarser than any class pattern
        t = t + (0.08 + 0.15 * a) * np.sin(2.0 * math.pi * (freq * (x * math.cos(ang) + y * math.sin(ang)) + ph))
    c0, c1 = (_hsv(*c) for c in p["background_hsv"])
    img = _lerp(np.broadcast_to(c0, (size, size, 3)), c1, np.clip(t, 0.0, 1.0))

    # Clutter is painted element by element inside its bounding box: most elements are small, so this
    # is several times cheaper than evaluating every element over the whole image.
    b = p["_blobs"]
    for (bx, by), ang, hl, hw, rgb, vein in zip(
        b["xy"], b["angle"], b["half_length"], b["half_width"], b["rgb"], b["vein"], strict=True
    ):
        box = _box(size, bx - hl, bx + hl, by - hl, by + hl)
        if box is None:
            continue
        dx, dy = x[box] - bx, y[box] - by
        ca, sa = math.cos(ang), math.sin(ang)
        across = dy * ca - dx * sa
        alpha = _coverage(_lens_distance(dx * ca + dy * sa, across, hl, hw) * size)
        colour = rgb if not vein else rgb * (1.0 - vein * _coverage(np.abs(across) * size - 0.4))[..., None]
        img[box] = _lerp(img[box], colour, alpha)
    _paint_strokes(img, p["_grass"], x, y, size)
    return img


def _box(size: int, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice] | None:
    """Pixel rows/columns touched by an image-units box (with a 1 px margin for the antialiased edge)."""
    i0, i1 = max(math.floor(y0 * size) - 1, 0), min(math.ceil(y1 * size) + 1, size)
    j0, j1 = max(math.floor(x0 * size) - 1, 0), min(math.ceil(x1 * size) + 1, size)
    if i0 >= i1 or j0 >= j1:
        return None
    return slice(i0, i1), slice(j0, j1)


def _lens_distance(a: np.ndarray, b: np.ndarray, half_length: float, half_width: float) -> np.ndarray:
    """Signed distance (image units) to a lens: the intersection of two discs, tips at a = +-half_length.

    With half_width == half_length it is a disc. Exact inside the two arcs, which is all antialiasing needs.
    """
    # Discs of radius rho centred at (0, +-h): rho - h = half_width, rho^2 - h^2 = half_length^2.
    h = 0.5 * (half_length * half_length / half_width - half_width)
    return np.hypot(a, np.abs(b) + h) - (h + half_width)


def _paint_strokes(
    img: np.ndarray, s: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, size: int
) -> np.ndarray | None:
    """Paint straight round-capped strokes onto ``img`` in place; return the last one's full-size coverage."""
    alpha_full = None
    for (ax, ay), (ex, ey), hw, rgb in zip(s["start"], s["end"], s["half_width"], s["rgb"], strict=True):
        box = _box(size, min(ax, ex) - hw, max(ax, ex) + hw, min(ay, ey) - hw, max(ay, ey) + hw)
        if box is None:
            continue
        vx, vy = ex - ax, ey - ay
        px, py = x[box] - ax, y[box] - ay
        t = np.clip((px * vx + py * vy) / (vx * vx + vy * vy), 0.0, 1.0)
        alpha = _coverage((np.hypot(px - t * vx, py - t * vy) - hw) * size)
        img[box] = _lerp(img[box], rgb, alpha)
        alpha_full = np.zeros((size, size))
        alpha_full[box] = alpha
    return alpha_full


def _petal_distance(w: _Whorl, a: np.ndarray, b: np.ndarray, jitter: tuple[float, float]) -> np.ndarray:
    """Signed distance (flower radii) to one petal in its own frame (a along the petal axis)."""
    c, L, W = w.centre * jitter[0], w.half_length * jitter[0], w.half_width * jitter[1]
    if w.shape == "lens":
        return _lens_distance(a - c, b, L, W)
    # Ellipse with a width taper, f = u^2 + v^2 - 1; f / |grad f| is the distance to first order, which is
    # accurate over the ~1 px band the antialiasing looks at.
    u = (a - c) / L
    g = np.maximum(1.0 + w.taper * u, 0.05)
    v = b / (W * g)
    f = u * u + v * v - 1.0
    dfa = (2.0 * u - 2.0 * v * v * w.taper / g) / L
    dfb = 2.0 * v / (W * g)
    d = f / (np.hypot(dfa, dfb) + 1e-9)
    if w.notch:
        tip = c + L
        d = np.maximum(d, w.notch - np.hypot(a - tip - 0.3 * w.notch, b))
    return d


def _petals(
    p: dict[str, Any],
    form: _Form,
    fx: np.ndarray,
    fy: np.ndarray,
    theta: np.ndarray,
    radial: np.ndarray,
    px_per_r: float,
    amp: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``(keep, paint)`` of every whorl's petals in the flower frame: how much background still shows, and the
    petals' brightness times their coverage."""
    name = p["pattern"]
    # All petals share one colour, so they are composited as scalar fields: ``keep`` is how much of the
    # background still shows, ``paint`` the petal brightness times its coverage.
    keep = np.ones_like(fx)
    paint = np.zeros_like(fx)
    brightness = p["petal_brightness"]
    for w, n in zip(form.whorls, p["n_petals"], strict=True):
        step = 2.0 * math.pi / n
        k0 = np.floor(theta / step - w.phase).astype(np.int64)
        angles = (np.arange(n) + w.phase) * step
        cos_t, sin_t = np.cos(angles), np.sin(angles)
        layers = []
        for k in (k0 % n, (k0 + 1) % n):  # the second petal of each pair lies on top
            ca, sa = cos_t[k], sin_t[k]
            a = fx * ca + fy * sa
            b = fy * ca - fx * sa
            d_px = _petal_distance(w, a, b, p["shape_jitter"]) * px_per_r
            shade = radial * (w.shade * brightness[k % 16])
            if name == "veined":  # midrib: a thin dark line along the axis, fading before the tip
                along = _smoothstep((w.centre + 0.8 * w.half_length - a) * px_per_r / 3.0)
                shade = shade * (1.0 - amp * _coverage(np.abs(b) * px_per_r - 0.35) * along)
            layers.append((_coverage(d_px), d_px, shade))
        (a0, _, s0), (a1, d1, s1) = layers
        # A soft shadow just outside the upper petal separates overlapping petals.
        s0 = s0 * (1.0 - 0.3 * _coverage(d1 - 1.5) * (1.0 - a1))
        k01 = (1.0 - a0) * (1.0 - a1)
        paint = paint * k01 + s0 * a0 * (1.0 - a1) + s1 * a1
        keep = keep * k01

    return keep, paint


def _centre(
    p: dict[str, Any], r: np.ndarray, fx: np.ndarray, fy: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha, shade)`` of the centre disc, with its own fine texture."""
    R = p["radius"]
    px_per_r = R * size
    name = p["pattern"]
    rc = p["centre_radius"]
    centre_alpha = _coverage((r - rc) * px_per_r)
    cshade = 0.8 + 0.25 * (1.0 - np.minimum(r / rc, 1.0) ** 2)
    cperiod = p["centre_period"]
    camp = p["centre_contrast"] * _fade(cperiod * size)
    if name == "striped":
        rings = np.cos(r * (2.0 * math.pi * R / cperiod))
        cshade = cshade * (1.0 - 0.5 * camp * rings)
    elif name == "dotted":
        seeds = _dots(fx * R + 0.5 * cperiod, fy * R, cperiod, 0.32 * cperiod, size)
        cshade = cshade * (1.0 - 1.3 * camp * (seeds - math.pi * 0.32**2))
    return centre_alpha, cshade


def _paint(p: dict[str, Any], form: _Form, size: int, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _grid(size)
    img = _paint_background(p, x, y, size)
    mask = np.zeros((size, size), dtype=np.uint8)

    R = p["radius"]
    px_per_r = R * size  # pixels per flower radius
    cx, cy = p["center"]
    # Petal tips reach 1.07 flower radii at most (shape jitter), so nothing is drawn outside this box.
    ext = 1.1 * R
    box = _box(size, cx - ext, cx + ext, cy - ext, cy + ext)
    assert box is not None  # the centre is always inside the image
    cr, sr = math.cos(p["rotation"]), math.sin(p["rotation"])
    dx, dy = x[box] - cx, y[box] - cy
    fx = (dx * cr + dy * sr) / R  # flower frame, in flower radii
    fy = (dy * cr - dx * sr) / R
    r = np.hypot(fx, fy)
    theta = np.arctan2(fy, fx)

    # Fine texture shared by all petals: zero-mean modulation (mean of the pattern subtracted), so a
    # low-pass view of the petals looks plain whatever the pattern.
    name = p["pattern"]
    period = p["pattern_period"]
    amp = p["pattern_contrast"] * _fade(period * size)
    radial = 0.72 + 0.36 * np.minimum(r, 1.0)  # petals lighter towards their tips
    if name == "striped":
        tex = np.cos(r * (2.0 * math.pi * R / period) + p["pattern_phase"])
        radial = radial * (1.0 - 0.5 * amp * tex)
    elif name == "dotted":
        tex = _dots(fx * R, fy * R, period, 0.3 * period, size)
        radial = radial * (1.0 - 1.3 * amp * (tex - math.pi * 0.3**2))

    keep, paint = _petals(p, form, fx, fy, theta, radial, px_per_r, amp)
    centre_alpha, cshade = _centre(p, r, fx, fy, size)
    over = 1.0 - centre_alpha
    img[box] = (
        img[box] * (keep * over)[..., None]
        + _hsv(*p["petal_hsv"]) * (paint * over)[..., None]
        + _hsv(*p["centre_hsv"]) * (cshade * centre_alpha)[..., None]
    )
    # A part owns a pixel where its paint covers at least half of it (petals: all whorls together).
    mask[box] = np.where(centre_alpha >= 0.5, 2, np.where(keep <= 0.5, 1, 0))

    if p["_front"] is not None:  # a grass stroke in front of the flower hides it
        front = _paint_strokes(img, p["_front"], x, y, size)
        if front is not None:
            mask[front >= 0.5] = 0

    img += p["noise_sigma"] * noise
    img *= 255.0
    return np.clip(np.rint(img, out=img), 0, 255, out=img).astype(np.uint8), mask


# --------------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------------
def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an int, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ConfigError(f"{name} must be an int, got {value!r}") from None
    if v < low or (high is not None and v > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ConfigError(f"{name} must be {bound}, got {v}")
    return v


#: Drawn images and part masks of the most recent cached datasets, shared by every instance with the same
#: ``(num_samples, image_size, seed, num_classes)``: the main job trains two nets, evaluates and visualizes them
#: in one process, and each stage builds its own data module over the same images.
_RENDERED: OrderedDict[tuple[int, int, int, int], list[tuple[np.ndarray, np.ndarray] | None]] = OrderedDict()
_RENDERED_KEEP = 6  # three splits of two datasets
#: Below this many images to draw, :meth:`SyntheticFlowers.draw` stays in this process (a pool's start-up
#: costs about as much as drawing them).
_POOL_MIN_IMAGES = 256


def _shared_cache(key: tuple[int, int, int, int]) -> list[tuple[np.ndarray, np.ndarray] | None]:
    if key in _RENDERED:
        _RENDERED.move_to_end(key)
    else:
        _RENDERED[key] = [None] * key[0]
        while len(_RENDERED) > _RENDERED_KEEP:
            _RENDERED.popitem(last=False)
    return _RENDERED[key]


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)  # shared by every epoch and stage: a transform must not paint on it
    return a


def _draw_many(args: tuple[tuple[int, int, int, int], list[int]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """A pool worker's share of :meth:`SyntheticFlowers.draw`: ``(image, mask)`` of each index."""
    (num_samples, image_size, seed, num_classes), indices = args
    src = SyntheticFlowers(num_samples, image_size, seed, num_classes)
    return [(out["image"], out["mask"]) for out in map(src.render, indices)]


def _default_signals() -> None:
    """A forked pool worker's start: the default SIGTERM and SIGINT handling, not the parent's handlers (a
    Lightning run's would make the worker ignore the pool's terminate)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class SyntheticFlowers(torch.utils.data.Dataset):
    """Procedural flowers, a source of ``(uint8 HxWx3 RGB image, int label)``.

    Args:
        num_samples: number of images (indices ``0..num_samples-1``). Index ``i`` shows the same flower
            whatever ``num_samples`` is.
        image_size: side of the square images in pixels, >= 16. The fine patterns need about 48 px or
            more (full strength from 64 px); below that only the coarse form tells classes apart.
        seed: non-negative seed; each seed is its own dataset.
        num_classes: 2..18; see :func:`class_table` and :attr:`classes`.
        cache: keep every image and its part mask in memory once drawn (``image_size**2 * 4`` bytes each), so
            later epochs read them back instead of drawing them again, shared with every other cached instance
            of the same size, seed and classes in the process (the six most recent); :meth:`render` always
            draws; :meth:`draw` fills the cache on every core.

    Attributes:
        classes: readable class names, ``"<form>/<pattern>"``.
        targets: label of every index, computed without rendering; balanced within every block of
            ``2 * num_classes`` consecutive indices.
        subtypes: planted sub-type (0 = warm palette, 1 = cool palette) of every index, balanced within
            every class in the same blocks.
    """

    PARTS = ("background", "petals", "centre")

    def __init__(
        self, num_samples: int = 1200, image_size: int = 64, seed: int = 0, num_classes: int = 6, cache: bool = False
    ) -> None:
        self.num_samples = _check_int("num_samples", num_samples, 1)
        self.image_size = _check_int("image_size", image_size, 16)
        self.seed = _check_int("seed", seed, 0)
        self.num_classes = _check_int("num_classes", num_classes, 2, _MAX_CLASSES)
        self.class_table = class_table(self.num_classes)
        self.classes = [f"{FORMS[f].name}/{PATTERNS[q][0]}" for f, q in self.class_table]
        # Every block of 2K indices holds each (class, sub-type) pair once, in a seeded order. The blocks
        # come from one stream, row by row, so the first blocks do not depend on num_samples.
        block = 2 * self.num_classes
        n_blocks = -(-self.num_samples // block)
        keys = np.random.default_rng([self.seed, _TAG_LABELS, self.num_classes]).random((n_blocks, block))
        combos = np.argsort(keys, axis=1, kind="stable").reshape(-1)[: self.num_samples]
        self.targets: list[int] = (combos % self.num_classes).tolist()
        self.subtypes: list[int] = (combos // self.num_classes).tolist()
        self._images: list[tuple[np.ndarray, np.ndarray] | None] | None = None
        if cache:
            self._images = _shared_cache((self.num_samples, self.image_size, self.seed, self.num_classes))

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        if self._images is None:
            out = self.render(index)
            return out["image"], out["label"]
        i = self._index(index)
        return self._drawn(i)[0], self.targets[i]

    def _drawn(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(image, mask)`` of index ``i`` of a cached dataset, drawn the first time."""
        assert self._images is not None
        entry = self._images[i]
        if entry is None:
            out = self.render(i)
            entry = self._images[i] = _read_only(out["image"]), _read_only(out["mask"])
        return entry

    def draw(self, indices: list[int] | None = None) -> None:
        """Draw the images of ``indices`` (default: all) that a cached dataset does not hold yet, into its cache,
        spread over the CPU cores (every image depends on its index alone, so the pixels are the same as drawn
        one by one). Does nothing without ``cache``."""
        if self._images is None:
            return
        todo = sorted({self._index(i) for i in (range(self.num_samples) if indices is None else indices)})
        todo = [i for i in todo if self._images[i] is None]
        workers = min(usable_cores(), len(todo) * 2 // _POOL_MIN_IMAGES)
        if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
            for i in todo:
                self._drawn(i)
            return
        key = (self.num_samples, self.image_size, self.seed, self.num_classes)
        chunks = [todo[k::workers] for k in range(workers)]
        # fork: the workers run numpy alone, and need none of this process's start-up. They end by closing the
        # pool (its tasks done), not by SIGTERM, which a training run's handler would catch and ignore.
        with multiprocessing.get_context("fork").Pool(workers, initializer=_default_signals) as pool:
            results = pool.map(_draw_many, [(key, c) for c in chunks])
            pool.close()
            pool.join()
        for chunk, drawn in zip(chunks, results, strict=True):
            for i, (image, mask) in zip(chunk, drawn, strict=True):
                self._images[i] = _read_only(image), _read_only(mask)

    def _index(self, index: int) -> int:
        i = operator.index(index)
        if not -self.num_samples <= i < self.num_samples:
            raise IndexError(f"index {i} out of range for {self.num_samples} samples")
        return i % self.num_samples

    def describe_classes(self) -> list[dict[str, str]]:
        """The class table in words: name, coarse form, petal texture and centre texture of each class."""
        return [
            {
                "name": name,
                "form": FORMS[f].description,
                "petals": PATTERNS[q][1],
                "centre": PATTERNS[q][2],
            }
            for name, (f, q) in zip(self.classes, self.class_table, strict=True)
        ]

    def render(self, index: int) -> dict[str, Any]:
        """Draw one sample with its ground truth.

        Returns:
            ``image`` (uint8 HxWx3), ``label`` (int), ``mask`` (uint8 HxW; 0 background incl. clutter,
            1 petals, 2 centre: pixels where that part's paint covers at least half the pixel and
            nothing drawn later does), ``subtype`` (0/1) and ``params`` (the drawn pose, scale, shape,
            colour and nuisance parameters; positions/sizes in image units, i.e. fractions of the side).
        """
        i = self._index(index)
        label, subtype = self.targets[i], self.subtypes[i]
        form_id, pattern = self.class_table[label]
        form = FORMS[form_id]
        rng = np.random.default_rng([self.seed, _TAG_RENDER, i])
        p = _draw(rng, form, pattern, subtype)
        # Noise is drawn last, so the parameters above are the same at every image size.
        noise = rng.standard_normal((self.image_size, self.image_size, 3), dtype=np.float32)
        image, mask = _paint(p, form, self.image_size, noise)
        params = {k: v for k, v in p.items() if not k.startswith("_")}
        params["petal_brightness"] = params["petal_brightness"].tolist()
        params["form"] = form.name
        return {"image": image, "label": label, "mask": mask, "subtype": subtype, "params": params}

    def masks(self, index: int) -> np.ndarray:
        """Part mask (uint8 HxW, values index :attr:`PARTS`) of one sample (from the cache where drawn)."""
        if self._images is not None:
            return self._drawn(self._index(index))[1].copy()
        return self.render(index)["mask"]
