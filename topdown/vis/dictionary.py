"""Dataset examples of units: streaming top-k, receptive fields, the semantic dictionary and the
activation grid.

* :func:`top_examples`: for every channel of a layer, the ``k`` dataset images (and positions) where it
  fires most, in one streaming pass with bounded memory.
* :func:`receptive_field`: which input pixels a position of a layer sees, measured from gradients, so it
  works for any network (the top-down net's coarse pyramid levels included).
* :func:`semantic_dictionary`: per channel, its visualization and its top-k examples cropped to the
  receptive field.
* :func:`activation_grid`: for one image, the dominant channel at each cell of a layer, drawn as that
  channel's icon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .hooks import activations, device_of, frozen
from .param import ColorStats
from .recipe import Recipe
from .render import RenderResult
from .units import visualize_channels


@dataclass
class TopExamples:
    """Per channel, the dataset items where it fires most.

    Attributes:
        values: ``(C, k)`` the channel's maximum over positions in that image, descending.
        indices: ``(C, k)`` dataset indices.
        positions: ``(C, k, 2)`` ``(row, col)`` of that maximum in the layer's grid.
        grid: ``(h, w)`` of the layer's activation.
    """

    values: torch.Tensor
    indices: torch.Tensor
    positions: torch.Tensor
    grid: tuple[int, int]


@torch.no_grad()
def top_examples(
    model: nn.Module,
    layer: str,
    dataset: Dataset,
    k: int = 8,
    channels: Sequence[int] | None = None,
    batch_size: int = 64,
    max_items: int | None = None,
) -> TopExamples:
    """Stream ``dataset`` (items ``(image, label)``) once and keep each channel's ``k`` best images.

    Memory is ``O(C * (k + batch))`` whatever the dataset's size.
    """
    device = device_of(model)
    best_v = best_i = best_p = None
    grid = (1, 1)
    seen = 0
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    with frozen(model):
        for x, *_ in loader:
            if max_items is not None and seen >= max_items:
                break
            x = x.to(device)
            t = activations(model, x, [layer])[layer]  # (B, C, h, w)
            if t.dim() == 2:
                t = t[:, :, None, None]
            if channels is not None:
                t = t[:, list(channels)]
            b, c, h, w = t.shape
            grid = (h, w)
            flat = t.flatten(2)  # (B, C, h*w)
            v, pos = flat.max(2)  # (B, C)
            idx = torch.arange(seen, seen + b, device=device)
            cand_v = v.T  # (C, B)
            cand_i = idx.expand(c, b)
            cand_p = pos.T
            if best_v is not None:
                cand_v = torch.cat([best_v, cand_v], 1)
                cand_i = torch.cat([best_i, cand_i], 1)
                cand_p = torch.cat([best_p, cand_p], 1)
            kk = min(k, cand_v.shape[1])
            best_v, order = cand_v.topk(kk, dim=1)
            best_i = cand_i.gather(1, order)
            best_p = cand_p.gather(1, order)
            seen += b
    if best_v is None:
        raise ValueError("top_examples: the dataset is empty")
    positions = torch.stack([best_p // grid[1], best_p % grid[1]], -1)
    return TopExamples(best_v.cpu(), best_i.cpu(), positions.cpu(), grid)


@dataclass
class ReceptiveField:
    """Receptive field of a layer, measured at its centre position and shifted by the stride elsewhere.

    Attributes:
        size: input image side it was measured at.
        grid: ``(h, w)`` of the layer.
        centre_box: ``(top, left, bottom, right)`` (exclusive) of the centre position's field.
        centre: the centre position ``(row, col)``.
    """

    size: int
    grid: tuple[int, int]
    centre_box: tuple[int, int, int, int]
    centre: tuple[int, int]

    @property
    def stride(self) -> tuple[float, float]:
        return self.size / self.grid[0], self.size / self.grid[1]

    def box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """The field of position ``(row, col)``, clipped to the image."""
        sy, sx = self.stride
        dy, dx = round((row - self.centre[0]) * sy), round((col - self.centre[1]) * sx)
        t, l, b, r = self.centre_box
        return max(0, t + dy), max(0, l + dx), min(self.size, b + dy), min(self.size, r + dx)


def receptive_field(model: nn.Module, layer: str, size: int, samples: int = 4, seed: int = 0) -> ReceptiveField:
    """Measure the receptive field of ``layer``'s centre position: the bounding box of input pixels with
    a non-zero gradient, over ``samples`` random images (each ReLU gates differently per image, so their
    union covers the field)."""
    device = device_of(model)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(samples, 3, size, size, generator=gen).to(device).requires_grad_(True)
    with frozen(model):
        t = activations(model, x, [layer], grad=True)[layer]
        if t.dim() == 2:
            t = t[:, :, None, None]
        h, w = t.shape[-2:]
        cy, cx = h // 2, w // 2
        (g,) = torch.autograd.grad(t[:, :, cy, cx].abs().sum(), x)
    support = g.abs().sum((0, 1)) > 0  # (size, size)
    rows = support.any(1).nonzero().flatten()
    cols = support.any(0).nonzero().flatten()
    if rows.numel() == 0:
        box = (0, 0, size, size)
    else:
        box = (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
    return ReceptiveField(size, (h, w), box, (cy, cx))


def _crop(img: torch.Tensor, box: tuple[int, int, int, int], out: int) -> torch.Tensor:
    t, l, b, r = box
    patch = img[:, t:b, l:r]
    return F.interpolate(patch[None], size=(out, out), mode="bilinear", align_corners=False, antialias=True)[0]


@dataclass
class SemanticDictionary:
    """Per channel: its visualization, its top-k dataset examples and their receptive-field crops."""

    layer: str
    channels: list[int]
    icons: RenderResult
    examples: TopExamples
    crops: torch.Tensor  # (C, k, 3, s, s)
    field: ReceptiveField
    recipe: dict[str, Any] = field(default_factory=dict)


def semantic_dictionary(
    model: nn.Module,
    layer: str,
    dataset: Dataset,
    size: int,
    channels: Sequence[int] | None = None,
    k: int = 6,
    crop_size: int | None = None,
    recipe: Recipe | None = None,
    color: ColorStats | None = None,
    real: torch.Tensor | None = None,
    max_items: int | None = None,
) -> SemanticDictionary:
    """For each channel of ``layer``: its visualization and its top-``k`` examples of ``dataset``
    (streamed), cropped to the receptive field of the position where it fired."""
    if channels is None:
        t = activations(model, torch.rand(1, 3, size, size, device=device_of(model)), [layer])[layer]
        channels = list(range(t.shape[1]))
    channels = list(channels)
    icons = visualize_channels(model, layer, channels, size, recipe=recipe, color=color, real=real)
    ex = top_examples(model, layer, dataset, k, channels, max_items=max_items)
    rf = receptive_field(model, layer, size)
    crop_size = crop_size or size
    crops = torch.zeros(len(channels), ex.indices.shape[1], 3, crop_size, crop_size)
    cache: dict[int, torch.Tensor] = {}
    for ci in range(len(channels)):
        for j in range(ex.indices.shape[1]):
            i = int(ex.indices[ci, j])
            if i not in cache:
                cache[i] = dataset[i][0]
            row, col = (int(v) for v in ex.positions[ci, j])
            crops[ci, j] = _crop(cache[i], rf.box(row, col), crop_size)
    recipe_d = {
        "method": "semantic_dictionary",
        "layer": layer,
        "k": k,
        "receptive_field": list(rf.centre_box),
        "icons": icons.recipe,
    }
    return SemanticDictionary(layer, channels, icons, ex, crops, rf, recipe_d)


@dataclass
class ActivationGrid:
    """The dominant channel at every cell of a layer for one image.

    Attributes:
        channel: ``(h, w)`` index of the strongest channel per cell.
        strength: ``(h, w)`` its activation, divided by the image's largest.
        icons: ``{channel: (3, s, s) image}`` for the channels that appear.
        mosaic: ``(3, h*s, w*s)`` each cell drawn as its channel's icon, faded by strength.
    """

    channel: torch.Tensor
    strength: torch.Tensor
    icons: dict[int, torch.Tensor]
    mosaic: torch.Tensor
    recipe: dict[str, Any] = field(default_factory=dict)


def activation_grid(
    model: nn.Module,
    image: torch.Tensor,
    layer: str,
    icon_size: int | None = None,
    recipe: Recipe | None = None,
    color: ColorStats | None = None,
    real: torch.Tensor | None = None,
    icons: dict[int, torch.Tensor] | None = None,
) -> ActivationGrid:
    """For one image ``(3, H, W)``: at each cell of ``layer``, the channel that fires most, shown as that
    channel's visualization (rendered here, batched, for the channels that appear, unless ``icons`` are
    given)."""
    device = device_of(model)
    img = image.to(device)
    t = activations(model, img[None], [layer])[layer][0]  # (C, h, w)
    strength, chan = t.max(0)
    strength = (strength / strength.max().clamp_min(1e-12)).clamp_min(0).cpu()
    chan = chan.cpu()
    size = img.shape[-1]
    icons = dict(icons or {})
    missing = sorted(set(chan.unique().tolist()) - set(icons))
    recipe_d: dict[str, Any] = {"method": "activation_grid", "layer": layer}
    if missing:
        r = visualize_channels(model, layer, missing, size, recipe=recipe, color=color, real=real)
        icons.update({c: r.images[i].cpu() for i, c in enumerate(missing)})
        recipe_d["icons"] = r.recipe
    s = icon_size or max(8, size // max(chan.shape))
    h, w = chan.shape
    mosaic = torch.ones(3, h * s, w * s)
    for yy in range(h):
        for xx in range(w):
            icon = F.interpolate(
                icons[int(chan[yy, xx])][None], size=(s, s), mode="bilinear", align_corners=False, antialias=True
            )[0]
            a = float(strength[yy, xx])
            mosaic[:, yy * s : (yy + 1) * s, xx * s : (xx + 1) * s] = a * icon + (1 - a) * 1.0
    return ActivationGrid(chan, strength, icons, mosaic, recipe_d)


__all__ = [
    "ActivationGrid",
    "ReceptiveField",
    "SemanticDictionary",
    "TopExamples",
    "activation_grid",
    "receptive_field",
    "semantic_dictionary",
    "top_examples",
]
