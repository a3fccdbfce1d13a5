"""The Lightning data module for every dataset topdown trains on.

Determinism: each training sample's augmentation is seeded by ``(seed, epoch, index)`` and the epoch's
order by ``(seed, epoch)``, so a run resumed from a checkpoint sees exactly the batches an unbroken run
would have seen, with or without worker processes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import ConfigError
from .description import DESCRIPTION_KEYS, REBUILD_KEYS, REQUIRED_KEYS
from .sources import (
    FileImageSource,
    default_data_root,
    flowers102_source,
    image_folder_source,
    stratified_split,
)
from .synthetic import SyntheticFlowers
from .transforms import Augment, eval_transform, to_tensor, train_transform

DatasetName = Literal["synthetic", "flowers102", "flower_photos", "imagefolder"]
DATASETS: tuple[str, ...] = get_args(DatasetName)


class AugmentedDataset(Dataset):
    """``source[indices[i]]`` through an albumentations pipeline, reseeded per (seed, epoch, index).

    A sampler may pass ``epoch * len(self) + i`` as the index: that is how the epoch reaches worker
    processes without shared state.
    """

    def __init__(self, source: Any, indices: Sequence[int], transform: Any, seed: int = 0, reseed: bool = True) -> None:
        self.source = source
        self.indices = list(indices)
        self.transform = transform
        self.seed = seed
        self.reseed = reseed

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def targets(self) -> list[int]:
        return [self.source.targets[i] for i in self.indices]

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        epoch, i = divmod(int(k), len(self.indices))
        image, label = self.source[self.indices[i]]
        if self.reseed:
            self.transform.set_random_seed(int(np.random.SeedSequence([self.seed, epoch, i]).generate_state(1)[0]))
        return to_tensor(self.transform(image=image)["image"]), int(label)


class EpochSampler(Sampler[int]):
    """Seeded per-epoch shuffling that also shards across distributed ranks.

    Yields ``epoch * n + i`` (see :class:`AugmentedDataset`). Under DDP each rank takes every
    ``world_size``-th index of the same permutation, padded so all ranks get the same count.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True) -> None:
        self.n = n
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @staticmethod
    def _dist() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        return math.ceil(self.n / self._dist()[1])

    def __iter__(self) -> Iterator[int]:
        rank, world = self._dist()
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        total = math.ceil(self.n / world) * world
        order = np.concatenate([order, order[: total - self.n]])
        base = self.epoch * self.n
        return iter((base + order[rank::world]).tolist())


