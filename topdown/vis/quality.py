"""Quality figures: did a visualization do its job? Each returns a :class:`Figure` ``{value, threshold,
passed}``; the thresholds are fixed in the signatures, and every method records its figures in
``vis.json``.

* :func:`objective_rises`: a channel's visualization reaches its largest activation over real images.
* :func:`class_confidence`: class visualizations are classified as their class.
* :func:`high_frequency_ratio`, :func:`total_variation_ratio`: natural-image statistics against real images.
* :func:`transform_robustness`: the objective survives random transforms.
* :func:`inversion_error`, :func:`inversion_identification`: reconstructions match their sources.
* :func:`interpolation_smoothness`, :func:`interpolation_ends_differ`, :func:`handover_monotone`.
* :func:`batch_feature_cosine`: how alike a batch is at a layer (diversity).
* :func:`ig_completeness`, :func:`deletion_test`: attribution sanity.
* :func:`facet_purity`: multifaceted clusters recover planted sub-types.
* :func:`dissection_above_chance`: units overlap their concept more than with shuffled masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..batches import map_batches
from ..models.pyramid import gaussian_blur
from .hooks import activations, frozen
from .objectives import Objective, as_objective
from .render import evaluate
from .transforms import Compose, Transform, compose


@dataclass
class Figure:
    """One quality figure.

    Attributes:
        value: the measurement.
        threshold: a number, or ``[low, high]`` for a range.
        passed: whether ``value`` meets ``threshold`` under ``direction``.
        direction: ``">="``, ``"<="``, ``">"`` or ``"in"`` (how ``value`` must relate to ``threshold``).
        detail: extra numbers (per-item values, the reference they were compared with...).
    """

    value: float
    threshold: float | list[float]
    passed: bool
    direction: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "value": _round(self.value),
            "threshold": self.threshold,
            "passed": bool(self.passed),
            "direction": self.direction,
        }
        if self.detail:
            out["detail"] = {k: _jsonable(v) for k, v in self.detail.items()}
        return out


def _round(v: float) -> float:
    return float(f"{float(v):.6g}")


def _jsonable(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    if isinstance(v, float):
        return _round(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def figure(value: float, threshold: float | Sequence[float], direction: str, **detail: Any) -> Figure:
    """Build a :class:`Figure`, deciding ``passed`` from ``direction``."""
    value = float(value)
    if direction == "in":
        low, high = threshold  # type: ignore[misc]
        passed = low <= value <= high
        threshold = [float(low), float(high)]
    elif direction == ">=":
        passed = value >= threshold
    elif direction == ">":
        passed = value > threshold
    elif direction == "<=":
        passed = value <= threshold
    else:
        raise ValueError(f"unknown direction {direction!r}")
    passed = passed and value == value  # NaN never passes
    return Figure(
        value, threshold if isinstance(threshold, list) else float(threshold), bool(passed), direction, dict(detail)
    )


# --------------------------------------------------------------------------------------------------
# Feature visualization
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def channel_means(model: nn.Module, layer: str, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Mean activation of every channel of ``layer`` for each image: ``(N, C)``."""

    def means(x: torch.Tensor) -> torch.Tensor:
        t = activations(model, x, [layer])[layer]
        return t.flatten(2).mean(2) if t.dim() > 2 else t

    return map_batches(means, images, batch_size=batch_size)


def objective_rises(vis_values: torch.Tensor, real_max: torch.Tensor, threshold: float = 0.6) -> Figure:
    """Share of units whose visualization reaches at least the unit's largest value over real images.

    Args:
        vis_values: the objective of each unit's visualization, ``(K,)``.
        real_max: each unit's largest value over a held-out batch of real images, ``(K,)``.
    """
    reached = (vis_values.detach().cpu() >= real_max.detach().cpu()).float()
    return figure(reached.mean().item(), threshold, ">=", vis=vis_values, real_max=real_max)


@torch.no_grad()
def class_confidence(
    model: nn.Module, images: torch.Tensor, classes: Sequence[int], min_prob: float = 0.9, threshold: float = 0.8
) -> Figure:
    """Share of class visualizations the model gives their own class with probability ``>= min_prob``."""
    with frozen(model):
        probs = model(images).softmax(1)
    idx = torch.as_tensor(list(classes), device=probs.device)
    p = probs[torch.arange(len(idx), device=probs.device), idx].cpu()
    return figure((p >= min_prob).float().mean().item(), threshold, ">=", prob=p, min_prob=min_prob)


