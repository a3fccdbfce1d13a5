"""Run the whole evaluation for a set of models, part by part, resuming from what is already saved.

Usage from Python (the CLI in ``cli.py`` does the same from checkpoints)::

    from topdown.robustness import ModelEntry, SuiteConfig, evaluate_models
    report = evaluate_models([ModelEntry("baseline", net_a), ModelEntry("topdown", net_b)],
                             data.subset("test"), data.classes, SuiteConfig(subset=64), out="outputs/eval")
    report.results["models"]["topdown"]["sanity"]

The parts themselves are declared in ``parts.py``; this module runs them. Every (model, part) result is
written atomically to ``<out>/parts`` as soon as it is done; a second run with the same models, data and
settings loads those parts instead of recomputing them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import nn
from torch.utils.data import Dataset

from ..data.subsets import CachedSplit, stratified_subset
from ..errors import ConfigError
from ..io import atomic_write_json
from ..models import is_topdown
from ..store import SCHEMA_VERSION, PartStore, fingerprint, source_fingerprint, weights_sha256
from .attacks import prepare_model, resolve_device
from .config import SuiteConfig
from .decode import PartResults
from .parts import Context, Part, plan, settings_record
from .plots import make_plots
from .results import assemble
from .results import write_csv as _write_csv
from .scales import num_levels_of

#: The code a part is a function of (its fingerprint hashes these files: parts saved by other code are redone).
SOURCES = ("robustness/*.py", "models/*.py", "data/*.py")

__all__ = ["ModelEntry", "RunReport", "evaluate_models", "stratified_subset"]


@dataclass
class ModelEntry:
    """A model to evaluate.

    Args:
        name: its key in the results (``baseline``, ``topdown`` ...).
        net: the network (taking images in [0, 1]); it is copied, never modified.
        identity: a hash that changes whenever the weights do; computed from the weights
            (:func:`topdown.store.weights_sha256`) if empty.
        info: what to record about it (checkpoint path, architecture, epoch ...).
    """

    name: str
    net: nn.Module
    identity: str = ""
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunReport:
    """What :func:`evaluate_models` did: the results and which parts it computed or reused."""

    results: dict[str, Any]
    out: Path
    computed: list[tuple[str, str]] = field(default_factory=list)
    reused: list[tuple[str, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


class _Progress:
    """A rich progress bar over all parts (plus one over the current part's images), or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        if not enabled:
            return

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
            console=Console(log_path=False),  # a log line names the part, not this file's line
        )
        self.parts = self.bar.add_task("evaluation", total=total)
        self.items = self.bar.add_task("", total=1, visible=False)
        self.bar.start()

    def start(self, label: str, items: int) -> Callable[[int], None]:
        if not self.enabled:
            return lambda k: None
        self.bar.update(self.items, description=f"  {label}", completed=0, total=max(1, items), visible=True)
        return lambda k: self.bar.advance(self.items, k)

    def done(self, line: str) -> None:
        if self.enabled:
            self.bar.console.log(line)
            self.bar.advance(self.parts)
            self.bar.update(self.items, visible=False)

    def stop(self) -> None:
        if self.enabled:
            self.bar.stop()


def _summary(result: dict[str, Any]) -> str:
    if result.get("kind") == "autoattack":
        return f"broke {result['n_broken']} of {len(result['attacked'])} images still robust"
    if "most_harmful_level" in result:
        return f"most harmful level {result['most_harmful_level']} (factor 1/{result['most_harmful_factor']})"
    acc = result.get("accuracy")
    if isinstance(acc, list) and acc and not isinstance(acc[0], list):
        return f"accuracy {acc[0]:.3f} -> {acc[-1]:.3f}"
    for key in ("top1", "auc", "nonzero_fraction"):
        if result.get(key) is not None:
            return f"{key} {result[key]:.3f}"
    return ""


def part_fingerprint(identity: str, data_fp: str, part: Part, settings: Any) -> str:
    """What decides whether a saved part is reused: the code's version, the model, the data and the part's
    settings object (the very object compute receives)."""
    return fingerprint(
        SCHEMA_VERSION, source_fingerprint(*SOURCES), identity, data_fp, part.key, settings_record(settings)
    )


