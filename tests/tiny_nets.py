"""The tiny networks the golden and threshold tests run on, with their weights committed.

Training the tiny nets inside the test run ties their weights to the CPU: a few epochs of SGD on AVX2 kernels
end at a measurably different net than on AVX512 ones, and a golden record or an attack threshold made on one
is then compared with another net. ``tests/golden/tiny_nets.pt`` holds the weights instead (about 660 KB),
so every machine tests the same nets and only kernel rounding differs between them:

- ``trained/<arch>``: ``tiny_baseline`` and ``tiny_topdown`` trained by :func:`conftest.fit_quickly` (6
  epochs on ``conftest.small_data()``): the ``trained_pair`` fixture;
- ``untrained/<arch>``: the same architectures initialized from seeds 0 and 1: the visualization golden
  run's nets;
- ``forms/<arch>``: both trained 6 epochs on :class:`FormData` (the coarse form alone, 3 classes): the
  visualization methods' tests' nets.

Record them again (only after a deliberate change of the tiny architectures or of the data) with
``python tests/tiny_nets.py``, then the records that run on them (``python tests/test_vis_golden.py`` and
``pytest tests/test_robustness.py -k golden --write-golden``).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch
from torch.utils.data import Dataset

GOLDEN = Path(__file__).resolve().parent / "golden"
TINY_NETS = GOLDEN / "tiny_nets.pt"
ARCHS = ("tiny_baseline", "tiny_topdown")
#: The pair's names in the tests (``trained_pair["baseline"]``) and the architecture behind each.
PAIR = {"baseline": "tiny_baseline", "topdown": "tiny_topdown"}


class _Forms(Dataset):
    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.ds[i]
        return x, y // 2


class FormData:
    """The procedural flowers at 32 px (``conftest.small_data()``) with the coarse form as the label (3
    classes): the fine patterns are invisible at 32 px, the form is not. What ``fit_quickly`` needs."""

    def __init__(self) -> None:
        from conftest import small_data

        self.data = small_data()
        self.batch_size = self.data.batch_size
        self.num_classes = 3

    def subset(self, split: str, train: bool = False) -> Dataset:
        return _Forms(self.data.subset(split, train))


def build(arch: str, num_classes: int = 6) -> torch.nn.Module:
    from topdown.models import create_model

    return create_model(arch, num_classes=num_classes, stem_pool=False)


@functools.cache
def _committed() -> dict[str, dict[str, torch.Tensor]]:
    """Every committed state dict, read once per process (each net built from it gets its own copy)."""
    if not TINY_NETS.exists():
        raise FileNotFoundError(f"{TINY_NETS} is missing; record it with python tests/tiny_nets.py")
    return torch.load(TINY_NETS, map_location="cpu", weights_only=True)["nets"]


def load(kind: str, arch: str, num_classes: int = 6) -> torch.nn.Module:
    """The committed ``kind`` (``trained``, ``untrained`` or ``forms``) weights of ``arch``, in eval mode."""
    net = build(arch, num_classes)
    net.load_state_dict(_committed()[f"{kind}/{arch}"])
    return net.eval()


def record() -> None:
    """Initialize and train the tiny nets (one torch thread, as the tests run) and write :data:`TINY_NETS`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import fit_quickly, small_data
    from records import machine

    torch.set_num_threads(1)
    data = small_data()
    nets: dict[str, dict[str, torch.Tensor]] = {}
    for seed, arch in enumerate(ARCHS):
        torch.manual_seed(seed)
        nets[f"untrained/{arch}"] = build(arch, data.num_classes).state_dict()
    torch.manual_seed(0)
    fresh = {arch: build(arch, data.num_classes) for arch in ARCHS}  # both drawn from one seeded stream
    for arch, net in fresh.items():
        nets[f"trained/{arch}"] = fit_quickly(net, data).state_dict()
    forms = FormData()
    for arch in ARCHS:
        torch.manual_seed(0)
        nets[f"forms/{arch}"] = fit_quickly(build(arch, forms.num_classes), forms, epochs=6).state_dict()
    torch.save({"format": 1, "made_on": machine(), "nets": nets}, TINY_NETS)
    print(f"wrote {TINY_NETS} ({TINY_NETS.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    record()
