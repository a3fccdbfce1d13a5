"""Keep the weights of every epoch: the accuracy control is the baseline at the epoch whose validation accuracy
matches another network's."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import Callback


def snapshot_name(epoch: int) -> str:
    """The file an epoch's weights are kept in: ``epochNNN.ckpt``."""
    return f"epoch{epoch:03d}.ckpt"


def kept_epochs(folder: str | Path) -> list[int]:
    """The epochs whose weights ``folder`` keeps (files named by ``snapshot_name``), in order."""
    found = (re.fullmatch(r"epoch(\d+)\.ckpt", p.name) for p in Path(folder).glob("epoch*.ckpt"))
    return sorted(int(m.group(1)) for m in found if m)


class EpochSnapshots(Callback):
    """After each epoch's validation, save the weights (with topdown's architecture and data record, so
    ``topdown.checkpoint.load_model`` rebuilds the net) as ``<dirpath>/epochNNN.ckpt``.

    Args:
        dirpath: where to save (default ``<default_root_dir>/checkpoints/epochs``).
    """

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        folder = self.dirpath or os.path.join(trainer.default_root_dir, "checkpoints", "epochs")
        trainer.save_checkpoint(os.path.join(folder, snapshot_name(trainer.current_epoch)), weights_only=True)
