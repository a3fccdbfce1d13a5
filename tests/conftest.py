"""Shared fixtures: the real data when it is beside the project, and small models trained once per session."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import pytest
import tiny_nets
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from topdown.data import FlowerData

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TOPDOWN_SHARED_DATA", ROOT.parent / "shared" / "data"))

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: two busy-waiting OpenMP threads on a shared two-core machine run the
    tiny models many times slower (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (Flowers102 and flower_photos), or skip where it is absent."""
    if not (SHARED_DATA / "flower_photos").is_dir():
        pytest.skip(f"real flower data not found at {SHARED_DATA}")
    return SHARED_DATA


def small_data(**kw) -> FlowerData:
    """Procedural flowers at 32 px: 6 classes, 1200 images (840 train / 180 val / 180 test)."""
    args = {
        "dataset": "synthetic",
        "image_size": 32,
        "batch_size": 32,
        "synthetic_size": 1200,
        "seed": 0,
        "augment": "light",
    }
    args.update(kw)
    return FlowerData(**args)


def fit_quickly(net: torch.nn.Module, data: FlowerData, epochs: int = 6, lr: float = 0.05) -> torch.nn.Module:
    """A plain seeded training loop (a few seconds for the tiny nets); returns the net in eval mode."""
    torch.manual_seed(0)
    loader = DataLoader(
        data.subset("train", train=True),
        batch_size=data.batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(0),
    )
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * len(loader))
    net.train()
    for _ in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: torch.nn.Module, data: FlowerData, split: str = "test") -> float:
    net.eval()
    correct = total = 0
    for x, y in DataLoader(data.subset(split), batch_size=64):
        correct += (net(x).argmax(1) == y).sum().item()
        total += len(y)
    return correct / total


@pytest.fixture(scope="session")
def small_flowers() -> FlowerData:
    return small_data()


@pytest.fixture(scope="session")
def trained_pair(small_flowers: FlowerData) -> dict[str, torch.nn.Module]:
    """``{"baseline": ..., "topdown": ...}``: tiny nets trained on procedural flowers (eval mode), the same nets
    on every machine: their weights are committed (``tests/tiny_nets.py``), not trained in the session.

    Treat them as read-only: copy (``copy.deepcopy``) before changing weights or modes.
    """
    return {name: tiny_nets.load("trained", arch, small_flowers.num_classes) for name, arch in tiny_nets.PAIR.items()}


#: ``train.py fit`` options that make any config a tiny net on 240 procedural flowers at 32 px, quietly.
TINY_TRAIN_ARGS = [
    *("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"),
    *("--data.synthetic_size", "240", "--data.image_size", "32", "--data.batch_size", "32"),
    *("--model.net.init_args.widths", "[8, 16, 32]", "--model.net.init_args.depths", "[1, 1, 1]"),
    *("--model.net.init_args.stem_pool", "false"),
]


def tiny_train_args(root: Path, config: str = "configs/topdown.yaml", epochs: int = 2, **extra: str) -> list[str]:
    """``train.py fit`` arguments for a tiny net on 240 procedural flowers at 32 px (seconds)."""
    args = ["fit", "--config", str(ROOT / config), "--trainer.max_epochs", str(epochs)]
    args += ["--trainer.default_root_dir", str(root), *TINY_TRAIN_ARGS]
    for k, v in extra.items():
        args += [f"--{k}", v]
    return args


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real Lightning checkpoints (``last.ckpt``) of both tiny nets, 2 epochs on procedural flowers."""
    from topdown.cli import train_main

    out = {}
    for arch in ("baseline", "topdown"):
        root = tmp_path_factory.mktemp(f"ckpt-{arch}")
        train_main(tiny_train_args(root, f"configs/{arch}.yaml"))
        out[arch] = root / "checkpoints" / "last.ckpt"
    return out
