"""The visualizations reproduce their recorded numbers: ``tests/golden/vis_quick.json`` is the ``vis.json`` of a
seeded quick run of every method on two tiny, deterministically initialized networks (32 px procedural flowers),
with the pixel hashes of every image it drew. A change to how the methods are organised must leave every number
and every pixel as it was.

Record it again (only for a deliberate change of the numbers) with ``python tests/test_vis_golden.py``.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import small_data
from PIL import Image

from topdown.lit import CHECKPOINT_KEY
from topdown.models import create_model
from topdown.vis.cli import main as vis_main

pytestmark = pytest.mark.usefixtures("one_thread")

GOLDEN = Path(__file__).parent / "golden" / "vis_quick.json"
#: A quick run: few steps, channels and images (about 20 s on one core).
QUICK = ["--steps", "8", "--channels", "4", "--images", "4", "--reference", "32", "--progress", "false"]
#: Per-method fields that depend on the machine, the moment or the source code, not on the numbers.
VOLATILE = ("seconds", "fingerprint")


def golden_checkpoints(root: Path) -> list[Path]:
    """Checkpoints of an untrained tiny baseline and top-down net, initialized from fixed seeds (no training,
    whose floating-point sums would tie the weights to this machine)."""
    desc = small_data(synthetic_size=240).describe()
    paths = []
    for seed, arch in enumerate(("tiny_baseline", "tiny_topdown")):
        torch.manual_seed(seed)
        net = create_model(arch, num_classes=desc["num_classes"], stem_pool=False)
        path = root / f"{arch}.ckpt"
        state = {f"net.{k}": v for k, v in net.state_dict().items()}
        torch.save({"state_dict": state, CHECKPOINT_KEY: {"schema": 1, "net": net.arch_config, "data": desc}}, path)
        paths.append(path)
    return paths


def normalized(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without what changes from run to run or machine to machine: the time, the command line, the
    output and checkpoint paths, each method's seconds and its fingerprint (which hashes the source code)."""
    doc = json.loads(json.dumps(doc))
    for key in ("created", "command", "args"):
        doc.pop(key, None)
    for m in doc["models"].values():
        m.pop("checkpoint", None)
        for entry in m["methods"].values():
            for key in VOLATILE:
                entry.pop(key, None)
    return doc


def machine() -> dict[str, str]:
    """What bitwise equality of float results depends on: the torch build and the CPU kernels it picks."""
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
    }


def pixel_hashes(out: Path, doc: dict[str, Any]) -> dict[str, str]:
    """SHA-256 of the decoded pixels of every image the run wrote (PNG bytes depend on the zlib build)."""
    rels = [rel for m in doc["models"].values() for e in m["methods"].values() for rel in e["images"]]
    rels += [rel for c in doc["comparisons"].values() for rel in c["images"]]
    hashes = {}
    for rel in sorted(rels):
        with Image.open(out / rel) as im:
            hashes[rel] = hashlib.sha256(np.asarray(im).tobytes()).hexdigest()
    return hashes


def quick_run(tmp_path: Path, *extra: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The quick run's normalized vis.json and its images' pixel hashes."""
    ckpts = golden_checkpoints(tmp_path)
    args = [x for p in ckpts for x in ("--ckpt", str(p))]
    vis_main([*args, "--out", str(tmp_path / "vis"), *QUICK, *extra])
    doc = json.loads((tmp_path / "vis" / "vis.json").read_text())
    return normalized(doc), pixel_hashes(tmp_path / "vis", doc)


def record_golden() -> None:
    """Run the quick run (one thread, as the test does) and write it to :data:`GOLDEN`."""
    import tempfile

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        doc, pixels = quick_run(Path(tmp))
    record = {"machine": machine(), "vis": doc, "pixels": pixels}
    GOLDEN.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")


#: Fields vis.json gained after the golden record was made (a newer record holds them and compares them).
ADDED = {"config", "settings"}


def differences(golden: Any, new: Any, exact: bool, path: str = "vis") -> list[str]:
    """Where ``new`` differs from ``golden`` (keys in :data:`ADDED` aside where the record lacks them). Numbers
    must be equal when ``exact``, else within a relative 1e-3 (absolute 1e-5)."""
    if isinstance(golden, dict) and isinstance(new, dict):
        kept = set(new) - (ADDED - set(golden))
        out = [f"{path}.{k}: only in the record" for k in sorted(set(golden) - kept)]
        out += [f"{path}.{k}: only in the new run" for k in sorted(kept - set(golden))]
        for k in sorted(set(golden) & set(new)):
            out += differences(golden[k], new[k], exact, f"{path}.{k}")
        return out
    if isinstance(golden, list) and isinstance(new, list):
        if len(golden) != len(new):
            return [f"{path}: {len(golden)} items recorded, {len(new)} now"]
        return [d for i, (g, n) in enumerate(zip(golden, new)) for d in differences(g, n, exact, f"{path}[{i}]")]
    numbers = (int, float)
    if not exact and isinstance(golden, numbers) and isinstance(new, numbers) and not isinstance(golden, bool):
        same = new == pytest.approx(golden, rel=1e-3, abs=1e-5)
    else:
        same = type(golden) is type(new) and golden == new
    return [] if same else [f"{path}: recorded {golden!r}, now {new!r}"]


def test_quick_run_reproduces_the_golden_record(tmp_path: Path) -> None:
    """Every number of every method, figure and panel as recorded: bitwise on the machine and torch build the
    record was made with (the quick run is bitwise reproducible there), within a tolerance elsewhere."""
    golden = json.loads(GOLDEN.read_text())
    doc, pixels = quick_run(tmp_path)
    exact = golden["machine"] == machine()
    diffs = differences(golden["vis"], doc, exact)
    assert not diffs, f"{len(diffs)} differences, e.g.\n" + "\n".join(diffs[:20])
    if exact:
        assert pixels == golden["pixels"]
    else:
        assert set(pixels) == set(golden["pixels"])
    assert doc["config"]["steps"] == 8 and doc["config"]["dream"]["lr"] == 0.02
    assert doc["models"]["topdown"]["methods"]["classes"]["settings"]["steps_scale"] == 1.5


if __name__ == "__main__":
    record_golden()
