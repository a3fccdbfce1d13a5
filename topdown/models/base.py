"""What both architectures share: the recorded constructor config and the classifier interface."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageClassifierNet(nn.Module):
    """Base class: remembers how it was built, so a checkpoint can rebuild it without pickles.

    Subclasses call ``self._record(locals())`` first thing in ``__init__``.
    """

    num_classes: int
    _init_args: dict[str, Any]

    def _record(self, frame_locals: dict[str, Any]) -> None:
        args = {k: v for k, v in frame_locals.items() if k not in ("self", "__class__")}
        # Tuples become lists so the config is plain YAML/JSON.
        self._init_args = {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}

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
