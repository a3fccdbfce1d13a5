"""Networks: the image pyramid, the baseline ResNet and the top-down ResNet, built by name."""

from .base import IMAGENET_MEAN, IMAGENET_STD, ImageClassifierNet, is_topdown
from .blocks import ClassifierHead, Merge, Normalize, PreActBlock, Stem
from .cost import count_macs, count_params
from .pyramid import PYRAMID_METHODS, ImagePyramid, downscale, gaussian_blur
from .registry import ARCHITECTURES, build_from_config, create_model, list_models, register_model
from .resnet import ResNet
from .topdown import WIDTH_SCHEDULES, TopDownResNet, topdown_widths

__all__ = [
    "ARCHITECTURES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PYRAMID_METHODS",
    "WIDTH_SCHEDULES",
    "ClassifierHead",
    "ImageClassifierNet",
    "ImagePyramid",
    "Merge",
    "Normalize",
    "PreActBlock",
    "ResNet",
    "Stem",
    "TopDownResNet",
    "build_from_config",
    "count_macs",
    "count_params",
    "create_model",
    "downscale",
    "gaussian_blur",
    "is_topdown",
    "list_models",
    "register_model",
    "topdown_widths",
]
