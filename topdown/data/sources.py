"""Image sources: indexable collections of ``(uint8 HxWx3 image, int label)`` with class names.

Real images are decoded once into memory (the flower sets are small), so every epoch after the first
costs only augmentation. A corrupt or unreadable file raises :class:`ImageLoadError` naming the file, or
with ``skip_corrupt=True`` is logged and left out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import TopdownError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
DATA_ROOT_ENV = "TOPDOWN_DATA_ROOT"


class ImageLoadError(TopdownError, RuntimeError):
    """An image file that is missing, truncated or not an image."""


def default_data_root() -> Path:
    """``$TOPDOWN_DATA_ROOT`` if set, else ``./data``."""
    return Path(os.environ.get(DATA_ROOT_ENV, "data"))


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode one image file to uint8 RGB (H, W, 3); any failure names the file."""
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageLoadError(f"{path}: cannot read image ({type(err).__name__}: {err})") from err


class FileImageSource:
    """A list of (path, label) decoded lazily and cached in memory."""

    def __init__(self, files: Sequence[str | os.PathLike[str]], labels: Sequence[int], classes: Sequence[str]) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels")
        self.files = [Path(f) for f in files]
        self.targets = [int(t) for t in labels]
        self.classes = list(classes)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        img = self._cache.get(i)
        if img is None:
            img = self._cache[i] = load_image(self.files[i])
        return img, self.targets[i]

    def drop_unreadable(self, indices: Sequence[int], skip: bool) -> list[int]:
        """Decode ``indices`` now; return those that load. Unreadable ones raise unless ``skip``."""
        good = []
        for i in indices:
            try:
                self[i]
            except ImageLoadError as err:
                if not skip:
                    raise
                log.warning("skipping %s", err)
                continue
            good.append(i)
        return good


def image_folder_source(root: str | os.PathLike[str]) -> FileImageSource:
    """``root/<class>/<image>`` like torchvision's ImageFolder; classes and files in sorted order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder {root.resolve()} does not exist (--data.root or $TOPDOWN_DATA_ROOT says where the data is)"
        )
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"image folder {root} has no class sub-folders")
    files, labels = [], []
    for label, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(f)
                labels.append(label)
    if not files:
        raise FileNotFoundError(f"image folder {root} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return FileImageSource(files, labels, classes)


def flowers102_source(root: str | os.PathLike[str], split: str, download: bool = False) -> FileImageSource:
    """Oxford Flowers102 in torchvision's layout (``root/flowers-102/{jpg,imagelabels.mat,setid.mat}``)."""
    from torchvision.datasets import Flowers102  # torchvision's datasets only for Flowers102

    base = Path(root) / "flowers-102"
    needed = [base / "imagelabels.mat", base / "setid.mat", base / "jpg"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing and not download:
        raise FileNotFoundError(
            f"Flowers102 not found under {Path(root).resolve()}: missing {', '.join(missing)}. "
            "Point --data.root at the folder holding flowers-102/, or pass --data.download true where "
            "there is a network."
        )
    ds = Flowers102(str(root), split=split, download=download)
    return FileImageSource(ds._image_files, ds._labels, ds.classes)


def stratified_split(targets: Sequence[int], fractions: Sequence[float], seed: int) -> list[list[int]]:
    """Split indices per class with a seeded permutation; the same on every machine.

    ``fractions`` are the shares of all but the first part (e.g. ``(val, test)``); the first part gets the
    rest. Each class contributes ``round(n * f)`` (at least one when it has enough images) to each part.
    """
    targets = np.asarray(targets)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        perm = idx[np.random.default_rng([seed, int(c)]).permutation(len(idx))]
        start = 0
        for p, f in enumerate(fractions, start=1):
            n = int(round(len(idx) * f))
            if f > 0 and n == 0 and len(idx) > len(fractions):
                n = 1
            parts[p].extend(perm[start : start + n].tolist())
            start += n
        parts[0].extend(perm[start:].tolist())
    return [sorted(p) for p in parts]
