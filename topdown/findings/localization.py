"""Where a decision's evidence lies, against the procedural flowers' exact part masks (flower = petals ∪ centre).

For each attribution method, per image: the share of the positive attribution energy that falls inside the
flower, and the pointing game (is the most attributed pixel on the flower?), both against chance, which is the
flower's share of the image. The reference paper claims the top-down net localizes better because its last map is
at full resolution; Grad-CAM is therefore taken at each net's last stage *and* at its finest stage, so the
resolutions compare like with like (at 64 px the baseline's last map is 4×4, the top-down net's 32×32).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..batches import map_batches
from ..vis.attribution import attribute

#: Method name -> (captum method, which stage Grad-CAM reads).
LOCALIZATION_METHODS = {
    "grad_cam_last": ("grad_cam", "last"),
    "grad_cam_finest": ("grad_cam", "finest"),
    "integrated_gradients": ("integrated_gradients", None),
    "guided_backprop": ("guided_backprop", None),
}


@torch.no_grad()
def stage_resolutions(net: nn.Module, image_size: int, layers: Sequence[str] | None = None) -> dict[str, int]:
    """The side of every stage's (or every one of ``layers``') output map for a square image of ``image_size``
    px."""
    sides: dict[str, int] = {}
    modules = dict(net.named_modules())
    hooks = [
        modules[s].register_forward_hook(lambda m, i, o, s=s: sides.__setitem__(s, o.shape[-1]))
        for s in (layers or net.stage_names())
    ]
    try:
        net.eval()(torch.zeros(1, 3, image_size, image_size))
    finally:
        for h in hooks:
            h.remove()
    return sides


def cam_stage(net: nn.Module, which: str, image_size: int) -> str:
    """The last stage, or the finest (largest map; the later on a tie)."""
    if which == "last":
        return net.stage_names()[-1]
    sides = stage_resolutions(net, image_size)
    return max(reversed(list(sides)), key=sides.get)


def attributions(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    method: str,
    layer: str | None = None,
    n_steps: int = 32,
    batch_size: int = 32,
) -> torch.Tensor:
    """``method``'s attribution of each image's label, ``(N, C, H, W)`` (Grad-CAM: ``(N, 1, H, W)``)."""
    return map_batches(
        lambda x, y: attribute(net, x, y, method, layer, n_steps=n_steps), images, labels, batch_size=batch_size
    )


def localization(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    flower: torch.Tensor,
    *,
    n_steps: int = 32,
    ig: torch.Tensor | None = None,
) -> dict[str, dict[str, Any]]:
    """Per method: ``inside`` (share of positive energy on the flower), ``hit`` (pointing game) and ``chance``
    (the flower's share of the image), one value per image; ``flower`` is ``(N, H, W)`` bool; ``ig``: the
    integrated gradients of these images where already computed (:func:`attributions`)."""
    chance = flower.flatten(1).float().mean(1)
    out: dict[str, dict[str, Any]] = {}
    for name, (method, which) in LOCALIZATION_METHODS.items():
        layer = cam_stage(net, which, images.shape[-1]) if which else None
        if method == "integrated_gradients" and ig is not None:
            maps = ig
        else:
            maps = attributions(net, images, labels, method, layer, n_steps)
        energy = maps.sum(1).clamp_min(0).flatten(1)  # the colour channels' attributions summed
        mask = flower.flatten(1).float()
        total = energy.sum(1)
        inside = torch.where(total > 0, (energy * mask).sum(1) / total.clamp_min(1e-12), torch.zeros_like(total))
        hit = mask.gather(1, energy.argmax(1, keepdim=True)).squeeze(1) > 0
        out[name] = {
            "layer": layer,
            "inside": inside.tolist(),
            "hit": (hit & (total > 0)).tolist(),
            "chance": chance.tolist(),
        }
    return out
