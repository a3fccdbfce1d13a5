"""Classification metrics, one definition for training (``lit.py``) and evaluation (the robustness suite)."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError, MulticlassConfusionMatrix

from .errors import ConfigError


def classification_metrics(num_classes: int) -> MetricCollection:
    """top-1, macro accuracy, ECE, and top-5 where there are more than 5 classes."""
    metrics: dict[str, Any] = {
        "acc": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
        "macro_acc": MulticlassAccuracy(num_classes, top_k=1, average="macro"),
        "ece": MulticlassCalibrationError(num_classes, n_bins=15, norm="l1"),
    }
    if num_classes > 5:
        metrics["top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")
    return MetricCollection(metrics)


@torch.no_grad()
def clean_metrics(
    net: nn.Module, dataset: Dataset, classes: list[str], batch_size: int, device: torch.device
) -> dict[str, Any]:
    """Clean top-1, top-5 (more than 5 classes), macro accuracy, per-class accuracy, ECE, NLL, confusion."""
    start = time.perf_counter()
    logits, labels = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        logits.append(net(x.to(device)).float().cpu())
        labels.append(y)
    lg, y = torch.cat(logits), torch.cat(labels)
    k = len(classes)
    if lg.shape[1] != k:
        raise ConfigError(f"the network has {lg.shape[1]} outputs but the data has {k} classes")
    summary = {name: float(v) for name, v in classification_metrics(k)(lg, y).items()}
    per_class = MulticlassAccuracy(k, average=None)(lg, y)
    counts = torch.bincount(y, minlength=k)
    return {
        "split": "test",
        "n": len(y),
        "top1": summary["acc"],
        "top5": summary.get("top5"),
        "macro_acc": summary["macro_acc"],
        "per_class_acc": {c: (float(a) if n > 0 else None) for c, a, n in zip(classes, per_class, counts)},
        "ece": summary["ece"],
        # mean top softmax probability: below top-1, the net is underconfident; above, overconfident
        "confidence": float(lg.softmax(1).amax(1).mean()),
        "nll": float(torch.nn.functional.cross_entropy(lg, y)),
        "confusion": MulticlassConfusionMatrix(k)(lg, y).tolist(),  # rows: true class, columns: predicted
        "classes": list(classes),
        "time_s": time.perf_counter() - start,
    }
