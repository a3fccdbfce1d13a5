"""The baseline: a standard fine-to-coarse pre-activation ResNet for small images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .base import IMAGENET_MEAN, IMAGENET_STD, ImageClassifierNet
from .blocks import ClassifierHead, Normalize, Stem, make_stage
from .pyramid import LowPass


class ResNet(ImageClassifierNet):
    """Pre-activation ResNet: full-resolution stem, then stages that halve resolution and widen.

    Takes images in [0, 1]; normalization is its first layer. Stages are ``layer1`` (finest) ...
    ``layerN`` (coarsest), each a ``nn.Sequential`` of blocks, so ``"layer3.1.conv2"`` names a layer.

    Args:
        num_classes: outputs of the final linear layer.
        widths: channels per stage, fine to coarse.
        depths: blocks per stage.
        stem_pool: 2x2 max-pool after the stem conv (64 px images); False for 32 px images.
        mean, std: the normalization applied to the [0, 1] input.
        input_lowpass: a fixed (not learned) low-pass in front of the network: the image's Gaussian pyramid
            level at 1/``input_lowpass`` resolution (as the top-down net makes it), upsampled back. ``None``
            (the default) for none; ``2`` for the blur control, a baseline that sees what a top-down net's
            pyramid level sees but processes it fine to coarse. It is a blur, not a pyramid: ``pyramid`` stays
            ``None``.
    """

    def __init__(
        self,
        num_classes: int = 10,
        widths: Sequence[int] = (32, 64, 128, 256),
        depths: Sequence[int] = (2, 2, 2, 2),
        stem_pool: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        input_lowpass: int | None = None,
    ) -> None:
        super().__init__()
        self._record(locals())
        if len(widths) != len(depths) or not widths:
            raise ConfigError(f"widths {list(widths)} and depths {list(depths)} must be non-empty and of equal length")
        self.num_classes = num_classes
        self.lowpass = LowPass(input_lowpass) if input_lowpass else nn.Identity()
        self.normalize = Normalize(mean, std)
        self.stem = Stem(3, widths[0], pool=stem_pool)
        in_ch = widths[0]
        for i, (w, d) in enumerate(zip(widths, depths)):
            self.add_module(f"layer{i + 1}", make_stage(in_ch, w, d, "none" if i == 0 else "down"))
            in_ch = w
        self.num_stages = len(widths)
        self.head = ClassifierHead(in_ch, num_classes)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> last stage's output (N, C, H / 2**(stages - 1 + pool), ...)."""
        x = self.stem(self.normalize(self.lowpass(x)))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)  # width widens, resolution halves
        return x
