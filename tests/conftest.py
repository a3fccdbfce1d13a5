"""Shared fixtures: the real data when it is beside the project, and small models trained once per session.

The suite's own options (``pytest --help``, under "topdown"):

- ``--write-golden``: rewrite the golden records the tests compare with (``tests/golden/``), after a deliberate
  change, instead of only comparing (the ``write_golden`` fixture);
- ``--require-browser``: fail, not skip, where the browser checks lack chromium and chromedriver, as CI does
  (the ``browser_required`` and ``browser`` fixtures);
- ``--shared-data PATH``: where the real datasets are (default ``../shared/data`` beside the project; the
  ``shared_data`` fixture).
"""

from __future__ import annotations

import json
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
from topdown.env import usable_cores

ROOT = Path(__file__).resolve().parents[1]
#: Where the real datasets are unless ``--shared-data PATH`` says otherwise.
DEFAULT_SHARED_DATA = ROOT.parent / "shared" / "data"

torch.set_num_threads(min(2, usable_cores()))  # 1 on a one-core machine, or under `taskset -c 0`


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("topdown", "topdown's tests")
    group.addoption(
        "--write-golden",
        action="store_true",
        default=False,
        help="rewrite the golden records in tests/golden/ from this run (after a deliberate change) instead of "
        "only comparing with them",
    )
    group.addoption(
        "--require-browser",
        action="store_true",
        default=False,
        help="fail, rather than skip, the browser checks where chromium or chromedriver is missing (as in CI)",
    )
    group.addoption(
        "--shared-data",
        metavar="PATH",
        type=Path,
        default=DEFAULT_SHARED_DATA,
        help=f"where the real datasets (flower_photos, Flowers102) are; default {DEFAULT_SHARED_DATA}",
    )


@pytest.fixture(scope="session")
def write_golden(pytestconfig: pytest.Config) -> bool:
    """Whether ``--write-golden`` was given: a golden test then rewrites its record before comparing."""
    return bool(pytestconfig.getoption("write_golden"))


@pytest.fixture(scope="session")
def browser_required(pytestconfig: pytest.Config) -> bool:
    """Whether ``--require-browser`` was given: a missing chromium/chromedriver then fails a test, not skips it."""
    return bool(pytestconfig.getoption("require_browser"))


def no_browser(required: bool) -> None:
    """Fail (with ``--require-browser``) or skip the calling test: chromium or chromedriver is missing."""
    if required:
        pytest.fail("chromium and chromedriver are required here (--require-browser)")
    pytest.skip("chromium/chromedriver not installed")


@pytest.fixture
def browser(browser_required: bool) -> None:
    """Chromium and chromedriver for a test that needs them: skips where they are missing, or fails there under
    ``--require-browser``."""
    from topdown.report.browser import browser_available

    if not browser_available():
        no_browser(browser_required)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: two busy-waiting OpenMP threads on a shared two-core machine run the
    tiny models many times slower (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data(pytestconfig: pytest.Config) -> Path:
    """``--shared-data`` (default ``../shared/data``: Flowers102 and flower_photos), or skip where it is absent."""
    path = Path(pytestconfig.getoption("shared_data"))
    if not (path / "flower_photos").is_dir():
        pytest.skip(f"real flower data not found at {path} (--shared-data PATH)")
    return path


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


#: A training config that makes any model config a tiny net on 240 procedural flowers at 32 px, quietly.
TINY_TRAIN = {
    "trainer": {"enable_progress_bar": False, "enable_model_summary": False},
    "data": {"synthetic_size": 240, "image_size": 32, "batch_size": 32},
    "model": {"net": {"init_args": {"widths": [8, 16, 32], "depths": [1, 1, 1], "stem_pool": False}}},
}


def _dotted(tree: dict, prefix: str = "") -> list[str]:
    """``{"a": {"b": 1}}`` as ``["--a.b", "1"]`` (values as JSON, which the parser reads as YAML)."""
    args = []
    for key, value in tree.items():
        if isinstance(value, dict):
            args += _dotted(value, f"{prefix}{key}.")
        else:
            args += [f"--{prefix}{key}", json.dumps(value)]
    return args


#: :data:`TINY_TRAIN` as ``train.py fit`` options.
TINY_TRAIN_ARGS = _dotted(TINY_TRAIN)


def tiny_train_config(path: Path, **data: object) -> Path:
    """:data:`TINY_TRAIN` written to ``path`` (a pipeline's ``train_configs`` entry), with ``data`` settings on top."""
    tree = {**TINY_TRAIN, "data": {**TINY_TRAIN["data"], **data}}
    path.write_text(json.dumps(tree))
    return path


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
