"""Load trained networks, and the data they were trained on, from Lightning checkpoints without unpickling code.

``torch.load(weights_only=True)`` refuses anything but tensors and plain containers, so a checkpoint
carrying a malicious pickle fails to load instead of running it. The network is rebuilt from the
architecture config that :class:`topdown.lit.ImageClassifier` stores in every checkpoint.

:func:`load_run` is how the commands load their checkpoints: the networks by name, the data description they
share and the data rebuilt from it, with every check.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .data import FlowerData
from .data.description import SAME_DATA_KEYS
from .errors import ConfigError, TopdownError
from .lit import CHECKPOINT_KEY
from .models.base import ImageClassifierNet, is_topdown
from .models.registry import build_from_config

if TYPE_CHECKING:
    from .data import FlowerData

#: Recorded constructor arguments that older checkpoints hold and today's networks no longer take, as
#: ``{architecture: {argument: (recorded value, today's value)}}``. ``TopDownResNet(merge_at=None)`` meant the
#: reference's place, ``after_block`` (checkpoints made before the option existed lack it, and get the default).
LEGACY_ARGUMENTS: dict[str, dict[str, tuple[Any, Any]]] = {"TopDownResNet": {"merge_at": (None, "after_block")}}


class CheckpointError(TopdownError, ValueError):
    """A checkpoint that cannot be used: unreadable, unsafe, or of an unknown architecture."""


@dataclass
class LoadedModel:
    """A network rebuilt from a checkpoint, in eval mode, with what the checkpoint says about it."""

    net: ImageClassifierNet
    path: Path
    arch: dict[str, Any]  # the recorded architecture, in today's terms (legacy arguments translated)
    data: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None
    global_step: int | None = None

    @property
    def name(self) -> str:
        return type(self.net).__name__


@dataclass
class LoadedRun:
    """Checkpoints loaded together: the networks by name (in the order given), the description of the data they
    share and the data rebuilt from it."""

    models: dict[str, LoadedModel]
    data_description: dict[str, Any]
    data_module: FlowerData


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


def current_arch(config: dict[str, Any]) -> dict[str, Any]:
    """A recorded architecture config in today's terms: every :data:`LEGACY_ARGUMENTS` value translated."""
    legacy = LEGACY_ARGUMENTS.get(str(config.get("class_path", "")).rsplit(".", 1)[-1], {})
    init = dict(config.get("init_args") or {})
    for arg, (recorded, today) in legacy.items():
        if arg in init and init[arg] == recorded:
            init[arg] = today
    return {**config, "init_args": init}


