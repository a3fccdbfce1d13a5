"""One LightningModule for both architectures: the network is injected (``model.net`` in YAML)."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from .errors import ConfigError, TopdownError
from .metrics import classification_metrics
from .models.base import ImageClassifierNet

CHECKPOINT_SCHEMA = 1
CHECKPOINT_KEY = "topdown"


class NonFiniteLossError(TopdownError, FloatingPointError):
    """The training loss became NaN or infinite."""


class ImageClassifier(pl.LightningModule):
    """Cross-entropy training of any topdown network.

    Args:
        net: the network (``class_path: topdown.models.TopDownResNet`` or ``topdown.models.ResNet``).
        num_classes: linked from the data; the network's classifier is resized to match.
        lr: peak learning rate.
        momentum: SGD momentum (Nesterov).
        weight_decay: on conv/linear weights only (not on norms and biases).
        label_smoothing: cross-entropy label smoothing.
        schedule: ``onecycle`` (warm-up then cosine down, per step), ``cosine`` (per step) or ``constant``.
        warmup_fraction: share of the steps spent warming up (``onecycle``).
        channels_last: train in channels-last memory format (faster convolutions on the CPU).
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int = 10,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        label_smoothing: float = 0.1,
        schedule: str = "onecycle",
        warmup_fraction: float = 0.15,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if schedule not in ("onecycle", "cosine", "constant"):
            raise ConfigError(f"model.schedule: unknown schedule {schedule!r}; choose onecycle, cosine or constant")
        self.save_hyperparameters(ignore=["net"])
        if isinstance(net, ImageClassifierNet) and net.num_classes != num_classes:
            net.reset_classifier(num_classes)
        self.net = net
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        # Training tracks top-1 only: the full set costs a few percent of a CPU step.
        self.train_metrics = MetricCollection({"acc": MulticlassAccuracy(num_classes, top_k=1)}, prefix="train/")
        self.val_metrics = classification_metrics(num_classes).clone(prefix="val/")
        self.test_metrics = classification_metrics(num_classes).clone(prefix="test/")

    def setup(self, stage: str) -> None:
        # One image at the size the data module tests on: Lightning's model summary then counts the
        # network's real FLOPs (per image) and shows each module's input and output sizes.
        size = getattr(getattr(self.trainer, "datamodule", None), "image_size", None)
        if isinstance(size, int) and self.example_input_array is None:
            self.example_input_array = torch.zeros(1, 3, size, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(self._prepare(x))
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step} "
                f"(lr {self._current_lr():.4g}); lower model.lr or check the data for bad values"
            )
        self.train_metrics.update(logits.detach(), y)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(y))
        return loss

    def on_train_epoch_end(self) -> None:
        self.log_dict(self.train_metrics.compute(), sync_dist=True)
        self.train_metrics.reset()

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], metrics: MetricCollection, prefix: str) -> None:
        x, y = batch
        logits = self(self._prepare(x))
        loss = F.cross_entropy(logits, y)
        metrics.update(logits, y)
        self.log(f"{prefix}/loss", loss, prog_bar=prefix == "val", sync_dist=True, batch_size=len(y))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)
        self.val_metrics.reset()

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()

    def _current_lr(self) -> float:
        try:
            return float(self.optimizers().param_groups[0]["lr"])
        except (RuntimeError, AttributeError, IndexError):
            return float("nan")

    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for p in self.net.parameters():
            if p.requires_grad:
                (decay if p.dim() > 1 else no_decay).append(p)
        opt = torch.optim.SGD(
            [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.lr,
            momentum=self.hparams.momentum,
            nesterov=True,
        )
        if self.hparams.schedule == "constant":
            return {"optimizer": opt}
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(total * self.hparams.warmup_fraction) if self.hparams.schedule == "onecycle" else 0

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            t = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- checkpoints carry what is needed to rebuild the network without unpickling code ----------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta: dict[str, Any] = {"schema": CHECKPOINT_SCHEMA}
        if isinstance(self.net, ImageClassifierNet):
            meta["net"] = self.net.arch_config
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "describe"):
            meta["data"] = dm.describe()
        checkpoint[CHECKPOINT_KEY] = meta