def high_frequency_energy(images: torch.Tensor, sigma: float = 1.0) -> float:
    """Mean squared difference between images and their Gaussian blur (sigma in pixels)."""
    x = images.detach().float()
    return (x - gaussian_blur(x, sigma)).pow(2).mean().item()


def radial_power(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, R)``: power of the channel-averaged image at each integer radius (cycles per
    image, 0 to the Nyquist frequency ``min(H, W) // 2``), the mean removed."""
    g = x.detach().double().mean(1)
    g = g - g.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fftshift(torch.fft.fft2(g), dim=(-2, -1)).abs() ** 2
    h, w = g.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    radius = torch.sqrt(yy.double() ** 2 + xx.double() ** 2).round().long().flatten()
    n_r = min(h, w) // 2 + 1
    keep = radius < n_r
    out = torch.zeros(len(g), n_r, dtype=torch.float64)
    out.index_add_(1, radius[keep], power.flatten(1)[:, keep])
    counts = torch.bincount(radius[keep], minlength=n_r).double()
    return out / counts


def high_frequency_share(power: torch.Tensor, cutoff: float = 0.5) -> torch.Tensor:
    """Per row of :func:`radial_power`: the share of the power above ``cutoff`` x the Nyquist radius (the DC
    term left out)."""
    r = torch.arange(power.shape[1], dtype=torch.float64)
    high = power[:, r > cutoff * (power.shape[1] - 1)].sum(1)
    return high / power[:, 1:].sum(1).clamp_min(1e-30)


def relative_spectrum(power: torch.Tensor, reference: torch.Tensor) -> list[float | None]:
    """The mean of ``power``'s rows, each normalized to unit power, over the same of ``reference`` (the photos),
    one value per radius (DC, removed from both: ``None``): above 1, that frequency carries more of the power
    than in the photos."""
    p = power / power[:, 1:].sum(1, keepdim=True).clamp_min(1e-30)
    r = reference / reference[:, 1:].sum(1, keepdim=True).clamp_min(1e-30)
    return [None, *(p.mean(0) / r.mean(0).clamp_min(1e-30))[1:].tolist()]


def total_variation_mean(images: torch.Tensor) -> float:
    """Mean absolute difference of horizontal plus vertical neighbours."""
    x = images.detach().float()
    return ((x[..., :, 1:] - x[..., :, :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()).item()


def high_frequency_ratio(images: torch.Tensor, real: torch.Tensor, threshold: float = 2.0) -> Figure:
    """High-frequency energy of the visualizations relative to real images (natural statistics: ``<= 2``)."""
    v, r = high_frequency_energy(images), high_frequency_energy(real)
    return figure(v / max(r, 1e-12), threshold, "<=", vis=v, real=r)


def total_variation_ratio(images: torch.Tensor, real: torch.Tensor, threshold: Sequence[float] = (0.5, 2.0)) -> Figure:
    """Total variation of the visualizations relative to real images (natural statistics: in 0.5-2)."""
    v, r = total_variation_mean(images), total_variation_mean(real)
    return figure(v / max(r, 1e-12), threshold, "in", vis=v, real=r)


def natural_statistics(images: torch.Tensor, real: torch.Tensor) -> dict[str, Figure]:
    """Both natural-image figures: ``{"high_frequency_ratio": ..., "total_variation_ratio": ...}``."""
    return {
        "high_frequency_ratio": high_frequency_ratio(images, real),
        "total_variation_ratio": total_variation_ratio(images, real),
    }


def transform_robustness(
    model: nn.Module,
    objective: Objective | str,
    images: torch.Tensor,
    transforms: Compose | Sequence[Transform],
    draws: int = 8,
    seed: int = 1234,
    threshold: float = 0.85,
) -> Figure:
    """Mean objective under random transforms over the untransformed one (a visualization that is a
    fragile pixel pattern loses its activation when shifted or rotated). Meaningful for objectives that
    are positive on the images; otherwise the value is NaN and the figure fails."""
    objective = as_objective(objective)
    tf = compose(transforms)
    gen = torch.Generator().manual_seed(seed)
    plain = evaluate(model, objective, images).mean().item()
    moved = sum(evaluate(model, objective, images, tf, gen).mean().item() for _ in range(draws)) / draws
    return figure(moved / plain if plain > 0 else float("nan"), threshold, ">=", transformed=moved, plain=plain)


def batch_feature_cosine(model: nn.Module, layer: str, images: torch.Tensor, threshold: float = 0.5) -> Figure:
    """Mean pairwise cosine similarity, across the batch, of the flattened activations at ``layer``."""
    f = F.normalize(activations(model, images, [layer])[layer].flatten(1), dim=1)
    sim = f @ f.T
    n = len(f)
    mean = ((sim.sum() - sim.diagonal().sum()) / (n * (n - 1))).item() if n > 1 else 1.0
    return figure(mean, threshold, "<=")


# --------------------------------------------------------------------------------------------------
# Inversion and interpolation
# --------------------------------------------------------------------------------------------------
def inversion_error(
    model: nn.Module, layer: str, reconstructions: torch.Tensor, sources: torch.Tensor, threshold: float = 0.2
) -> Figure:
    """Worst relative feature error ``||phi(x) - phi(x0)|| / ||phi(x0)||`` over the reconstructions."""
    a = activations(model, reconstructions, [layer])[layer].flatten(1)
    b = activations(model, sources, [layer])[layer].flatten(1)
    err = (a - b).norm(dim=1) / b.norm(dim=1).clamp_min(1e-12)
    return figure(err.max().item(), threshold, "<=", per_image=err, mean=err.mean().item())


def inversion_identification(reconstructions: torch.Tensor, sources: torch.Tensor, threshold: float = 1.0) -> Figure:
    """Share of reconstructions whose nearest source image (pixel L2) is their own (needs >= 4 sources)."""
    if len(sources) < 4:
        raise ValueError(f"identification needs at least 4 sources, got {len(sources)}")
    d = torch.cdist(reconstructions.flatten(1).double(), sources.flatten(1).double())  # (N, N)
    hit = (d.argmin(1) == torch.arange(len(sources))).float()
    return figure(hit.mean().item(), threshold, ">=", nearest=d.argmin(1), n_sources=len(sources))


def _adjacent_distance(frames: torch.Tensor) -> torch.Tensor:
    return (frames[1:] - frames[:-1]).flatten(1).norm(dim=1)


def interpolation_smoothness(frames: torch.Tensor, independent: torch.Tensor, threshold: float = 0.5) -> Figure:
    """Mean distance between adjacent frames of the aligned interpolation over that of independently
    rendered frames (same objectives, no shared parameterization)."""
    a, b = _adjacent_distance(frames).mean().item(), _adjacent_distance(independent).mean().item()
    return figure(a / max(b, 1e-12), threshold, "<=", aligned=a, independent=b)


def interpolation_ends_differ(frames: torch.Tensor, independent: torch.Tensor, threshold: float = 0.25) -> Figure:
    """Distance between the first and last aligned frames over the mean adjacent distance of independent
    renders: the interpolation must still go somewhere."""
    ends = (frames[-1] - frames[0]).norm().item()
    b = _adjacent_distance(independent).mean().item()
    return figure(ends / max(b, 1e-12), threshold, ">=", ends=ends, independent=b)


def handover_monotone(act_a: torch.Tensor, act_b: torch.Tensor, threshold: float = 1.0, tol: float = 0.02) -> Figure:
    """Share of frame steps where the hand-over moves the right way: channel ``b``'s share of the two
    (each normalized by its range over frames) must not fall by more than ``tol``."""

    def norm(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu().double()
        return (t - t.min()) / (t.max() - t.min()).clamp_min(1e-12)

    share = norm(act_b) - norm(act_a)  # from -1 (all a) to +1 (all b)
    steps = share[1:] - share[:-1]
    ok = (steps >= -tol).double()
    return figure(ok.mean().item(), threshold, ">=", share=share, act_a=act_a, act_b=act_b)


# --------------------------------------------------------------------------------------------------
# Attribution
# --------------------------------------------------------------------------------------------------
IG_COMPLETENESS_THRESHOLD = 0.005


def completeness_error(delta: torch.Tensor, output_change: torch.Tensor) -> float:
    """``sum_i |sum(attr_i) - (f(x_i) - f(x'_i))| / sum_i |f(x_i) - f(x'_i)|`` over a batch (``delta`` as
    captum's ``return_convergence_delta`` gives it). Pooling over the batch keeps an image whose output
    barely differs from the baseline's from dominating."""
    d = delta.detach().abs().cpu().double()
    c = output_change.detach().abs().cpu().double()
    return (d.sum() / c.sum().clamp_min(1e-12)).item()


def ig_completeness(
    delta: torch.Tensor, output_change: torch.Tensor, threshold: float = IG_COMPLETENESS_THRESHOLD
) -> Figure:
    """Completeness error of integrated gradients over a batch (:func:`completeness_error`); the
    per-image ratios are in ``detail``."""
    d = delta.detach().abs().cpu().double()
    c = output_change.detach().abs().cpu().double()
    rel = d / c.clamp_min(1e-6)
    return figure(
        completeness_error(delta, output_change), threshold, "<=", per_image=rel, abs_delta=d, output_change=c
    )


@torch.no_grad()
def deletion_test(
    model: nn.Module,
    images: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    *,
    fraction: float = 0.2,
    fill: torch.Tensor | None = None,
    seed: int = 0,
) -> Figure:
    """Replace the ``fraction`` most salient pixels (attribution magnitude summed over colour) with
    ``fill`` (default: each image's mean colour) and compare the drop of the target's probability with
    replacing the ``fraction`` *least* salient ones (most- against least-relevant-first, Samek et al. 2017).
    Value: salient drop minus least-salient drop (must be > 0).

    Both deletions take the attribution's own shape of region, so the comparison is between where the method
    points and where it does not. Replacing a random ``fraction`` of scattered pixels (``random_drop`` in the
    detail) is not the control: it adds high-frequency noise all over the image, which on 64 px flower photos
    costs the class more than removing any contiguous fifth, the salient one included.
    """
    n, _, h, w = images.shape
    k = max(1, round(fraction * h * w))
    sal = attributions.detach().abs().sum(1).flatten(1)  # (N, HW)
    if sal.shape[1] != h * w:
        raise ValueError(f"attributions of {tuple(attributions.shape[-2:])} px for images of {(h, w)} px")
    top = sal.topk(k, dim=1).indices
    least = sal.topk(k, dim=1, largest=False).indices
    gen = torch.Generator().manual_seed(seed)
    rnd = torch.stack([torch.randperm(h * w, generator=gen)[:k] for _ in range(n)]).to(images.device)
    fill = images.mean((2, 3), keepdim=True) if fill is None else fill.view(-1, 3, 1, 1).to(images)

    def delete(idx: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(n, h * w, device=images.device)
        mask.scatter_(1, idx, 1.0)
        mask = mask.view(n, 1, h, w)
        return images * (1 - mask) + fill * mask

    tgt = torch.as_tensor(target, device=images.device).view(-1).expand(n)
    with frozen(model):

        def prob(x: torch.Tensor) -> torch.Tensor:
            return model(x).softmax(1)[torch.arange(n, device=x.device), tgt]

        p0 = prob(images)
        drop_sal, drop_least, drop_rnd = ((p0 - prob(delete(i))).mean().item() for i in (top, least, rnd))
    return figure(
        drop_sal - drop_least,
        0.0,
        ">",
        salient_drop=drop_sal,
        least_salient_drop=drop_least,
        random_drop=drop_rnd,
        fraction=fraction,
    )


# --------------------------------------------------------------------------------------------------
# Multifaceted visualization and dissection
# --------------------------------------------------------------------------------------------------
def facet_purity(
    assignments: Sequence[int] | torch.Tensor, truth: Sequence[int] | torch.Tensor, threshold: float = 0.75
) -> Figure:
    """Cluster purity: the share of items that belong to their cluster's majority ground-truth group."""
    a = torch.as_tensor(assignments).long().flatten()
    t = torch.as_tensor(truth).long().flatten()
    if a.numel() != t.numel() or a.numel() == 0:
        raise ValueError("assignments and truth must be non-empty and of equal length")
    majority = sum(torch.bincount(t[a == c]).max().item() for c in a.unique())
    return figure(majority / a.numel(), threshold, ">=", clusters=len(a.unique()))


def dissection_above_chance(iou: torch.Tensor, shuffled_iou: torch.Tensor, threshold: float = 1.0) -> Figure:
    """Mean best-concept IoU of the units over the same with the masks shuffled between images
    (a unit that tracks a part overlaps *its own image's* part better)."""
    real = iou.max(1).values.mean().item()
    chance = shuffled_iou.max(1).values.mean().item()
    return figure(real / max(chance, 1e-12), threshold, ">", iou=real, shuffled=chance)