def load_model(path: str | os.PathLike[str], expect_classes: int | None = None) -> LoadedModel:
    """Rebuild the network stored in a topdown checkpoint and load its weights (eval mode)."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    meta = ckpt.get(CHECKPOINT_KEY)
    if not isinstance(meta, dict) or not isinstance(meta.get("net"), dict):
        raise CheckpointError(f"{path}: not a topdown checkpoint (no '{CHECKPOINT_KEY}.net' architecture record)")
    arch = current_arch(meta["net"])
    try:
        net = build_from_config(arch)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from err
    state = {k.removeprefix("net."): v for k, v in ckpt.get("state_dict", {}).items() if k.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: weights do not fit the recorded architecture {arch['class_path']} "
            f"({str(err).splitlines()[0][:200]})"
        ) from err
    data = meta.get("data", {}) or {}
    if expect_classes is not None and net.num_classes != expect_classes:
        raise CheckpointError(
            f"{path}: the network has {net.num_classes} classes but the data has {expect_classes} "
            f"(trained on {data.get('dataset', 'unknown data')})"
        )
    # Channels-last weights make every convolution run channels-last (as training does, topdown.lit): on the
    # CPU an input gradient, what attacks, renders and attributions compute, then costs 0.6-0.8 of the default
    # layout's (benchmarks/bench_layout.py).
    net.to(memory_format=torch.channels_last).eval()
    return LoadedModel(net, path, arch, data, ckpt.get("epoch"), ckpt.get("global_step"))


def load_checkpoints(
    paths: list[str] | list[Path], names: list[str] | None = None
) -> tuple[dict[str, LoadedModel], dict[str, Any]]:
    """``({name: LoadedModel}, data description)``: every checkpoint loaded safely and checked to record its
    data, to have as many classes as that data and to share it with the first checkpoint.

    ``names`` (one per checkpoint) default to ``baseline`` / ``topdown`` by architecture (``baseline_2`` for a
    second baseline, ...). A wrong argument is a ``ValueError``, a checkpoint that cannot be used a
    :class:`CheckpointError` naming the file; both of one line.
    """
    if not paths:
        raise ConfigError("ckpt: no checkpoint given: pass --ckpt+ <baseline.ckpt> --ckpt+ <topdown.ckpt>")
    if names is not None and len(names) != len(paths):
        raise ConfigError(f"names: {len(names)} entries for {len(paths)} checkpoints")
    if names is not None and len(set(names)) != len(names):
        raise ConfigError(f"names: {next(n for n in names if names.count(n) > 1)!r} is given twice")
    loaded = [load_model(p) for p in paths]
    first = loaded[0]
    for lm in loaded:
        if not lm.data:
            raise CheckpointError(
                f"{lm.path}: the checkpoint does not record the data it was trained on "
                "(train it with topdown's FlowerData)"
            )
        recorded = lm.data.get("num_classes", lm.net.num_classes)
        if lm.net.num_classes != recorded:
            raise CheckpointError(
                f"{lm.path}: the network has {lm.net.num_classes} classes but its data record says {recorded}"
            )
        diff = [k for k in SAME_DATA_KEYS if lm.data.get(k) != first.data.get(k)]
        if diff:
            detail = ", ".join(f"{k}: {first.data.get(k)!r} vs {lm.data.get(k)!r}" for k in diff[:4])
            raise CheckpointError(f"{lm.path} was trained on different data than {first.path} ({detail})")
    models: dict[str, LoadedModel] = {}
    seen: dict[str, int] = {}
    for i, lm in enumerate(loaded):
        name = names[i] if names else ("topdown" if is_topdown(lm.net) else "baseline")
        seen[name] = seen.get(name, 0) + 1
        models[name if seen[name] == 1 else f"{name}_{seen[name]}"] = lm
    return models, dict(first.data)


def rebuild_data(description: dict[str, Any], root: str | None = None) -> FlowerData:
    """The data a checkpoint's description records (dataset, splits, sizes), found under ``root`` (default:
    ``$TOPDOWN_DATA_ROOT`` or ``./data``); a :class:`CheckpointError` if the data there has other classes."""
    data = FlowerData.from_description(description, root=root)
    classes = data.classes
    want = description.get("classes")
    if want is not None and list(want) != list(classes):
        raise CheckpointError(
            f"the checkpoints were trained on {len(want)} classes {list(want)[:6]}... but the {data.dataset} data "
            f"under {data.path} has {len(classes)} classes {list(classes)[:6]}...: pass the right --data.root"
        )
    count = description.get("num_classes")
    if want is None and count is not None and count != len(classes):
        raise CheckpointError(
            f"the checkpoints were trained on {count} classes but the {data.dataset} data under {data.root} has "
            f"{len(classes)}: pass the right --data.root"
        )
    return data


def load_run(paths: list[str] | list[Path], names: list[str] | None = None, data_root: str | None = None) -> LoadedRun:
    """Checkpoints (and where their data is) -> the networks by name, and the data they were trained on.

    Every check of :func:`load_checkpoints` (safe unpickling, a known architecture whose weights fit, the data
    recorded, its class count, the same data for all) and of :func:`rebuild_data` (the classes found match).
    """
    models, description = load_checkpoints(paths, names)
    return LoadedRun(models, description, rebuild_data(description, data_root))
