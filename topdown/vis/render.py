"""The optimization loop: maximize an objective over a parameterized batch of images.

:func:`render` returns tensors and a record of what it did; it never displays or saves anything. Forward
hooks, the redirected ReLUs and the frozen weights all live in context managers, so the model comes back
exactly as it went in, even when the objective raises.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .hooks import capture, device_of, frozen, redirected_relu
from .objectives import Objective, as_objective
from .param import ImageParam, image
from .transforms import Compose, Transform, compose, describe


@dataclass
class RenderResult:
    """What a render produced.

    Attributes:
        images: ``(B, 3, H, W)`` in [0, 1], detached, on the render device.
        values: the objective of every image at the end, evaluated *without* transforms (``(B,)``).
        history: per-step objective of every image, under that step's transforms (``(steps, B)``).
        snapshots: ``{step: images}`` for the steps asked for.
        recipe: objective, transforms, steps, lr, seed... (JSON-ready).
        seconds: wall-clock time of the optimization.
        transparency: with ``transparency=True``, ``(B, H, W)``: the objective's input gradient, its absolute
            value summed over the colour channels and the steps (MACO's transparency map: where the render
            matters to the objective); else ``None``.
    """

    images: torch.Tensor
    values: torch.Tensor
    history: torch.Tensor
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    transparency: torch.Tensor | None = None


def fit_size(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize back to ``size`` when padding and jitter changed it (networks such as the
    top-down ResNet need the size their pyramid divides)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def evaluate(
    model: nn.Module,
    objective: Objective | str,
    images: torch.Tensor,
    transforms: Compose | Sequence[Transform] | None = None,
    generator: torch.Generator | None = None,
    keep_size: bool = True,
) -> torch.Tensor:
    """The objective of each image (``(B,)``), optionally under one random draw of ``transforms``."""
    objective = as_objective(objective)
    tf = compose(transforms)
    gen = generator or torch.Generator().manual_seed(0)
    cap = capture(model, objective.layers, stop_early=True)
    with torch.no_grad(), frozen(model), cap:
        x = tf(images, gen) if len(tf) else images
        if keep_size:
            x = fit_size(x, images.shape[-2:])
        return objective(cap.run(x, image=images)).detach()


def render(
    model: nn.Module,
    objective: Objective | str,
    param: ImageParam | None = None,
    transforms: Compose | Sequence[Transform] | None = None,
    steps: int = 128,
    lr: float = 0.05,
    seed: int = 0,
    redirect_relu_steps: int = 0,
    optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer] | None = None,
    snapshots: Sequence[int] = (),
    keep_size: bool = True,
    progress: Callable[[int, int], None] | None = None,
    transparency: bool = False,
) -> RenderResult:
    """Optimize ``param`` so that ``objective`` rises, under random ``transforms``.

    The device is the parameterization's (build it with ``device=``); the model must already be there.
    One ``seed`` drives the transforms, so with a seeded parameterization a CPU render is bitwise
    reproducible.

    Args:
        model: any ``nn.Module`` taking the image batch (for topdown nets: images in [0, 1]).
        objective: an :class:`~topdown.vis.objectives.Objective` or ``"layer:channel"``; maximized.
        param: the images to optimize (:func:`~topdown.vis.param.image`); default a 64 px Fourier image
            seeded with ``seed``.
        transforms: random transforms applied before every forward pass.
        steps: optimizer steps.
        lr: Adam learning rate (ignored when ``optimizer`` is given).
        seed: seed of the transforms' generator (and of the default ``param``).
        redirect_relu_steps: swap every ``nn.ReLU`` for a redirected ReLU during the first this-many steps.
        optimizer: ``params -> torch.optim.Optimizer``; default Adam.
        snapshots: steps (1-based: after that many updates) at which to keep a copy of the images.
        keep_size: resize the transformed batch back to the parameterization's size.
        progress: called as ``progress(step, steps)`` after every step.
        transparency: also accumulate the transparency map (:attr:`RenderResult.transparency`).
    """
    objective = as_objective(objective)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    param = param if param is not None else image(64, generator=seed, device=device_of(model))
    tf = compose(transforms)
    gen = torch.Generator().manual_seed(seed)
    opt = optimizer(param.params) if optimizer is not None else torch.optim.Adam(param.params, lr=lr)
    history: list[torch.Tensor] = []
    kept: dict[int, torch.Tensor] = {}
    relu_ctx = redirected_relu(model) if redirect_relu_steps > 0 else contextlib.nullcontext([])
    cap = capture(model, objective.layers, stop_early=True)
    seen: torch.Tensor | None = None
    start = time.perf_counter()
    with frozen(model), relu_ctx as relus, cap:
        for step in range(steps):
            if relus and step == redirect_relu_steps:
                for r in relus:
                    r.enabled = False
            opt.zero_grad(set_to_none=True)
            img = param.image_fn()
            if transparency:
                img.retain_grad()
            x = tf(img, gen) if len(tf) else img
            if keep_size:
                x = fit_size(x, img.shape[-2:])
            values = objective(cap.run(x, image=img))
            (-values.sum()).backward()
            if transparency:
                step_map = img.grad.detach().abs().sum(1)
                seen = step_map if seen is None else seen + step_map
            opt.step()
            history.append(values.detach())
            if step + 1 in snapshots:
                with torch.no_grad():
                    kept[step + 1] = param.image_fn().detach().clone()
            if progress is not None:
                progress(step + 1, steps)
        for r in relus:
            r.enabled = False
        with torch.no_grad():
            final = param.image_fn().detach()
            values = objective(cap.run(final, image=final)).detach()
    seconds = time.perf_counter() - start
    recipe = {
        "objective": objective.name,
        "transforms": describe(tf),
        "steps": steps,
        "lr": lr if optimizer is None else None,
        "optimizer": "Adam" if optimizer is None else getattr(optimizer, "__name__", repr(optimizer)),
        "seed": seed,
        "redirect_relu_steps": redirect_relu_steps,
        "batch": int(final.shape[0]),
        "size": list(final.shape[-2:]),
    }
    hist = torch.stack(history) if history else final.new_zeros(0, final.shape[0])
    return RenderResult(final, values, hist, kept, recipe, seconds, seen)


def compare(models: dict[str, nn.Module], method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``method(model, *args, **kwargs)`` for every network: the same recipe, side by side."""
    return {name: method(model, *args, **kwargs) for name, model in models.items()}
