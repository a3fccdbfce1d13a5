"""Running the registered methods on every checkpoint: the shared context, the resumable store of results,
the PNGs and ``vis.json``.

Each (model, method) result is written to ``<out>/parts/<model>/<method>.json`` the moment it is done (after
its PNGs), with a fingerprint of everything it was computed from: the method and layer, the shared settings
and the method's own section of :class:`~topdown.vis.config.VisConfig`, the network's weights, the data (its
description, the reference images and the colour statistics) and the source of ``topdown.vis``. A run reuses
every stored result whose fingerprint matches and computes the rest, so an interrupted run continues where
it stopped and a changed setting recomputes exactly the methods that read it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from rich.console import Console

from ..errors import ConfigError
from ..generator import load_prior
from ..io import atomic_write_json
from ..models.base import ImageClassifierNet
from ..results_view import VisResults
from ..store import PartStore, fingerprint, source_fingerprint, weights_sha256
from .config import VisConfig
from .hooks import split_key
from .maco import data_spectrum
from .methods import METHODS, Job, Method, VisContext
from .param import color_stats
from .plot import save_png, side_by_side

if TYPE_CHECKING:
    from ..checkpoint import LoadedModel, LoadedRun
    from ..data import FlowerData

#: The code a stored (model, method) result is a function of (its fingerprint hashes these files).
SOURCES = ("vis/*.py", "vis/methods/*.py", "generator/*.py", "models/*.py", "data/*.py")


@dataclass
class VisRun:
    """A finished run: the ``vis.json`` document and which results were computed or reused."""

    doc: dict[str, Any]
    computed: list[str] = field(default_factory=list)  # "<model>/<method key>"
    reused: list[str] = field(default_factory=list)


def default_layer(net: torch.nn.Module) -> str:
    """The middle stage (``layer2`` of a 3- or 4-stage network); other networks must pass ``--layers``."""
    if not isinstance(net, ImageClassifierNet):
        raise ConfigError(f"{type(net).__name__} has no stage_names(): pass --layers")
    stages = net.stage_names()
    return stages[(len(stages) - 1) // 2]


def model_layers(models: dict[str, LoadedModel], layers: list[str] | None) -> dict[str, list[str]]:
    """``{model: layers}``: ``layers`` for every model, else each one's middle stage. A layer a network does not
    have is a ``ValueError`` naming it and the layers that exist."""
    out = {}
    for name, lm in models.items():
        modules = [n for n, _ in lm.net.named_modules() if n]
        for layer in layers or []:
            if split_key(layer)[0] not in modules:
                stages = lm.net.stage_names()
                deeper = next((n for n in modules if n.startswith(f"{stages[0]}.") and n.count(".") >= 2), None)
                raise ConfigError(
                    f"layers: {name} ({type(lm.net).__name__}) has no layer {layer!r}; its stages are "
                    f"{', '.join(stages)}" + (f" (any module name works, e.g. {deeper})" if deeper else "")
                )
        out[name] = list(layers) if layers else [default_layer(lm.net)]
    return out


def reference_split(data: FlowerData) -> str:
    """Where the held-out reference images come from: the validation split, or the test split where the nets
    trained on train+val (Flowers102's ``trainval``), whose validation images they have seen."""
    return "test" if data.trainval else "val"


def build_context(cfg: VisConfig, data: FlowerData, device: torch.device) -> VisContext:
    """The data, the seeded held-out reference images (:func:`reference_split`) and the colour statistics (training
    split)."""
    held_out = data.subset(reference_split(data))
    n = min(cfg.reference, len(held_out))
    gen = torch.Generator().manual_seed(cfg.seed)
    pick = torch.randperm(len(held_out), generator=gen)[:n].tolist()
    items = [held_out[i] for i in pick]
    real = torch.stack([x for x, _ in items])
    labels = torch.tensor([y for _, y in items])
    train = data.subset("train")
    m = min(cfg.color_images, len(train))
    tpick = torch.randperm(len(train), generator=gen)[:m].tolist()
    train_images = torch.stack([train[i][0] for i in tpick])
    train_labels = torch.tensor([train[i][1] for i in tpick])
    color = color_stats(train_images)
    spectrum = data_spectrum(train_images)  # the magnitude spectrum, from the same training images as the colours
    recipe = cfg.recipe()
    if cfg.parameterization == "maco":
        recipe = recipe.with_(spectrum=spectrum)
    size = int(data.image_size)
    ctx = VisContext(data, real, labels, color, size, recipe, cfg.channels, cfg.images, device)
    ctx.spectrum, ctx.train_images, ctx.train_labels = spectrum, train_images, train_labels
    return ctx


def load_priors(cfg: VisConfig, models: dict[str, LoadedModel], data_desc: dict[str, Any], device: Any) -> dict:
    """``{model: LearnedPrior}`` for ``cfg.generators``, each checked against its model's weights and data."""
    unknown = [name for name in cfg.generators if name not in models]
    if unknown:
        raise ConfigError(f"generators: no model named {', '.join(unknown)} in this run (models: {', '.join(models)})")
    return {
        name: load_prior(path, models[name].net, str(models[name].path), data_desc).to(device)
        for name, path in cfg.generators.items()
    }


def data_fingerprint(ctx: VisContext, data_desc: dict[str, Any]) -> str:
    """What the methods see of the data: its description, the reference images and the colour statistics."""
    h = hashlib.sha256()
    for t in (ctx.real, ctx.labels):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    spectrum = ctx.recipe.spectrum.to_dict() if ctx.recipe.spectrum is not None else None
    return fingerprint(data_desc, ctx.color.to_dict(), h.hexdigest(), *([spectrum] if spectrum else []))


def quality_figures(doc: dict[str, Any], model: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``("model/method/figure", figure)`` for every quality figure of a ``vis.json`` document (of one model),
    each figure as its dict (``VisResults.quality_figures`` gives them as views)."""
    return [(key, dict(f.raw)) for key, f in VisResults(doc).quality_figures(model)]


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    figures = quality_figures(doc)
    failed = [name for name, f in figures if not f["passed"]]
    return {"figures": len(figures), "passed": len(figures) - len(failed), "failed": failed}


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _progress_line(name: str, key: str, entry: dict[str, Any], reused: bool) -> str:
    quality = entry["quality"]
    ok = sum(q["passed"] for q in quality.values())
    marks = ", ".join(
        f"{k} {'nan' if q['value'] is None else format(q['value'], '.3g')}{'' if q['passed'] else ' FAIL'}"
        for k, q in quality.items()
    )
    when = "reused" if reused else f"{entry['seconds']:.1f}s"
    return f"[{name}] {key}: {when}, {ok}/{len(quality)} figures passed  {marks}"


def _images_exist(out: Path, entry: dict[str, Any]) -> bool:
    return all((out / rel).is_file() for rel in entry["images"])


def _compute_entry(method: Method, job: Job, key: str, fp: str, seed: int, out: Path) -> dict[str, Any] | None:
    """Run one method on one model and layer; save its PNGs under ``out``; its stored entry (``None``: the
    method does not apply)."""
    start = time.perf_counter()
    torch.manual_seed(seed)  # anything that draws from the global RNG starts the same
    res = method(job)
    secs = time.perf_counter() - start
    if res is None:
        return None
    images = []
    for suffix, arr in res.panels.items():
        rel = f"{job.model}/{key.replace(':', '_')}{'_' + suffix if suffix else ''}.png"
        save_png(arr, out / rel)
        images.append(rel)
    settings = asdict(job.settings) if job.settings is not None else None
    return {
        "description": res.description,
        "layer": job.layer,
        "recipe": res.recipe,
        "settings": settings,
        "seed": seed,
        "seconds": round(secs, 2),
        "images": images,
        "quality": {k: f.to_dict() for k, f in res.quality.items()},
        "details": res.details,
        "fingerprint": fp,
    }


def _document(
    loaded: LoadedRun,
    cfg: VisConfig,
    ctx: VisContext,
    layers: dict[str, list[str]],
    priors: dict[str, Any],
    command: list[str] | None,
    args: dict[str, Any] | None,
) -> dict[str, Any]:
    """vis.json before any method has run: what was run, on what, with which recipe."""
    return {
        "schema": 1,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": ["evaluate.py", "visualize", *(command or [])],
        "args": args if args is not None else cfg.to_dict(),
        "config": cfg.to_dict(),
        "seed": cfg.seed,
        "data": loaded.data_description,
        "color": ctx.color.to_dict(),
        **({"spectrum": ctx.recipe.spectrum.to_dict()} if ctx.recipe.spectrum is not None else {}),
        "layers": layers,
        **({"generators": {name: p.summary() for name, p in priors.items()}} if priors else {}),
        "models": {
            name: {"checkpoint": str(lm.path), "arch": lm.arch, "epoch": lm.epoch, "methods": {}}
            for name, lm in loaded.models.items()
        },
        "comparisons": {},
    }


def visualize(
    loaded: LoadedRun,
    cfg: VisConfig,
    out: str | Path,
    fresh: bool = False,
    progress: bool = True,
    command: list[str] | None = None,
    args: dict[str, Any] | None = None,
) -> VisRun:
    """Run ``cfg.methods`` on every model of a loaded run (:func:`topdown.checkpoint.load_run`); write PNGs, the
    stored results and ``vis.json`` under ``out``. ``fresh`` recomputes results even where stored ones match."""
    cfg.validate()
    console = Console(stderr=True, quiet=not progress)
    models, data_desc = loaded.models, loaded.data_description
    layers = model_layers(models, cfg.layers)
    device = torch.device(cfg.device)
    for lm in models.values():
        lm.net.to(device).eval()
    priors = load_priors(cfg, models, data_desc, device)  # before any work: a wrong file fails now
    ctx = build_context(cfg, loaded.data_module, device)
    ctx.nets, ctx.priors = {name: lm.net for name, lm in models.items()}, priors
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = PartStore(out)
    common = (source_fingerprint(*SOURCES), data_fingerprint(ctx, data_desc), cfg.shared())
    doc = _document(loaded, cfg, ctx, layers, priors, command, args)
    run = VisRun(doc)
    weights = {name: weights_sha256(lm.net) for name, lm in models.items()}
    for method_name in cfg.methods:
        method = METHODS[method_name]
        settings = cfg.settings(method_name)
        settings_dict = asdict(settings) if settings is not None else None
        panels: dict[str, dict[str, np.ndarray]] = {}
        for name, lm in models.items():
            lays = layers[name] if method.takes_layer else [None]
            for layer in lays:
                key = method_name if len(lays) == 1 else f"{method_name}:{layer}"
                extra = []
                if method.uses_generator and name in priors:
                    extra.append(priors[name].record["recipe"])
                if method.uses_other_nets:
                    extra.append(weights)
                fp = fingerprint(*common, weights[name], method_name, layer, settings_dict, *extra)
                job = Job(lm.net, layer, ctx, settings, name)
                entry, reused = store.cached(
                    name,
                    key,
                    fp,
                    partial(_compute_entry, method, job, key, fp, cfg.seed, out),
                    fresh,
                    usable=partial(_images_exist, out),
                )
                if entry is None:
                    console.print(f"[{name}] {key}: not applicable, skipped", markup=False)
                    continue
                (run.reused if reused else run.computed).append(f"{name}/{key}")
                panels.setdefault(key, {})[name] = _read_png(out / entry["images"][0])
                doc["models"][name]["methods"][key] = entry
                console.print(
                    _progress_line(name, key, entry, f"{name}/{key}" in run.reused), markup=False, soft_wrap=True
                )
                doc["summary"] = summary(doc)
                atomic_write_json(out / "vis.json", doc)
        for key, by_model in panels.items():
            if len(by_model) > 1:
                rel = f"compare/{key.replace(':', '_')}.png"
                save_png(side_by_side(list(by_model.items())), out / rel)
                doc["comparisons"][key] = {"images": [rel]}
    doc["summary"] = s = summary(doc)
    atomic_write_json(out / "vis.json", doc)
    console.print(
        f"{s['passed']}/{s['figures']} quality figures passed; computed {len(run.computed)} results, reused "
        f"{len(run.reused)}; results in {out / 'vis.json'}"
    )
    return run
