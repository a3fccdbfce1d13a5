"""albumentations pipelines; every pipeline ends in a float tensor (3, H, W) in [0, 1]."""

from __future__ import annotations

import os
from typing import Literal, get_args

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks for updates on import

import albumentations as A
import cv2
import numpy as np
import torch

from ..errors import ConfigError

Augment = Literal["standard", "light", "none"]
AUGMENTATIONS: tuple[str, ...] = get_args(Augment)


def train_transform(image_size: int, augment: Augment = "standard", crop_min_scale: float = 0.35) -> A.Compose:
    """Random resized crop (keeping ``crop_min_scale`` to all of the image's area), horizontal flip and colour
    jitter (``standard``); ``light`` keeps crop+flip."""
    if augment not in AUGMENTATIONS:
        raise ConfigError(f"unknown augment {augment!r}; choose one of {AUGMENTATIONS}")
    if not 0 < crop_min_scale <= 1:
        raise ConfigError(f"data.crop_min_scale must be in (0, 1], got {crop_min_scale}")
    if augment == "none":
        return eval_transform(image_size)
    ops: list[A.BasicTransform] = [
        A.RandomResizedCrop(size=(image_size, image_size), scale=(crop_min_scale, 1.0), interpolation=cv2.INTER_AREA),
        A.HorizontalFlip(p=0.5),
    ]
    if augment == "standard":
        ops.append(A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, p=0.8))
    return A.Compose(ops, seed=0)


def eval_transform(image_size: int) -> A.Compose:
    """Resize the shorter side to ``image_size`` and take the centre crop."""
    return A.Compose(
        [
            A.SmallestMaxSize(max_size=image_size, interpolation=cv2.INTER_AREA),
            A.CenterCrop(height=image_size, width=image_size),
        ],
        seed=0,
    )


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)
