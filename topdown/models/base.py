"""What both architectures share: the interface every consumer asks, and the recorded constructor config."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, TypeGuard

import torch
from torch import nn

from .blocks import ClassifierHead
from .pyramid import ImagePyramid

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageClassifierNet(nn.Module):
    """Base class of topdown's networks: the interface every consumer asks (timm's), and how the net was built.

    * ``forward(x)``: images (N, 3, H, W) in [0, 1] to logits; ``forward_features(x)``: the last stage's
      features as the classifier reads them, before its pool.
    * ``stage_names()``: ``layer1`` ... ``layerN`` in the order the net runs them, each a module.
    * ``pyramid``: the :class:`ImagePyramid` the net reads the image through (levels coarse to fine; ``forward``
      then also takes a ready-made pyramid), or ``None`` for a net that reads the image alone.
    * ``num_classes`` and ``reset_classifier``; ``arch_config``, enough to rebuild the net.

    Subclasses call ``super().__init__()`` and ``self._record(locals())`` first thing in ``__init__``, build
    ``num_stages`` stages ``layer1..N`` and a ``head``, and define ``trunk``: the input to the last stage's output.
    """

    num_classes: int
    num_stages: int
    head: ClassifierHead
    pyramid: ImagePyramid | None
    _init_args: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.pyramid = None  # a top-down net replaces it with its ImagePyramid

    def _record(self, frame_locals: dict[str, Any]) -> None:
        args = {k: v for k, v in frame_locals.items() if k not in ("self", "__class__")}
        # Tuples become lists so the config is plain YAML/JSON.
        self._init_args = {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}

    def trunk(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Images (or, with a ``pyramid``, its levels) -> the last stage's output."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Images in [0, 1] (or a pyramid, coarse to fine) -> (N, C, h, w), the features the classifier pools."""
        return self.head.forward_features(self.trunk(x))

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Images in [0, 1] (or a pyramid, coarse to fine) -> logits (N, num_classes)."""
        return self.head(self.trunk(x))

    def stage_names(self) -> list[str]:
        """``layer1`` ... ``layerN``, in the order the net runs them."""
        return [f"layer{i + 1}" for i in range(self.num_stages)]

    @property
    def arch_config(self) -> dict[str, Any]:
        """``{"class_path": ..., "init_args": ...}``: enough to rebuild this network (LightningCLI style)."""
        cls = type(self)
        return {"class_path": f"topdown.models.{cls.__name__}", "init_args": copy.deepcopy(self._init_args)}

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer with a fresh one for ``num_classes`` outputs."""
        fc = self.head.fc
        self.head.fc = nn.Linear(fc.in_features, num_classes)
        self.num_classes = num_classes
        self._init_args["num_classes"] = num_classes


def is_topdown(net: nn.Module | None) -> TypeGuard[ImageClassifierNet]:
    """Whether ``net`` is a topdown network that reads an image pyramid (a wrapped or foreign module is not)."""
    return isinstance(net, ImageClassifierNet) and net.pyramid is not None
