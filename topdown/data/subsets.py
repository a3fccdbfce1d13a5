"""Evaluation subsets: a seeded, class-stratified choice of images, and a split cached in memory."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..seeds import derive_seed


def stratified_subset(targets: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """``size`` indices drawn per class in proportion to the class's share (largest remainder), seeded;
    all indices when ``size`` is ``None`` or not smaller than the data. Sorted."""
    targets = np.asarray(targets)
    n = len(targets)
    if size is None or size >= n:
        return np.arange(n)
    classes, counts = np.unique(targets, return_counts=True)
    quota = counts * size / n
    take = np.floor(quota).astype(int)
    for k in np.argsort(-(quota - take), kind="stable")[: size - take.sum()]:
        take[k] += 1
    chosen = []
    for c, k in zip(classes, take):
        idx = np.flatnonzero(targets == c)
        chosen.extend(idx[np.random.default_rng(derive_seed(seed, "subset", int(c))).permutation(len(idx))[:k]])
    return np.sort(np.asarray(chosen, dtype=int))


class CachedSplit(Dataset):
    """Load (and, for procedural data, render) each image once per run, whatever reads it.

    Images that are exact multiples of 1/255 (every decoded 8-bit image) are kept as uint8, a quarter of
    the memory of float32.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._items: dict[int, tuple[torch.Tensor, int]] = {}
        targets = getattr(dataset, "targets", None)
        self.targets = list(targets) if targets is not None else [int(dataset[i][1]) for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        i = int(i)
        if i not in self._items:
            x, y = self.dataset[i]
            q = (x * 255).round()
            self._items[i] = (q.to(torch.uint8) if torch.equal(q / 255, x) else x, int(y))
        x, y = self._items[i]
        return (x.float() / 255 if x.dtype == torch.uint8 else x), y
