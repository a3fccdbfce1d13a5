"""How alike two nets' representations are: linear CKA (Kornblith et al., ICML 2019) between every stage of one
and every stage of the other, on the same images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..batches import map_batches
from ..vis.hooks import activations


@torch.no_grad()
def stage_features(
    net: nn.Module, images: torch.Tensor, layers: Sequence[str] | None = None, batch_size: int = 128
) -> dict[str, torch.Tensor]:
    """Every stage's output (or every one of ``layers``), flattened: ``{stage: (N, C*H*W)}`` (float64)."""
    stages = list(layers or net.stage_names())
    net.eval()

    def flat(x: torch.Tensor) -> dict[str, torch.Tensor]:
        acts = activations(net, x, stages)
        return {name: acts[name].flatten(1).double() for name in stages}

    return map_batches(flat, images, batch_size=batch_size)


def _centred_gram(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(0, keepdim=True)
    return x @ x.T


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same ``N`` images, ``(N, D1)`` and ``(N, D2)``: 1 for the same
    representation up to rotation and scale, near 0 for unrelated ones."""
    if len(x) != len(y):
        raise ValueError(f"CKA needs the same images: {len(x)} against {len(y)}")
    k, l_ = _centred_gram(x.double()), _centred_gram(y.double())
    hsic = (k * l_).sum()
    return float(hsic / (k.norm() * l_.norm()).clamp_min(1e-30))


def cka_matrix(
    a: nn.Module, b: nn.Module, images: torch.Tensor, layers: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """``{stage of a: {stage of b: CKA}}`` on ``images`` (or between ``layers`` of both)."""
    fa, fb = stage_features(a, images, layers), stage_features(b, images, layers)
    return {sa: {sb: linear_cka(xa, xb) for sb, xb in fb.items()} for sa, xa in fa.items()}
