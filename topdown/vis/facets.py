"""Multifaceted feature visualization (Nguyen, Yosinski & Clune 2016).

A unit (a class logit, a channel) often responds to several distinct kinds of input. Take the images
that drive it most, embed them at a layer, cluster the embeddings (k-means), and start one visualization
per cluster from that cluster's mean image: each facet gets its own picture instead of one blurred
average.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.cluster.vq import kmeans2
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import objectives as O
from .hooks import capture, device_of, frozen
from .param import ColorStats
from .recipe import Recipe
from .render import evaluate


@dataclass
class Facets:
    """The facets of one unit.

    Attributes:
        images: ``(F, 3, H, W)`` one visualization per facet.
        starts: ``(F, 3, H, W)`` the cluster mean images they started from.
        values: ``(F,)`` the unit's value on each visualization.
        indices: ``(N,)`` dataset indices of the top images, best first.
        scores: ``(N,)`` the unit's value on them.
        assignments: ``(N,)`` facet of each top image.
    """

    images: torch.Tensor
    starts: torch.Tensor
    values: torch.Tensor
    indices: torch.Tensor
    scores: torch.Tensor
    assignments: torch.Tensor
    recipe: dict[str, Any] = field(default_factory=dict)


def kmeans(x: np.ndarray, k: int, seed: int = 0, restarts: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ with restarts (scipy's ``kmeans2``), keeping the lowest within-cluster sum of squares.
    Returns ``(centroids (k, D), labels (N,))``."""
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(restarts):
        cent, lab = kmeans2(x, k, minit="++", seed=rng)
        inertia = float(((x - cent[lab]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, cent, lab)
    assert best is not None
    return best[1], best[2]


@torch.no_grad()
def embed_and_score(
    model: nn.Module,
    objective: O.Objective | str,
    dataset: Dataset,
    embed_layer: str,
    *,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One streaming pass: the unit's value on every item and its embedding (``embed_layer`` averaged
    over positions). Returns ``(scores (N,), embeddings (N, D))``."""
    objective = O.as_objective(objective)
    device = device_of(model)
    scores, embeds = [], []
    cap = capture(model, [*objective.layers, embed_layer], stop_early=True)
    with frozen(model), cap:
        for x, *_ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            acts = cap.run(x.to(device))
            scores.append(objective(acts).cpu())
            e = acts[embed_layer]
            embeds.append((e.flatten(2).mean(2) if e.dim() > 2 else e).cpu())
    return torch.cat(scores), torch.cat(embeds)


def multifaceted(
    model: nn.Module,
    objective: O.Objective | str,
    dataset: Dataset,
    embed_layer: str,
    *,
    n_facets: int = 2,
    n_top: int = 60,
    recipe: Recipe | None = None,
    color: ColorStats | None = None,
) -> Facets:
    """Facets of a unit: cluster its ``n_top`` best dataset items (embedded at ``embed_layer``, each
    feature standardized) into ``n_facets`` and visualize each from its cluster's mean image.

    The visualization maximizes the unit (normalized by its best dataset value) minus the recipe's
    total-variation penalty.
    """
    objective = O.as_objective(objective)
    recipe = recipe or Recipe(steps=64, lr=0.03)
    scores, emb = embed_and_score(model, objective, dataset, embed_layer, batch_size=recipe.batch_size)
    n_top = min(n_top, len(scores))
    top_scores, top = scores.topk(n_top)
    e = emb[top].double()
    e = (e - e.mean(0)) / e.std(0).clamp_min(1e-8)
    _, labels = kmeans(e.numpy(), n_facets, recipe.seed)
    labels_t = torch.from_numpy(labels).long()
    device = device_of(model)
    starts = []
    for f in range(n_facets):
        members = top[labels_t == f].tolist()
        if not members:  # an empty cluster: start from the best image overall
            members = [int(top[0])]
        starts.append(torch.stack([dataset[i][0] for i in members]).mean(0))
    start = torch.stack(starts).to(device)
    scale = float(top_scores[0].abs().clamp_min(1e-3))
    obj = objective / scale
    if recipe.tv_weight:
        obj = obj - recipe.tv_weight * O.total_variation()
    r = recipe.render(model, obj, recipe.param_from(start, color))
    values = evaluate(model, objective, r.images)
    recipe_d = {
        "method": "multifaceted",
        "objective": objective.name,
        "embed_layer": embed_layer,
        "n_facets": n_facets,
        "n_top": n_top,
        **recipe.to_dict(),
    }
    return Facets(r.images, start.detach(), values, top, top_scores, labels_t, recipe_d)