@dataclass(eq=False, repr=False)
class FlowerData(pl.LightningDataModule):
    """Flower datasets for training and evaluation (a dataclass: its fields are the ``data:`` section; Lightning's
    own ``__init__`` runs in ``__post_init__``).

    Args:
        dataset: ``synthetic`` (procedural flowers, no files), ``flowers102`` (official splits),
            ``flower_photos`` (tf_flowers; seeded stratified split) or ``imagefolder`` (``root`` holds
            ``<class>/<image>``; seeded stratified split).
        root: data root; default ``$TOPDOWN_DATA_ROOT`` or ``./data``. For ``flower_photos`` the images are
            in ``root/flower_photos``; for ``flowers102`` in ``root/flowers-102``.
        image_size: side of the square images the network is validated and tested on.
        train_image_size: side of the training crops; default ``image_size``. Random-resized crops
            enlarge objects, so a network trained on crops smaller than its test images sees objects at
            the size it learned them (the train-test resolution discrepancy; Touvron et al., NeurIPS 2019)
            and trains faster: 48 px crops cost about 0.56 of 64 px ones.
        batch_size: per process.
        num_workers: data-loading worker processes.
        seed: split, shuffling and augmentation seed.
        val_fraction, test_fraction: held-out shares for datasets without official splits.
        augment: ``standard``, ``light`` or ``none``.
        crop_min_scale: the smallest share of the image a random resized crop keeps (``standard`` and
            ``light``); larger is milder: less zoom, so fine patterns keep closer to their test-time scale.
        synthetic_size: images in the procedural dataset (all splits together).
        synthetic_classes: classes of the procedural dataset.
        trainval: Flowers102 only: train on train+val (validation still reports val).
        skip_corrupt: log and leave out unreadable images instead of stopping.
        download: let torchvision download Flowers102 where there is a network.
    """

    dataset: DatasetName = "synthetic"
    root: str | None = None
    image_size: int = 64
    train_image_size: int | None = None
    batch_size: int = 64
    num_workers: int = 0
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    augment: Augment = "standard"
    crop_min_scale: float = 0.35
    synthetic_size: int = 2400
    synthetic_classes: int = 6
    trainval: bool = False
    skip_corrupt: bool = False
    download: bool = False

    def __post_init__(self) -> None:
        super().__init__()
        if self.dataset not in DATASETS:
            raise ConfigError(f"data.dataset: unknown dataset {self.dataset!r}; choose one of {DATASETS}")
        if self.image_size < 16:
            raise ConfigError(f"data.image_size must be >= 16, got {self.image_size}")
        if self.train_image_size is None:
            self.train_image_size = self.image_size
        elif self.train_image_size < 16:
            raise ConfigError(f"data.train_image_size must be >= 16, got {self.train_image_size}")
        val, test = self.val_fraction, self.test_fraction
        if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
            raise ConfigError(
                f"data.val_fraction {val} and data.test_fraction {test} must be in [0, 1) and sum below 1"
            )
        train_transform(self.image_size, self.augment, self.crop_min_scale)  # validates both before any work
        #: ``root`` resolved: the images are under it
        self.path = Path(self.root) if self.root is not None else default_data_root()
        self._splits: dict[str, tuple[Any, list[int]]] | None = None
        self._classes: list[str] | None = None

    # -- what the data is ---------------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        if self._classes is None:
            if self.dataset == "synthetic":
                self._classes = SyntheticFlowers(1, self.image_size, self.seed, self.synthetic_classes).classes
            elif self.dataset == "flowers102":
                from torchvision.datasets import Flowers102  # torchvision's datasets only for Flowers102

                self._classes = (
                    list(Flowers102.classes) if hasattr(Flowers102, "classes") else [str(i) for i in range(102)]
                )
            else:
                self._classes = image_folder_source(self._folder()).classes
        return self._classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict[str, Any]:
        """What a checkpoint records about its data (enough to rebuild the same splits)."""
        return {k: getattr(self, k) for k in DESCRIPTION_KEYS}

    @classmethod
    def from_description(cls, desc: dict[str, Any], root: str | None = None, **overrides: Any) -> FlowerData:
        """Rebuild the data a checkpoint was trained on (same dataset, size and splits)."""
        missing = [k for k in REQUIRED_KEYS if k not in desc]
        if missing:
            raise ConfigError(f"data description lacks {missing}: {desc}")
        args = {k: desc[k] for k in REBUILD_KEYS if k in desc}
        args.update(overrides)
        return cls(root=root, **args)

    def _folder(self) -> Path:
        return self.path / "flower_photos" if self.dataset == "flower_photos" else self.path

    # -- splits -------------------------------------------------------------------------------------
    def splits(self) -> dict[str, tuple[Any, list[int]]]:
        """``{"train"|"val"|"test": (source, indices)}``, built once."""
        if self._splits is not None:
            return self._splits
        if self.dataset == "synthetic":
            # Each split is its own seeded stream, so the test set never overlaps the training set.
            n = self.synthetic_size
            n_val, n_test = round(n * self.val_fraction), round(n * self.test_fraction)
            sizes = {"train": n - n_val - n_test, "val": n_val, "test": n_test}
            self._splits = {}
            for k, (name, size) in enumerate(sizes.items()):
                src = SyntheticFlowers(
                    max(size, 1), self.image_size, self.seed * 1000 + k, self.synthetic_classes, cache=True
                )
                self._splits[name] = (src, list(range(size)))
        elif self.dataset == "flowers102":
            srcs = {s: flowers102_source(self.path, s, self.download) for s in ("train", "val", "test")}
            if self.trainval:
                tr, va = srcs["train"], srcs["val"]
                srcs["train"] = FileImageSource(tr.files + va.files, tr.targets + va.targets, tr.classes)
            self._splits = {s: (src, list(range(len(src)))) for s, src in srcs.items()}
        else:
            src = image_folder_source(self._folder())
            train, val, test = stratified_split(src.targets, (self.val_fraction, self.test_fraction), self.seed)
            self._splits = {"train": (src, train), "val": (src, val), "test": (src, test)}
        return self._splits

    def subset(self, split: str, train: bool = False) -> AugmentedDataset:
        """A split as a dataset; ``train=True`` applies training augmentation."""
        if split not in ("train", "val", "test"):
            raise ConfigError(f"unknown split {split!r}; choose train, val or test")
        src, idx = self.splits()[split]
        if isinstance(src, FileImageSource):
            idx = src.drop_unreadable(idx, self.skip_corrupt)
        elif isinstance(src, SyntheticFlowers):
            src.draw(idx)  # on every core, once per process
        tf = (
            train_transform(self.train_image_size, self.augment, self.crop_min_scale)
            if train
            else eval_transform(self.image_size)
        )
        return AugmentedDataset(src, idx, tf, self.seed, reseed=train)

    # -- Lightning hooks ----------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        self.splits()

    def _loader(self, ds: AugmentedDataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=EpochSampler(len(ds), self.seed, shuffle=shuffle),
            num_workers=self.num_workers,
            persistent_workers=False,
            # A last training batch of one image would break batch norm.
            drop_last=shuffle and len(ds) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.subset("train", train=True), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.subset("val"), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.subset("test"), shuffle=False)
