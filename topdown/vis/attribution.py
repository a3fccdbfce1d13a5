"""Saliency and spatial attribution, through captum.

:func:`attribute` runs one of :data:`ATTRIBUTION_METHODS` (vanilla gradient, SmoothGrad, integrated gradients,
Grad-CAM, DeconvNet, guided backprop) on any ``nn.Module``; :func:`pyramid_attribution` attributes a
top-down network's decision to each level of its image pyramid (which resolution drove it).

Randomness (SmoothGrad's noise) is drawn under a forked, seeded global RNG, so results are reproducible
and the caller's RNG state is untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from captum.attr import (
    Deconvolution,
    GuidedBackprop,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)
from torch import nn

from ..errors import ConfigError
from ..models.base import ImageClassifierNet, is_topdown
from .hooks import frozen, resolve_module
from .quality import completeness_error

# Images per forward/backward pass inside integrated gradients and SmoothGrad: captum otherwise runs all
# n_images x n_steps at once (48 images x 128 steps of the top-down net exhausted 24 GB).
IG_BATCH = 256
# The most steps refined integrated gradients take (see integrated_gradients' tolerance).
IG_MAX_STEPS = 1024
ATTRIBUTION_METHODS = ("saliency", "smoothgrad", "integrated_gradients", "grad_cam", "deconvnet", "guided_backprop")


def default_cam_layer(model: nn.Module) -> str:
    """The last stage (``stage_names()[-1]``) of a topdown network; other networks must name a layer."""
    if not isinstance(model, ImageClassifierNet):
        raise ConfigError("grad_cam needs layer= for a network without stage_names()")
    return model.stage_names()[-1]


def _targets(target: int | Sequence[int] | torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(target, device=device).long().view(-1)
    return t.expand(n) if t.numel() == 1 else t


def attribute(
    model: nn.Module,
    images: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor,
    method: str = "integrated_gradients",
    layer: str | None = None,
    seed: int = 0,
    n_steps: int = 64,
    nt_samples: int = 16,
    stdev: float = 0.1,
    baselines: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attribution of ``target`` (a class per image, or one for all) to the pixels of ``images``.

    Args:
        model: any ``nn.Module`` returning logits (DeconvNet and guided backprop override its
            ``nn.ReLU`` modules' gradients).
        images: ``(N, 3, H, W)`` in [0, 1].
        target: class index, or one per image.
        method: one of :data:`ATTRIBUTION_METHODS`.
        layer: Grad-CAM layer (default: the last stage).
        seed: SmoothGrad's noise seed.
        n_steps: integrated-gradients steps (Gauss-Legendre).
        nt_samples, stdev: SmoothGrad samples and noise level (pixel units).
        baselines: integrated-gradients baseline (default black).

    Returns:
        ``(N, 3, H, W)``; Grad-CAM returns ``(N, 1, H, W)`` upsampled to the image size.
    """
    if method not in ATTRIBUTION_METHODS:
        raise ConfigError(f"unknown attribution method {method!r}; choose one of {ATTRIBUTION_METHODS}")
    x = images.detach().clone().requires_grad_(True)
    tgt = _targets(target, len(x), x.device)
    with frozen(model):
        if method == "saliency":
            out = Saliency(model).attribute(x, target=tgt, abs=True)
        elif method == "smoothgrad":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out = NoiseTunnel(Saliency(model)).attribute(
                    x,
                    nt_type="smoothgrad",
                    nt_samples=nt_samples,
                    nt_samples_batch_size=max(1, IG_BATCH // len(x)),
                    stdevs=stdev,
                    target=tgt,
                    abs=True,
                )
        elif method == "integrated_gradients":
            out = IntegratedGradients(model).attribute(
                x,
                baselines=baselines,
                target=tgt,
                n_steps=n_steps,
                method="gausslegendre",
                internal_batch_size=IG_BATCH,
            )
        elif method == "grad_cam":
            mod = resolve_module(model, layer or default_cam_layer(model))
            cam = LayerGradCam(model, mod).attribute(x, target=tgt, relu_attributions=True)
            out = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
        elif method == "deconvnet":
            out = Deconvolution(model).attribute(x, target=tgt)
        else:
            out = GuidedBackprop(model).attribute(x, target=tgt)
    return out.detach()


def _ig_with_delta(forward: Any, inputs: Any, baselines: Any, target: torch.Tensor, n_steps: int) -> Any:
    """captum's integrated gradients (Gauss-Legendre, in batches of ``IG_BATCH``) with its convergence delta."""
    return IntegratedGradients(forward).attribute(
        inputs,
        baselines=baselines,
        target=target,
        n_steps=n_steps,
        method="gausslegendre",
        return_convergence_delta=True,
        internal_batch_size=IG_BATCH,
    )


def _ig_refined(
    forward: Any,
    inputs: Any,
    baselines: Any,
    target: torch.Tensor,
    n_steps: int,
    tolerance: float | None,
    max_steps: int,
) -> tuple[Any, torch.Tensor, torch.Tensor, int]:
    """Integrated gradients with ``n_steps``, doubled until the completeness error is at most
    ``tolerance`` or ``max_steps`` is reached (a ReLU net's path integrand has kinks, so the quadrature
    error falls with the steps, at a rate that differs from net to net). ``inputs`` and ``baselines``: a
    tensor or a tuple of them, as captum takes them. Returns the attributions, the convergence delta, the
    output change ``f(inputs) - f(baselines)`` of the target and the steps used."""
    with torch.no_grad():
        x = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
        base = (baselines,) if isinstance(baselines, torch.Tensor) else tuple(baselines)
        idx = torch.arange(len(target), device=target.device)
        change = (forward(*x)[idx, target] - forward(*base)[idx, target]).detach()
    while True:
        attr, delta = _ig_with_delta(forward, inputs, baselines, target, n_steps)
        if tolerance is None or 2 * n_steps > max_steps or completeness_error(delta, change) <= tolerance:
            return attr, delta, change, n_steps
        n_steps *= 2


class IGResult(NamedTuple):
    """Integrated gradients with captum's convergence delta.

    Attributes:
        attributions: ``(N, 3, H, W)``.
        delta: ``sum(attr) - (f(x) - f(x'))`` per image.
        output_change: ``f(x) - f(x')`` per image, for :func:`~topdown.vis.quality.ig_completeness`.
        n_steps: the Gauss-Legendre steps used.
    """

    attributions: torch.Tensor
    delta: torch.Tensor
    output_change: torch.Tensor
    n_steps: int


def integrated_gradients(
    model: nn.Module,
    images: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor,
    baselines: torch.Tensor | None = None,
    n_steps: int = 64,
    tolerance: float | None = None,
    max_steps: int = IG_MAX_STEPS,
) -> IGResult:
    """Integrated gradients (black baseline unless ``baselines``) with ``n_steps``; with ``tolerance``,
    the steps double until the completeness error (:func:`~topdown.vis.quality.completeness_error`) is at
    most ``tolerance``, up to ``max_steps``."""
    x = images.detach().clone().requires_grad_(True)
    base = torch.zeros_like(x) if baselines is None else baselines.to(x)
    tgt = _targets(target, len(x), x.device)
    with frozen(model):
        attr, delta, change, steps = _ig_refined(model, x, base, tgt, n_steps, tolerance, max_steps)
    return IGResult(attr.detach(), delta.detach(), change, steps)


@dataclass
class PyramidAttribution:
    """Attribution of a top-down network's decision to each pyramid level (coarse to fine).

    Attributes:
        attributions: per level ``(N, 3, h_l, w_l)``.
        level_sizes: side of each level.
        contribution: ``(N, L)`` summed attribution of each level (integrated gradients: they add up to
            ``f(x) - f(baseline)``).
        share: ``(N, L)`` share of the total absolute attribution of each level.
        delta: ``(N,)`` integrated-gradients completeness error.
        output_change: ``(N,)`` ``f(pyramid) - f(baseline pyramid)``, what ``contribution`` adds up to.
        n_steps: the Gauss-Legendre steps used.
    """

    attributions: list[torch.Tensor]
    level_sizes: list[int]
    contribution: torch.Tensor
    share: torch.Tensor
    delta: torch.Tensor
    output_change: torch.Tensor
    n_steps: int

    def summary(self) -> dict[str, Any]:
        return {
            "level_sizes": self.level_sizes,
            "mean_contribution": self.contribution.mean(0).tolist(),
            "mean_share": self.share.mean(0).tolist(),
            "dominant_level": self.share.mean(0).argmax().item(),
        }


def _pyramid_levels(net: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The levels of a top-down net's own pyramid of ``images``, coarse to fine, detached."""
    if not is_topdown(net):
        raise TypeError(f"{type(net).__name__} has no image pyramid; attribution to its levels needs a top-down net")
    with torch.no_grad():
        return tuple(lv.detach() for lv in net.pyramid(images))


def pyramid_attribution(
    net: nn.Module,
    images: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor,
    n_steps: int = 64,
    baseline: float = 0.0,
    tolerance: float | None = None,
    max_steps: int = IG_MAX_STEPS,
) -> PyramidAttribution:
    """Integrated gradients with respect to every level of a top-down network's pyramid (which
    resolution drove the decision). The baseline of every level is the constant ``baseline``;
    ``tolerance`` and ``max_steps`` refine the steps as in :func:`integrated_gradients`."""
    levels = _pyramid_levels(net, images)
    inputs = tuple(lv.clone().requires_grad_(True) for lv in levels)
    bases = tuple(torch.full_like(lv, baseline) for lv in levels)
    tgt = _targets(target, len(images), images.device)

    def forward(*lv: torch.Tensor) -> torch.Tensor:
        return net(list(lv))

    with frozen(net):
        attrs, delta, change, steps = _ig_refined(forward, inputs, bases, tgt, n_steps, tolerance, max_steps)
    attrs = [a.detach() for a in attrs]
    contribution = torch.stack([a.flatten(1).sum(1) for a in attrs], 1)  # (N, L)
    mag = torch.stack([a.abs().flatten(1).sum(1) for a in attrs], 1)
    share = mag / mag.sum(1, keepdim=True).clamp_min(1e-12)
    return PyramidAttribution(
        attrs,
        [lv.shape[-1] for lv in levels],
        contribution.cpu(),
        share.cpu(),
        delta.detach().cpu(),
        change.cpu(),
        steps,
    )


def level_saliency(net: nn.Module, images: torch.Tensor, target: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of the target with respect to each pyramid level, per pixel of that level,
    averaged: ``(N, L)`` (how sensitive the decision is to each resolution)."""
    levels = _pyramid_levels(net, images)
    inputs = tuple(lv.clone().requires_grad_(True) for lv in levels)
    tgt = _targets(target, len(images), images.device)
    with frozen(net):
        grads = Saliency(lambda *lv: net(list(lv))).attribute(inputs, target=tgt, abs=True)
    return torch.stack([g.flatten(1).mean(1) for g in grads], 1).detach().cpu()
