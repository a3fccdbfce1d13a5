"""The loop the suite's sweeps share (the reference paper's perturbations, the common corruptions, the per-scale
ablations): the attacked images in batches, each batch perturbed at every level of the sweep, and per level and
image whether the model still classifies the image correctly and how large the change was."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

#: ``perturbed(xb, yb, rows) -> per level (logits, per-image L2 size of the change or None)``: a batch of the
#: images (on the device) and its labels, and ``rows``, where the batch lies in the whole set.
Perturbed = Callable[[torch.Tensor, torch.Tensor, slice], Iterable[tuple[torch.Tensor, np.ndarray | None]]]


@dataclass(frozen=True)
class Sweep:
    """The model and the images a sweep runs on.

    Args:
        net: a prepared model.
        x: images in [0, 1], (N, C, H, W).
        y: their labels.
        indices: each image's index in the test split (seeds its random draws).
        device: where the model runs.
        batch_size: images per forward pass.
    """

    net: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    indices: np.ndarray
    device: torch.device
    batch_size: int = 128

    def run(self, levels: int, perturbed: Perturbed) -> tuple[np.ndarray, np.ndarray]:
        """``(correct, l2)``, each ``[level][image]``: whether the model classifies the image perturbed at that
        level correctly, and the L2 size of the change (0 where ``perturbed`` gives ``None``)."""
        n = len(self.x)
        correct = np.zeros((levels, n), dtype=bool)
        l2 = np.zeros((levels, n))
        for lo in range(0, n, self.batch_size):
            rows = slice(lo, lo + self.batch_size)
            xb, yb = self.x[rows].to(self.device), self.y[rows].to(self.device)
            for k, (logits, size) in enumerate(perturbed(xb, yb, rows)):
                correct[k, rows] = (logits.argmax(1) == yb).cpu().numpy()
                if size is not None:
                    l2[k, rows] = size
        return correct, l2
