"""Building blocks shared by the baseline and the top-down ResNet."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as the network's first layer, so models take images in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ConfigError(f"mean has {len(mean)} channels but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ConfigError(f"std must be positive, got {list(std)}")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Stem(nn.Module):
    """3x3 conv on an image, optionally followed by a max-pool (the entry of every resolution).

    ``pool``: ``True`` for a 2x2 max-pool, ``False`` for none, or an int ``k`` for a k x k max-pool.
    """

    def __init__(self, in_ch: int, out_ch: int, pool: bool | int = True) -> None:
        super().__init__()
        self.conv = conv3x3(in_ch, out_ch)
        size = 2 if pool is True else int(pool)
        self.pool = nn.MaxPool2d(size) if size > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


class PreActBlock(nn.Module):
    """Pre-activation basic block (BN-ReLU-conv3x3, twice) with a shortcut.

    ``resample`` is ``"none"``, ``"down"`` (stride-2 conv, as in a standard ResNet) or ``"up"`` (the
    top-down mirror: the pre-activated input gets a 1x1 conv to the new width and a x2 nearest-neighbour
    upsample, which is both the shortcut and the input of the 3x3 convs at the finer resolution).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        resample: str = "none",
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if resample not in ("none", "down", "up"):
            raise ConfigError(f"resample must be 'none', 'down' or 'up', got {resample!r}")
        self.resample = resample
        self.bn1 = norm_layer(in_ch)
        self.act1 = act_layer()
        if resample == "up":
            self.shortcut = conv1x1(in_ch, out_ch)
            self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
            self.conv1 = conv3x3(out_ch, out_ch)
        else:
            stride = 2 if resample == "down" else 1
            self.conv1 = conv3x3(in_ch, out_ch, stride)
            needs_proj = stride != 1 or in_ch != out_ch
            self.shortcut = conv1x1(in_ch, out_ch, stride) if needs_proj else None
        self.bn2 = norm_layer(out_ch)
        self.act2 = act_layer()
        self.conv2 = conv3x3(out_ch, out_ch)

    def forward(self, x: torch.Tensor, inject: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """``inject`` (``"up"`` blocks only) maps the upsampled shortcut before the 3x3 convs see it: the
        top-down net's merge with a lateral, placed so the finer image passes through this block's convs."""
        pre = self.act1(self.bn1(x))
        if self.resample == "up":
            skip = self.upsample(self.shortcut(pre))  # (N, C_out, 2H, 2W)
            if inject is not None:
                skip = inject(skip)
            out = self.conv1(skip)
        else:
            skip = x if self.shortcut is None else self.shortcut(pre)
            if inject is not None:
                raise ConfigError("only an 'up' block takes an injected merge")
            out = self.conv1(pre)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + skip


def make_stage(
    in_ch: int,
    out_ch: int,
    depth: int,
    resample: str,
    norm_layer: type[nn.Module] = nn.BatchNorm2d,
    act_layer: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """``depth`` blocks; the first one changes width and resolution."""
    if depth < 1:
        raise ConfigError(f"every stage needs at least one block, got depth {depth}")
    blocks = [PreActBlock(in_ch, out_ch, resample, norm_layer, act_layer)]
    blocks += [PreActBlock(out_ch, out_ch, "none", norm_layer, act_layer) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


class ClassifierHead(nn.Module):
    """Final BN-ReLU (the blocks are pre-activated), global average pool, linear.

    With ``width``, a 1x1 conv-BN-ReLU widens the features to ``width`` channels before the pool, so a net
    whose last stage is narrow still classifies from as many pooled features as a wide one.
    """

    def __init__(
        self,
        in_ch: int,
        num_classes: int,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        act_layer: type[nn.Module] = nn.ReLU,
        width: int | None = None,
    ) -> None:
        super().__init__()
        self.bn = norm_layer(in_ch)
        self.act = act_layer()
        self.expand = (
            nn.Sequential(nn.Conv2d(in_ch, width, 1, bias=False), norm_layer(width), act_layer()) if width else None
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width or in_ch, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(x))
        return x if self.expand is None else self.expand(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.forward_features(x)).flatten(1))


class Merge(nn.Module):
    """Merge top-down features ``x`` with the lateral projection ``lat`` of the next finer image level.

    Modes: ``add`` (x + lat), ``concat`` (BN-ReLU-conv over [x, lat]) and ``add_concat`` (BN-ReLU-conv over
    [x + lat, lat], the reference's default). ``kernel_size`` sets the fusion conv (1 keeps the cost close
    to the baseline's; 3 is the reference's choice).
    """

    MODES = ("add", "concat", "add_concat")

    def __init__(
        self,
        channels: int,
        mode: str = "add_concat",
        kernel_size: int = 1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ConfigError(f"unknown merge mode {mode!r}; choose one of {self.MODES}")
        if kernel_size not in (1, 3):
            raise ConfigError(f"merge kernel_size must be 1 or 3, got {kernel_size}")
        self.mode = mode
        if mode != "add":
            self.bn = norm_layer(2 * channels)
            self.act = act_layer()
            self.conv = nn.Conv2d(2 * channels, channels, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        if self.mode == "add":
            return x + lat
        first = x + lat if self.mode == "add_concat" else x
        return self.conv(self.act(self.bn(torch.cat([first, lat], dim=1))))  # (N, 2C, H, W) -> (N, C, H, W)
