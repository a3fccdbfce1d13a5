"""Adopt a published suite result for retrained checkpoints, where they are the same nets.

The robustness suite takes hours on real photos; its result is committed (``docs/runs/<dataset>/seed<k>``) while
the checkpoints it measured are not. Training is bitwise reproducible on one kind of CPU, so a net retrained with
the same recipe and seed is usually the very net that was measured. :func:`adopt_results` checks that on every
model, from what results.json recorded of it: the clean test split scored anew must give the same confusion
matrix (every image's prediction counted alike) and a negative log-likelihood within :data:`NLL_TOLERANCE`.
Only where every model passes is the published result adopted; otherwise the caller runs the suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_run
from ..io import atomic_write_json, read_json
from ..metrics import clean_metrics
from .attacks import prepare_model, resolve_device
from .cli import model_entries
from .plots import make_plots

#: How far the mean test NLL of the same net may move with the CPU's rounding. Measured on the main job's two nets
#: (900 test images): equal on AVX512 and AVX2 kernels, 1.5e-8 apart on torch's default ones.
NLL_TOLERANCE = 1e-4


def differences(published: dict[str, Any], name: str, clean: dict[str, Any]) -> str | None:
    """Why ``clean`` (a model's clean test metrics, scored now) is not what ``published`` recorded of ``name``;
    ``None`` where it is."""
    old = published.get("models", {}).get(name, {}).get("clean")
    if old is None:
        return f"{name}: not in the published results"
    if clean["n"] != old["n"] or clean["confusion"] != old["confusion"]:
        return f"{name}: test top-1 {clean['top1']:.4f} now, {old['top1']:.4f} published (other predictions)"
    if abs(clean["nll"] - old["nll"]) > NLL_TOLERANCE:
        return f"{name}: test NLL {clean['nll']:.6f} now, {old['nll']:.6f} published"
    return None


def adopt_results(
    published: str | Path,
    ckpts: list[str],
    names: list[str],
    out: str | Path,
    data_root: str | None = None,
    batch_size: int = 128,
) -> list[str]:
    """Write ``published`` (a results.json) as ``<out>/results.json`` (with its figures) for the checkpoints
    ``ckpts`` named ``names``, where each scores exactly as recorded on the clean test split; return the
    differences found instead (nothing is written then)."""
    doc = read_json(published)
    run = load_run(list(ckpts), names, data_root)
    test = run.data_module.subset("test")
    device = resolve_device("auto")
    found = []
    entries = model_entries(run.models)
    for entry in entries:
        net = prepare_model(entry.net, device)  # as the suite scores it
        clean = clean_metrics(net, test, run.data_module.classes, batch_size, device)
        if (why := differences(doc, entry.name, clean)) is not None:
            found.append(why)
    if set(doc.get("models", {})) - set(names):
        found.append(f"published results hold models not given: {sorted(set(doc['models']) - set(names))}")
    if found:
        published_kernels = doc.get("environment", {}).get("cpu_capability")
        if published_kernels not in (None, (here := torch.backends.cpu.get_cpu_capability())):
            found.append(f"measured on {published_kernels} kernels, retrained on {here} (scripts/kernels.sh)")
        return found
    for entry in entries:  # the record now names the retrained file, and the file it stands in for
        record = doc["models"][entry.name]
        record["checkpoint"] = {**entry.info, "adopted_from": record["checkpoint"]}
    doc["adopted"] = {
        "from": str(published),
        "check": f"every model's clean test confusion matrix equal and NLL within {NLL_TOLERANCE:g}",
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", doc)
    make_plots(doc, out)
    return []
