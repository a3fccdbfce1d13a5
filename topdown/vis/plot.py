"""Turning image tensors into PNG grids (PIL only; matplotlib just for its colour maps).

Nothing here is called by the methods: they return tensors, and the command line (or a notebook) decides
what to draw. Files are written atomically (a temporary file in the same folder, then ``os.replace``), so a
reader never sees half a PNG.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..io import atomic_write_bytes


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` or ``(3, H, W)`` in [0, 1] -> uint8 ``(N, H, W, 3)``; single-channel maps are
    repeated to grey."""
    t = images.detach().float().cpu()
    if t.dim() == 3:
        t = t[None]
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return (t.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def grid(
    images: torch.Tensor | np.ndarray, ncol: int | None = None, pad: int = 2, scale: int = 1, background: int = 255
) -> np.ndarray:
    """Tile ``N`` images into rows of ``ncol`` (default: as square as possible); returns uint8 HxWx3."""
    arr = images if isinstance(images, np.ndarray) else to_uint8(images)
    if arr.ndim == 3:
        arr = arr[None]
    n, h, w, _ = arr.shape
    if scale > 1:
        arr = arr.repeat(scale, 1).repeat(scale, 2)
        h, w = h * scale, w * scale
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, 3), background, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = arr[i]
    return out


def heatmap(maps: torch.Tensor, cmap: str = "inferno", signed: bool = False) -> torch.Tensor:
    """Attribution maps ``(N, C, H, W)`` -> colour images ``(N, 3, H, W)`` in [0, 1]. Channels are summed
    (absolute values unless ``signed``); each map is scaled by its own 99th percentile."""
    import matplotlib  # local: heavy, and only the attribution and matrix panels draw with it

    m = maps.detach().float().cpu()
    m = m.sum(1) if signed else m.abs().sum(1)  # (N, H, W)
    if signed:
        s = m.abs().flatten(1).quantile(0.99, dim=1).clamp_min(1e-12).view(-1, 1, 1)
        m = (m / s).clamp(-1, 1) * 0.5 + 0.5
        cmap = "coolwarm" if cmap == "inferno" else cmap
    else:
        s = m.flatten(1).quantile(0.99, dim=1).clamp_min(1e-12).view(-1, 1, 1)
        m = (m / s).clamp(0, 1)
    colours = matplotlib.colormaps[cmap](m.numpy())[..., :3]  # (N, H, W, 3)
    return torch.from_numpy(colours).float().permute(0, 3, 1, 2)


def overlay(images: torch.Tensor, maps: torch.Tensor, alpha: float = 0.6) -> torch.Tensor:
    """Blend :func:`heatmap` of ``maps`` over ``images``."""
    return (1 - alpha) * images.detach().cpu().float() + alpha * heatmap(maps)


def _font(size: int = 11) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def labelled_rows(rows: Sequence[tuple[str, np.ndarray]], title: str | None = None, pad: int = 4) -> np.ndarray:
    """Stack image rows vertically, each with a text label above it."""
    font = _font()
    width = max(r.shape[1] for _, r in rows)
    label_h = 14
    parts = []
    if title:
        parts.append(_text_strip(title, width, 16, _font(13)))
    for label, arr in rows:
        parts.append(_text_strip(label, width, label_h, font))
        padded = np.full((arr.shape[0], width, 3), 255, np.uint8)
        padded[:, : arr.shape[1]] = arr
        parts.append(padded)
        parts.append(np.full((pad, width, 3), 255, np.uint8))
    return np.concatenate(parts, 0)


def side_by_side(panels: Sequence[tuple[str, np.ndarray]], gap: int = 12) -> np.ndarray:
    """Panels next to each other, each titled (the two-network comparison)."""
    font = _font(13)
    height = max(p.shape[0] for _, p in panels) + 18
    cols = []
    for i, (title, arr) in enumerate(panels):
        col = np.full((height, arr.shape[1], 3), 255, np.uint8)
        col[:18] = _text_strip(title, arr.shape[1], 18, font)
        col[18 : 18 + arr.shape[0]] = arr
        cols.append(col)
        if i < len(panels) - 1:
            cols.append(np.full((height, gap, 3), 255, np.uint8))
    return np.concatenate(cols, 1)


def _text_strip(text: str, width: int, height: int, font: ImageFont.ImageFont) -> np.ndarray:
    img = Image.new("RGB", (max(width, 1), height), (255, 255, 255))
    ImageDraw.Draw(img).text((2, 1), text, fill=(0, 0, 0), font=font)
    return np.asarray(img)


def save_png(array: np.ndarray | torch.Tensor, path: str | os.PathLike[str], upscale: int = 1) -> Path:
    """Write an image (uint8 HxWx3, or a tensor batch drawn as one row) atomically; ``upscale`` enlarges
    small renders with nearest-neighbour so pixels stay visible."""
    path = Path(path)
    arr = grid(array, ncol=len(array)) if isinstance(array, torch.Tensor) else array
    img = Image.fromarray(arr)
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path


def matrix_image(
    matrix: torch.Tensor | np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str = "",
    cmap: str = "viridis",
) -> np.ndarray:
    """A labelled heat map of a small matrix (e.g. unit x concept IoU) as uint8 HxWx3 (matplotlib, Agg)."""
    import matplotlib  # local: heavy, and only the attribution and matrix panels draw with it

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # local: after choosing the Agg backend

    m = np.asarray(matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * m.shape[1], 0.8 + 0.22 * m.shape[0]), dpi=100)
    im = ax.imshow(m, aspect="auto", cmap=cmap)
    ax.set_xticks(range(m.shape[1]), list(col_labels), fontsize=8)
    ax.set_yticks(range(m.shape[0]), list(row_labels), fontsize=6)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.08)
    fig.tight_layout()
    fig.canvas.draw()
    arr = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return arr
