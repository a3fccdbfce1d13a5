"""Common corruptions (Hendrycks & Dietterich, ICLR 2019) at 5 fixed severities, seeded per image.

albumentations 2.0.8 supplies most of them, each pinned to one value per severity (``(v, v)`` ranges, never
a random range) and reseeded per image from ``(seed, corruption, severity, image index)``, so a corrupted
image does not depend on batching, on the subset or on what ran before. Severity values follow
CIFAR-10-C (small images); blur sizes are given for 32 px and scaled with the image side. Contrast is
Hendrycks' ``(x - mean) * c + mean`` (albumentations' contrast scales around 0 instead, which also darkens).
Where albumentations' formula differs from Hendrycks' (shot noise is applied in linear light, brightness is
added to RGB rather than to HSV value), its parameters were set to give a similar noise std or shift.

The mean corruption error (mCE) of a model ``m`` against a reference model ``r`` (the baseline):
``CE_c = sum_s E_{s,c}(m) / sum_s E_{s,c}(r)``, ``mCE = mean_c CE_c`` (the reference scores 100 %), and the
relative mCE subtracts each model's clean error from every ``E_{s,c}`` first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import albumentations as A
import numpy as np
import torch

from ..errors import ConfigError
from .attacks import derive_seed
from .sweep import Sweep

SEVERITIES = (1, 2, 3, 4, 5)

#: name -> (parameter per severity 1..5, what it is, implementation)
CORRUPTION_PARAMS: dict[str, tuple[list[Any], str, str]] = {
    "gaussian_noise": ([0.04, 0.06, 0.08, 0.09, 0.10], "noise std (of 1)", "albumentations.GaussNoise"),
    "shot_noise": ([0.004, 0.008, 0.02, 0.028, 0.042], "Poisson scale", "albumentations.ShotNoise"),
    "impulse_noise": ([0.01, 0.02, 0.03, 0.05, 0.07], "fraction of pixels", "albumentations.SaltAndPepper"),
    "defocus_blur": (
        [(1, 0.1), (1, 0.3), (1, 0.5), (2, 0.2), (2, 0.5)],
        "(disc radius px@32, alias sigma)",
        "albumentations.Defocus",
    ),
    "gaussian_blur": ([0.4, 0.6, 0.7, 0.8, 1.0], "sigma px@32", "albumentations.GaussianBlur"),
    "motion_blur": ([3, 5, 7, 9, 11], "kernel px@32", "albumentations.MotionBlur"),
    "jpeg": ([80, 65, 58, 50, 40], "JPEG quality", "albumentations.ImageCompression"),
    "contrast": ([0.75, 0.5, 0.4, 0.3, 0.15], "contrast factor", "(x - mean) * c + mean"),
    "brightness": ([0.05, 0.1, 0.15, 0.2, 0.3], "added brightness (of 1)", "albumentations.RandomBrightnessContrast"),
    "pixelate": ([0.95, 0.9, 0.85, 0.75, 0.65], "downscale factor", "albumentations.Downscale (area, nearest)"),
}
CORRUPTIONS = tuple(CORRUPTION_PARAMS)

Corrupt = Callable[[np.ndarray, int], np.ndarray]  # (uint8 HWC image, seed) -> uint8 HWC image


def _albu(transform: Any) -> Corrupt:
    pipeline = A.Compose([transform], seed=0)

    def apply(image: np.ndarray, seed: int) -> np.ndarray:
        pipeline.set_random_seed(seed % (1 << 32))
        return pipeline(image=image)["image"]

    return apply


def _odd(v: float) -> int:
    k = max(3, int(round(v)))
    return k if k % 2 else k + 1


def make_corruption(name: str, severity: int, image_size: int) -> Corrupt:
    """The corruption ``name`` at ``severity`` (1-5) for images of side ``image_size``."""
    import cv2  # OpenCV only for the corruptions that need it

    if name not in CORRUPTION_PARAMS:
        raise ConfigError(f"unknown corruption {name!r}; choose one of {CORRUPTIONS}")
    if severity not in SEVERITIES:
        raise ConfigError(f"severity must be in 1..5, got {severity}")
    v = CORRUPTION_PARAMS[name][0][severity - 1]
    s = image_size / 32  # spatial sizes are given for 32 px images
    if name == "gaussian_noise":
        return _albu(A.GaussNoise(std_range=(v, v), mean_range=(0, 0), per_channel=True, p=1))
    if name == "shot_noise":
        return _albu(A.ShotNoise(scale_range=(v, v), p=1))
    if name == "impulse_noise":
        return _albu(A.SaltAndPepper(amount=(v, v), salt_vs_pepper=(0.5, 0.5), p=1))
    if name == "defocus_blur":
        r = max(1, int(round(v[0] * s)))
        return _albu(A.Defocus(radius=(r, r), alias_blur=(v[1] * s, v[1] * s), p=1))
    if name == "gaussian_blur":
        return _albu(A.GaussianBlur(blur_limit=0, sigma_limit=(v * s, v * s), p=1))
    if name == "motion_blur":
        k = _odd(v * s)
        return _albu(A.MotionBlur(blur_limit=(k, k), allow_shifted=False, p=1))
    if name == "jpeg":
        return _albu(A.ImageCompression(compression_type="jpeg", quality_range=(v, v), p=1))
    if name == "brightness":
        return _albu(A.RandomBrightnessContrast(brightness_limit=(v, v), contrast_limit=(0, 0), p=1))
    if name == "pixelate":
        return _albu(
            A.Downscale(
                scale_range=(v, v), interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_NEAREST}, p=1
            )
        )
    if name == "contrast":

        def contrast(image: np.ndarray, seed: int) -> np.ndarray:
            x = image.astype(np.float32)
            mean = x.mean(axis=(0, 1), keepdims=True)
            return np.clip((x - mean) * v + mean, 0, 255).round().astype(np.uint8)

        return contrast
    raise AssertionError(name)  # every name in CORRUPTION_PARAMS is handled above


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8 (exact for images that came from uint8)."""
    return (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def from_uint8(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float().div_(255)


def corrupt_batch(x: torch.Tensor, indices: np.ndarray, name: str, severity: int, seed: int) -> torch.Tensor:
    """Corrupt a batch of images in [0, 1]; image ``k`` is seeded by its dataset index ``indices[k]``."""
    fn = make_corruption(name, severity, x.shape[-1])
    images = to_uint8(x)
    out = np.stack(
        [fn(img, derive_seed(seed, "corruption", name, severity, int(i))) for img, i in zip(images, indices)]
    )
    return from_uint8(out)


@torch.no_grad()
def run_corruption(sw: Sweep, name: str, severities: list[int], seed: int) -> dict[str, Any]:
    """Accuracy under ``name`` at each severity.

    Args:
        sw: the model and the images (their test-split indices seed the corruption).
        name: one of :data:`CORRUPTIONS`.
        severities: subset of 1..5.
        seed: the suite seed.
    """
    start = time.perf_counter()

    def perturbed(xb: torch.Tensor, yb: torch.Tensor, rows: slice) -> Iterator[tuple[torch.Tensor, None]]:
        for sev in severities:
            xc = corrupt_batch(sw.x[rows], sw.indices[rows], name, sev, seed)
            yield sw.net(xc.to(sw.device)), None

    correct, _ = sw.run(len(severities), perturbed)
    acc = [int(c.sum()) / max(1, len(sw.x)) for c in correct]
    params, unit, impl = CORRUPTION_PARAMS[name]
    return {
        "name": name,
        "severities": list(severities),
        "parameters": [params[s - 1] for s in severities],
        "unit": unit,
        "implementation": impl,
        "seed": seed,
        "accuracy": acc,
        "error": [1 - a for a in acc],
        "time_s": time.perf_counter() - start,
    }


def _nanmean(values: Any) -> float:
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan


def corruption_errors(
    errors: dict[str, dict[str, list[float]]], clean_error: dict[str, float], reference: str
) -> dict[str, dict[str, Any]]:
    """mCE and relative mCE of every model against ``reference``.

    Args:
        errors: model -> corruption -> error per severity (same severities for every model).
        clean_error: model -> clean error on the same images.
        reference: the model whose errors normalise everyone's (its mCE is 100 %).
    """
    ref = errors[reference]
    out: dict[str, dict[str, Any]] = {}
    for model, errs in errors.items():
        ce, rel = {}, {}
        for c, e in errs.items():
            denom = sum(ref[c])
            ce[c] = sum(e) / denom if denom > 0 else math.nan
            rdenom = sum(v - clean_error[reference] for v in ref[c])
            rel[c] = (sum(v - clean_error[model] for v in e) / rdenom) if rdenom > 0 else math.nan
        out[model] = {
            "reference": reference,
            "ce": ce,
            "mce": _nanmean(ce.values()),
            "relative_ce": rel,
            # undefined where the reference's corrupted error does not exceed its clean error
            "relative_mce": _nanmean(rel.values()),
            "mean_accuracy": float(np.mean([1 - v for e in errs.values() for v in e])) if errs else math.nan,
        }
    return out
