"""Training wall-clock time and throughput, kept in the checkpoint.

A run's speed is a property of the run, not of the command that happened to finish it: a run resumed three
times, or trained with ``train.py`` and then picked up by the pipeline, still reports the time its epochs
took. :class:`TrainingClock` adds up each epoch's wall-clock time (training and validation) and the training
images it saw, logs ``time/epoch_s`` and ``train/images_per_s`` every epoch, and saves its totals in every
checkpoint; :func:`training_clock` reads them back from a checkpoint file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from .checkpoint import read_checkpoint


class TrainingClock(Callback):
    """Per-epoch wall clock and training throughput, totalled across resumes in the checkpoint."""

    def __init__(self) -> None:
        self.seconds = 0.0  # finished epochs only
        self.images = 0
        self.epochs = 0
        self._start: float | None = None
        self._seen = 0

    @property
    def state_key(self) -> str:
        return "TrainingClock"

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._seen = time.perf_counter(), 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        self._seen += len(x)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Runs after the epoch's validation and before the checkpoint callbacks (Lightning calls those
        # last), so the saved totals include this epoch.
        if self._start is None:
            return
        seconds = time.perf_counter() - self._start
        self.seconds += seconds
        self.images += self._seen
        self.epochs += 1
        self._start = None
        pl_module.log("time/epoch_s", seconds, on_epoch=True, sync_dist=False)
        pl_module.log("train/images_per_s", self._seen / max(seconds, 1e-9), on_epoch=True, sync_dist=False)

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "images": self.images, "epochs": self.epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seconds = float(state_dict.get("seconds", 0.0))
        self.images = int(state_dict.get("images", 0))
        self.epochs = int(state_dict.get("epochs", 0))


def training_clock(path: str | Path) -> dict[str, float] | None:
    """``{"seconds", "images", "epochs", "images_per_s"}`` from a checkpoint's clock; ``None`` for a
    checkpoint saved without one (trained before the clock existed) or before its first epoch ended."""
    state = (read_checkpoint(path).get("callbacks") or {}).get("TrainingClock")
    if not state or not state.get("epochs") or not state.get("seconds"):
        return None
    return {
        "seconds": round(float(state["seconds"]), 1),
        "images": int(state["images"]),
        "epochs": int(state["epochs"]),
        "images_per_s": round(state["images"] / state["seconds"], 1),
    }
