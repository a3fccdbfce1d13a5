"""The learned image prior's networks: a generator from a classifier's code to an image, and a denoising
autoencoder on the codes.

The code ``h`` is the classifier's global-pooled penultimate features, the vector its final linear layer reads
(:func:`codes`). That is the layer DGN-AM inverts (AlexNet's fc6 there; a ResNet's pooled last stage here): every
class score is a linear function of it, so a generator that draws any code the data has can draw anything the
net's decision depends on, and nothing the net cannot see.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import ConfigError
from ..models.base import ImageClassifierNet


def codes(net: ImageClassifierNet, images: torch.Tensor) -> torch.Tensor:
    """The code ``h`` of ``images``: (N, C), the pooled features the classifier's linear layer reads."""
    return net.head.pool(net.forward_features(images)).flatten(1)


@contextmanager
def stage_output(net: nn.Module, layer: str) -> Iterator[list[torch.Tensor]]:
    """Within the block, every forward pass of ``net`` appends ``layer``'s output to the yielded list."""
    seen: list[torch.Tensor] = []
    handle = net.get_submodule(layer).register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        yield seen
    finally:
        handle.remove()


def codes_and_features(net: ImageClassifierNet, images: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h, features at layer)`` from one forward pass (gradients flow through both)."""
    with stage_output(net, layer) as seen:
        h = codes(net, images)
    return h, seen[-1]


class CodeGenerator(nn.Module):
    """``h`` (N, code_dim) -> image (N, 3, size, size) in [0, 1].

    A linear layer to a ``base`` x ``base`` map, then one block per octave: nearest-neighbour upsampling and
    a 3x3 convolution with batch norm and leaky ReLU (upsample-then-convolve draws no checkerboard, which
    transposed convolutions do), halving the channels down to ``width``; a last 3x3 convolution and a sigmoid.

    Args:
        code_dim: the code's length.
        size: the image side, ``base`` times a power of two.
        width: channels of the last (full-resolution) block; each coarser block has twice as many, at most 8x.
        base: side of the first map.
    """

    def __init__(self, code_dim: int, size: int = 64, width: int = 16, base: int = 4) -> None:
        super().__init__()
        octaves = math.log2(size / base)
        if size % base or octaves != int(octaves) or octaves < 1:
            raise ConfigError(f"generator size {size} must be {base} times a power of two (at least {2 * base})")
        self.code_dim, self.size, self.width, self.base = code_dim, size, width, base
        chans = [width * min(8, 2 ** (int(octaves) - i)) for i in range(int(octaves) + 1)]
        self.fc = nn.Linear(code_dim, chans[0] * base * base)
        blocks: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            blocks += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.LeakyReLU(0.2),
            ]
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(chans[-1], 3, 3, padding=1)
        self._first = chans[0]
        # Channels-last weights run every convolution channels-last, as the classifiers do: on the CPU a training
        # epoch then takes about 0.7 of the default layout's.
        self.to(memory_format=torch.channels_last)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.fc(h).view(len(h), self._first, self.base, self.base)
        return torch.sigmoid(self.out(self.blocks(x)))

    def config(self) -> dict[str, int]:
        return {"code_dim": self.code_dim, "size": self.size, "width": self.width, "base": self.base}


class CodeDAE(nn.Module):
    """A denoising autoencoder on codes: ``R(h)``, whose ``R(h) - h`` points toward likelier codes (PPGN's
    prior term, Alain & Bengio 2014). Works in the codes' standardized units; the output is non-negative, as the
    codes (pooled ReLUs) are.

    Args:
        code_dim: the code's length.
        hidden: width of its two hidden layers.
    """

    def __init__(self, code_dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.code_dim, self.hidden = code_dim, hidden
        self.net = nn.Sequential(
            nn.Linear(code_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, code_dim)
        )
        self.register_buffer("mean", torch.zeros(code_dim))
        self.register_buffer("std", torch.ones(code_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = (h - self.mean) / self.std
        return torch.relu(self.net(z) * self.std + self.mean)

    def config(self) -> dict[str, int]:
        return {"code_dim": self.code_dim, "hidden": self.hidden}


class PatchDiscriminator(nn.Module):
    """A small convolutional critic for the optional adversarial term: strided 4x4 convolutions with leaky ReLU
    down to an 8x8 grid of real-or-drawn logits (one per image patch), as in pix2pix's PatchGAN.

    Args:
        width: channels of the first convolution; each further one doubles them, at most 4x.
        size: the image side (at least 16).
    """

    def __init__(self, width: int = 16, size: int = 64) -> None:
        super().__init__()
        if size < 16:
            raise ConfigError(f"discriminator size {size} must be at least 16")
        layers: list[nn.Module] = []
        cin, side, i = 3, size, 0
        while side > 8:
            cout = width * min(4, 2**i)
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            cin, side, i = cout, side // 2, i + 1
        layers.append(nn.Conv2d(cin, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.width, self.size = width, size
        self.to(memory_format=torch.channels_last)  # as CodeGenerator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)

    def config(self) -> dict[str, int]:
        return {"width": self.width, "size": self.size}
