"""What a checkpoint records about the data it was trained on: the keys of ``FlowerData.describe()``, listed once."""

from __future__ import annotations

#: Every key of a data description, in the order ``FlowerData.describe()`` writes them.
DESCRIPTION_KEYS = (
    "dataset",
    "image_size",
    "train_image_size",
    "num_classes",
    "classes",
    "seed",
    "val_fraction",
    "test_fraction",
    "synthetic_size",
    "synthetic_classes",
    "trainval",
)

#: What rebuilds the data (``FlowerData``'s arguments); the class names are read from the data itself.
REBUILD_KEYS = tuple(k for k in DESCRIPTION_KEYS if k not in ("num_classes", "classes"))

#: What a description cannot do without.
REQUIRED_KEYS = ("dataset", "image_size")

#: What checkpoints compared side by side must share: the same images, splits and classes, tested at the same
#: size. The training crops may differ (they leave the test split as it is).
SAME_DATA_KEYS = tuple(k for k in DESCRIPTION_KEYS if k != "train_image_size")