def run_parts(
    name: str,
    ctx: Context,
    parts: list[Part],
    store: PartStore,
    fresh: bool,
    keys: tuple[str, dict[str, str]],
    bar: _Progress,
    report: RunReport,
    on_part: Callable[[str, str], None] | None = None,
) -> None:
    """Every part of the plan on one model, in order, each reused from ``store`` where its fingerprint matches
    (``keys``: the model's identity and the data's fingerprints), into ``ctx.parts``."""
    identity, data_fp = keys
    for part in parts:
        key = part.key
        settings = part.settings_for(ctx)
        if settings is None:  # not applicable (e.g. nothing to compare with)
            bar.done(f"[{name}] {key}: skipped")
            continue
        fp = part_fingerprint(identity, data_fp["clean" if part.section == "clean" else "subset"], part, settings)

        def compute(part: Part = part, settings: Any = settings) -> Any:
            if on_part is not None:
                on_part(name, part.key)
            ctx.tick = bar.start(f"{name}: {part.key}", len(ctx.x))
            return part.compute(ctx, settings)

        result, reused = store.cached(name, key, fp, compute, fresh)
        if result is None:
            bar.done(f"[{name}] {key}: skipped")
            continue
        (report.reused if reused else report.computed).append((name, key))
        if reused:
            bar.done(f"[{name}] {key}: reused ({_summary(result)})")
        else:
            bar.done(f"[{name}] {key}: {_summary(result)} ({result.get('time_s', 0):.1f} s)")
        ctx.parts.add(part.section, part.name, result)


def evaluate_models(
    models: list[ModelEntry],
    test_set: Dataset,
    classes: list[str],
    config: SuiteConfig | None = None,
    out: str | Path = "outputs/eval",
    data_info: dict[str, Any] | None = None,
    progress: bool = True,
    fresh: bool = False,
    on_part: Callable[[str, str], None] | None = None,
    plots: bool = True,
) -> RunReport:
    """Evaluate every model on the test split and write results.json, results.csv and plots to ``out``.

    Args:
        models: the models (the first non-top-down one is the mCE reference).
        test_set: the test split: ``(image in [0, 1], label)`` items and a ``targets`` list.
        classes: class names.
        config: the suite (default: :class:`SuiteConfig`'s defaults).
        out: output folder (``parts/`` inside holds the resumable per-part results).
        data_info: what to record about the data (a ``FlowerData.describe()``).
        progress: show progress bars and a line per part.
        fresh: recompute every part even when a matching saved one exists.
        on_part: called as ``on_part(model, part)`` before each part is computed (not when reused).
        plots: write the figures.
    """
    cfg = config or SuiteConfig()
    cfg.validate()
    if not models:
        raise ConfigError("no models to evaluate")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"model names must be unique, got {names}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    store = PartStore(out)
    report = RunReport({}, out)
    data_info = dict(data_info or {})

    test_set = CachedSplit(test_set)
    targets = np.asarray(test_set.targets)
    positions = stratified_subset(targets, cfg.subset, cfg.seed)
    x = torch.stack([test_set[int(i)][0] for i in positions]) if len(positions) else torch.empty(0)
    y = torch.as_tensor(targets[positions], dtype=torch.long)
    if len(x) and (float(x.min()) < 0 or float(x.max()) > 1):
        raise ConfigError("test images must lie in [0, 1]")
    data_fp = {
        "subset": fingerprint(data_info, len(test_set), positions),
        "clean": fingerprint(data_info, len(test_set)),
    }

    # the baseline's image bands match the top-down net's pyramid levels, so both are ablated alike
    num_levels = next(
        (num_levels_of(m.net, 0) for m in models if is_topdown(m.net)), cfg.scales.num_levels if cfg.scales else 0
    )
    parts = plan(cfg)
    bar = _Progress(progress, total=len(models) * len(parts))
    model_parts: dict[str, PartResults] = {}
    try:
        for entry in models:
            identity = entry.identity or weights_sha256(entry.net)
            net = prepare_model(entry.net, device)
            ctx = Context(net, device, test_set, classes, x, y, positions, num_levels_of(net, num_levels))
            run_parts(entry.name, ctx, parts, store, fresh, (identity, data_fp), bar, report, on_part)
            model_parts[entry.name] = ctx.parts
    finally:
        bar.stop()

    infos = [
        {"name": m.name, "architecture": type(m.net).__name__, "is_topdown": is_topdown(m.net), "checkpoint": m.info}
        for m in models
    ]
    data = {"description": data_info, "split": "test", "n_test": len(test_set), "subset_size": len(positions)}
    data |= {"subset_indices": positions.tolist(), "subset_seed": cfg.seed}
    results = assemble(infos, model_parts, cfg.to_dict(), data, cfg.sanity, out)
    report.results = results
    atomic_write_json(out / "results.json", results)
    _write_csv(out / "results.csv", results)
    report.files = [out / "results.json", out / "results.csv"]
    if plots:
        report.files += make_plots(results, out)
    return report
