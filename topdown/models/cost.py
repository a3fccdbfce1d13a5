"""Parameters and multiply-accumulates, measured with ``torch.utils.flop_counter``."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@torch.no_grad()
def count_macs(net: nn.Module, image_size: int = 64, channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass on one image (FLOPs / 2 as the counter reports them)."""
    was_training = net.training
    net.eval()
    x = torch.rand(1, channels, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        net(x)
    net.train(was_training)
    return counter.get_total_flops() // 2
