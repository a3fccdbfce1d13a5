"""Network dissection (Bau et al. 2017, NetDissect-Lite) on part masks.

Each unit's activation map is upsampled to the mask size and thresholded at the unit's top quantile over
the dataset; the IoU of that binary map with each concept's mask, accumulated over the dataset, says which
concept the unit detects. On the procedural flowers the concepts are their part masks: background,
petals and centre.

NetDissect's ``quantile=0.995`` suits Broden's hundreds of small concepts. Three large parts need a looser
threshold: at 0.995 a unit's mask covers 0.5 % of the pixels, so its IoU with a part that covers 40 % of the
image cannot exceed 0.0125. The default here is 0.95.

A second IoU with the masks shuffled between images is the chance level: a unit that tracks a part
overlaps its *own* image's part better than another image's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .hooks import activations, device_of, frozen


@dataclass
class Dissection:
    """Per unit of ``layer``, IoU with each concept.

    Attributes:
        iou: ``(C, K)``.
        shuffled_iou: ``(C, K)`` with masks shuffled between images (chance).
        thresholds: ``(C,)`` activation threshold per unit.
        concepts: concept names (mask values ``0..K-1``).
    """

    layer: str
    iou: torch.Tensor
    shuffled_iou: torch.Tensor
    thresholds: torch.Tensor
    concepts: list[str]
    quantile: float

    @property
    def best(self) -> list[tuple[str, float]]:
        """Each unit's best concept and its IoU."""
        v, k = self.iou.max(1)
        return [(self.concepts[int(i)], float(x)) for x, i in zip(v, k)]

    def summary(self, iou_threshold: float = 0.04) -> dict[str, object]:
        """Counts of units per best concept (IoU above ``iou_threshold``, NetDissect's 0.04)."""
        counts = {c: 0 for c in self.concepts}
        for c, v in self.best:
            if v >= iou_threshold:
                counts[c] += 1
        return {
            "units": int(self.iou.shape[0]),
            "detectors": counts,
            "iou_threshold": iou_threshold,
            "mean_best_iou": float(self.iou.max(1).values.mean()),
            "mean_best_iou_shuffled": float(self.shuffled_iou.max(1).values.mean()),
        }


@torch.no_grad()
def synthetic_masks(source: object, indices: Sequence[int]) -> torch.Tensor:
    """Part masks ``(N, H, W)`` (long) of procedural flowers (``SyntheticFlowers.masks``)."""
    return torch.stack([torch.from_numpy(source.masks(int(i))).long() for i in indices])


@torch.no_grad()
def dissect(
    model: nn.Module,
    layer: str,
    dataset: Dataset,
    masks: torch.Tensor,
    concepts: Sequence[str],
    quantile: float = 0.95,
    batch_size: int = 64,
    seed: int = 0,
) -> Dissection:
    """Dissect ``layer`` on ``dataset`` (items ``(image, label)``) against ``masks`` (``(N, H, W)``,
    values index ``concepts``).

    Activations are cached (``N x C x h x w`` floats), so this suits datasets of a few thousand images.
    """
    device = device_of(model)
    acts = []
    with frozen(model):
        for x, *_ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            t = activations(model, x.to(device), [layer])[layer]
            acts.append(t.float().cpu())
    a = torch.cat(acts)  # (N, C, h, w)
    n, c = a.shape[:2]
    if len(masks) != n:
        raise ValueError(f"{n} images but {len(masks)} masks")
    # Per-unit top quantile over every position of every image.
    flat = a.transpose(0, 1).reshape(c, -1)
    if flat.shape[1] > 2_000_000:  # torch.quantile's input limit; a strided sample is plenty
        flat = flat[:, :: flat.shape[1] // 2_000_000 + 1]
    thr = torch.quantile(flat, quantile, dim=1)  # (C,)
    k = len(concepts)
    h, w = masks.shape[-2:]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    # A shuffle that leaves an image with its own mask would inflate chance: rotate those away.
    perm = torch.where(perm == torch.arange(n), (perm + 1) % n, perm)
    stats = {name: torch.zeros(3, c, k, dtype=torch.float64) for name in ("real", "shuffled")}
    for i in range(0, n, batch_size):
        up = F.interpolate(a[i : i + batch_size], size=(h, w), mode="bilinear", align_corners=False)
        on = (up > thr.view(1, -1, 1, 1)).permute(1, 0, 2, 3).reshape(c, -1).double()  # (C, b*h*w)
        for name, m in (("real", masks[i : i + batch_size]), ("shuffled", masks[perm[i : i + batch_size]])):
            onehot = F.one_hot(m.reshape(-1), k).double()  # (b*h*w, K)
            s = stats[name]
            s[0] += on @ onehot  # intersections
            s[1] += on.sum(1, keepdim=True)  # unit areas
            s[2] += onehot.sum(0, keepdim=True)  # concept areas
    ious = {}
    for name, s in stats.items():
        inter, area_u, area_c = s
        ious[name] = (inter / (area_u + area_c - inter).clamp_min(1)).float()
    return Dissection(layer, ious["real"], ious["shuffled"], thr, list(concepts), quantile)
