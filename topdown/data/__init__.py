"""Datasets (Flowers102, flower_photos, any ImageFolder, procedural flowers) and the data module."""

from .datamodule import DATASETS, AugmentedDataset, EpochSampler, FlowerData
from .sources import (
    DATA_ROOT_ENV,
    FileImageSource,
    ImageLoadError,
    default_data_root,
    flowers102_source,
    image_folder_source,
    load_image,
    stratified_split,
)
from .synthetic import SyntheticFlowers
from .transforms import AUGMENTATIONS, eval_transform, to_tensor, train_transform

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "DATA_ROOT_ENV",
    "AugmentedDataset",
    "EpochSampler",
    "FileImageSource",
    "FlowerData",
    "ImageLoadError",
    "SyntheticFlowers",
    "default_data_root",
    "eval_transform",
    "flowers102_source",
    "image_folder_source",
    "load_image",
    "stratified_split",
    "to_tensor",
    "train_transform",
]
