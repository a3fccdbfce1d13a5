"""The top-down network: a ResNet whose stages run coarse to fine, fed by an image pyramid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from .base import IMAGENET_MEAN, IMAGENET_STD, ImageClassifierNet
from .blocks import ClassifierHead, Merge, Normalize, Stem, make_stage
from .pyramid import ImagePyramid

WIDTH_SCHEDULES = ("mirror", "uniform", "reverse")
MERGE_POSITIONS = ("after_block", "before_convs")


def topdown_widths(widths: Sequence[int], schedule: str) -> list[int]:
    """Stage widths of the top-down net, coarse to fine, from the baseline's ``widths`` (fine to coarse).

    ``mirror``: widths shrink as resolution grows (each stage costs about what its mirror stage costs in
    the baseline); ``uniform``: ``widths[1]`` (or the only width) everywhere; ``reverse``: widths grow with
    resolution.
    """
    if schedule == "mirror":
        return list(reversed(widths))
    if schedule == "uniform":
        w = widths[1] if len(widths) > 1 else widths[0]
        return [w] * len(widths)
    if schedule == "reverse":
        return list(widths)
    raise ConfigError(f"unknown width schedule {schedule!r}; choose one of {WIDTH_SCHEDULES}")


class TopDownStage(nn.Module):
    """One resolution of the top-down net: blocks ``0..depth-1`` and the ``merge`` with the lateral.

    The coarsest stage starts from the lateral alone; every other stage upsamples (block ``0``), merges the
    lateral of its pyramid level, then runs its remaining blocks. Being one module, a forward hook on
    ``layerN`` sees the stage's output, as on the baseline.

    ``merge_at``: ``after_block`` merges the lateral with the up block's output (the reference's place);
    ``before_convs`` merges it with the upsampled shortcut inside the up block, so the finer level also
    passes through that block's two 3x3 convs (same cost, one block deeper for the fine image).
    """

    def __init__(
        self, in_ch: int, out_ch: int, depth: int, merge: str | None, merge_kernel: int, merge_at: str = "after_block"
    ) -> None:
        super().__init__()
        if merge_at not in MERGE_POSITIONS:
            raise ConfigError(f"unknown merge_at {merge_at!r}; choose one of {MERGE_POSITIONS}")
        self.merge_at = merge_at
        blocks = make_stage(in_ch, out_ch, depth, "none" if merge is None else "up")
        for i, block in enumerate(blocks):
            self.add_module(str(i), block)
        self.depth = depth
        self.merge = Merge(out_ch, merge, merge_kernel) if merge is not None else None

    def __getitem__(self, i: int) -> nn.Module:
        return getattr(self, str(i))

    def forward(self, x: torch.Tensor | None, lat: torch.Tensor) -> torch.Tensor:
        if self.merge is None:
            out = lat
        elif self.merge_at == "before_convs":
            out = self[0](x, inject=lambda up: self.merge(up, lat))  # (N, C_in, h/2, w/2) -> (N, C, h, w)
        else:
            out = self[0](x)  # up block: (N, C_in, h/2, w/2) -> (N, C, h, w)
            out = self.merge(out, lat)  # (N, C, h, w)
        for i in range(0 if self.merge is None else 1, self.depth):
            out = self[i](out)
        return out


class TopDownResNet(ImageClassifierNet):
    """Coarse-to-fine ResNet (Lelekas et al., CVPR-W 2020), mirroring :class:`ResNet`'s resolutions.

    The image pyramid's coarsest level enters ``layer1``; going up a stage, features are upsampled x2 (the
    first block of each stage, ``resample="up"``) and merged (``layerN.merge``) with a lateral projection
    (``laterals.i``, a 3x3 stem on pyramid level ``i``) of the next finer level. The last stage runs at the
    resolution of the baseline's first stage. ``forward`` also takes a ready-made pyramid (a list of levels,
    coarse to fine, in [0, 1]), so one level can be perturbed alone.

    Args:
        num_classes: outputs of the final linear layer.
        widths: the matching baseline's widths (fine to coarse); ``width_schedule`` maps them to this net.
        depths: blocks per stage, coarse to fine (mirror of the baseline's when reversed).
        width_schedule: ``mirror``, ``uniform`` or ``reverse``.
        merge: ``add``, ``concat`` or ``add_concat``.
        merge_kernel: 1 or 3, the fusion conv of ``concat``/``add_concat``.
        merge_at: ``after_block`` (the reference) or ``before_convs`` (see :class:`TopDownStage`).
        pyramid_method: ``gaussian``, ``antialias``, ``noblur`` or ``pool``.
        pyramid_levels: levels of the image pyramid, ``None`` for one per stage. With fewer levels than
            stages, the coarsest level feeds the first ``num_stages - pyramid_levels + 1`` stages, each
            lateral max-pooled down to its stage's resolution: with 4 stages and 3 levels the coarsest stage
            sees a 1/4 image pooled x4 instead of a 1/8 image pooled x2 (on 48 px crops, 12x12 px of
            image instead of 6x6), at the same resolutions and nearly the same cost.
        stem_pool: 2x2 max-pool after each lateral conv (as the baseline's stem).
        head_width: channels of a 1x1 conv-BN-ReLU between the last stage and the pool, or ``"widest"``
            for ``max(widths)``; ``None`` pools the last stage directly (the reference design). The
            ``mirror`` schedule's last stage is its narrowest (``widths[0]``), so without it the classifier
            sees 8x fewer pooled features than the baseline's; ``"widest"`` gives it as many.
        mean, std: the normalization applied to every [0, 1] pyramid level.
    """

    def __init__(
        self,
        num_classes: int = 10,
        widths: Sequence[int] = (32, 64, 128, 256),
        depths: Sequence[int] = (2, 2, 2, 2),
        width_schedule: Literal["mirror", "uniform", "reverse"] = "mirror",
        merge: Literal["add", "concat", "add_concat"] = "add_concat",
        merge_kernel: int = 1,
        merge_at: Literal["after_block", "before_convs"] = "after_block",
        pyramid_method: Literal["gaussian", "antialias", "noblur", "pool"] = "gaussian",
        pyramid_levels: int | None = None,
        stem_pool: bool = True,
        head_width: int | Literal["widest"] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self._record(locals())
        if head_width == "widest":
            head_width = max(widths)
        if head_width is not None and (not isinstance(head_width, int) or head_width < 1):
            raise ConfigError(f"head_width must be a positive number of channels, 'widest' or null, got {head_width!r}")
        if len(widths) != len(depths) or not widths:
            raise ConfigError(f"widths {list(widths)} and depths {list(depths)} must be non-empty and of equal length")
        self.num_classes = num_classes
        self.num_stages = len(widths)
        self.stage_widths = topdown_widths(widths, width_schedule)
        levels = self.num_stages if pyramid_levels is None else pyramid_levels
        if not isinstance(levels, int) or not 1 <= levels <= self.num_stages:
            raise ConfigError(
                f"pyramid_levels must be between 1 and the {self.num_stages} stages, got {pyramid_levels!r}"
            )
        self.pyramid = ImagePyramid(levels, pyramid_method)
        # Stage i reads pyramid level level_of[i]; stages sharing the coarsest level pool it further.
        extra = self.num_stages - levels
        self.level_of = [max(0, i - extra) for i in range(self.num_stages)]
        self.normalize = Normalize(mean, std)
        self.laterals = nn.ModuleList(
            Stem(3, w, pool=(2 if stem_pool else 1) * 2 ** max(0, extra - i)) for i, w in enumerate(self.stage_widths)
        )
        in_ch = self.stage_widths[0]
        for i, (w, d) in enumerate(zip(self.stage_widths, depths)):
            # The coarsest stage has nothing to merge with.
            self.add_module(
                f"layer{i + 1}",
                TopDownStage(in_ch, w, d, merge if i > 0 else None, merge_kernel, merge_at),
            )
            in_ch = w
        self.head = ClassifierHead(in_ch, num_classes, width=head_width)

    def _levels(self, x: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if isinstance(x, torch.Tensor):
            return self.pyramid(x)
        levels = list(x)
        if len(levels) != self.pyramid.num_levels:
            raise ConfigError(f"expected a pyramid of {self.pyramid.num_levels} levels, got {len(levels)}")
        for coarse, fine in zip(levels, levels[1:]):
            if fine.shape[-1] != 2 * coarse.shape[-1] or fine.shape[-2] != 2 * coarse.shape[-2]:
                raise ConfigError(
                    "pyramid levels must be ordered coarse to fine with factor 2, got sizes "
                    f"{[tuple(t.shape[-2:]) for t in levels]}"
                )
        return levels

    def trunk(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Image (N, 3, H, W) or pyramid, in [0, 1] -> last (finest) stage's output."""
        levels = self._levels(x)  # coarse to fine: H/2**(L-1), ..., H
        out = None
        for i, k in enumerate(self.level_of):
            lat = self.laterals[i](self.normalize(levels[k]))  # (N, C_i, h_i, w_i)
            out = getattr(self, f"layer{i + 1}")(out, lat)  # (N, C_i, h_i, w_i)
        return out
