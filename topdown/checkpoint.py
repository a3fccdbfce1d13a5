"""Load a trained network from a Lightning checkpoint without unpickling code.

``torch.load(weights_only=True)`` refuses anything but tensors and plain containers, so a checkpoint
carrying a malicious pickle fails to load instead of running it. The network is rebuilt from the
architecture config that :class:`topdown.lit.ImageClassifier` stores in every checkpoint.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .lit import CHECKPOINT_KEY
from .models.base import ImageClassifierNet
from .models.registry import build_from_config


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, unsafe, or of an unknown architecture."""


@dataclass
class LoadedModel:
    """A network rebuilt from a checkpoint, in eval mode, with what the checkpoint says about it."""

    net: ImageClassifierNet
    path: Path
    arch: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None
    global_step: int | None = None

    @property
    def name(self) -> str:
        return type(self.net).__name__


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to load: the checkpoint holds objects other than tensors and plain data "
            f"({str(err).splitlines()[0][:200]})"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(err).splitlines()[0][:200]})") from err


def load_model(path: str | os.PathLike[str], expect_classes: int | None = None) -> LoadedModel:
    """Rebuild the network stored in a topdown checkpoint and load its weights (eval mode)."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    meta = ckpt.get(CHECKPOINT_KEY)
    if not isinstance(meta, dict) or "net" not in meta:
        raise CheckpointError(f"{path}: not a topdown checkpoint (no '{CHECKPOINT_KEY}.net' architecture record)")
    try:
        net = build_from_config(meta["net"])
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from err
    state = {k.removeprefix("net."): v for k, v in ckpt.get("state_dict", {}).items() if k.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: weights do not fit the recorded architecture {meta['net']['class_path']} "
            f"({str(err).splitlines()[0][:200]})"
        ) from err
    data = meta.get("data", {}) or {}
    if expect_classes is not None and net.num_classes != expect_classes:
        raise CheckpointError(
            f"{path}: the network has {net.num_classes} classes but the data has {expect_classes} "
            f"(trained on {data.get('dataset', 'unknown data')})"
        )
    net.eval()
    return LoadedModel(net, path, meta["net"], data, ckpt.get("epoch"), ckpt.get("global_step"))
