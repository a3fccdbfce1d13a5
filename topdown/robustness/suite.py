"""Run the whole evaluation for a set of models, part by part, resuming from what is already saved.

Usage from Python (the CLI in ``cli.py`` does the same from checkpoints)::

    from topdown.robustness import ModelEntry, SuiteConfig, evaluate_models
    report = evaluate_models([ModelEntry("baseline", net_a), ModelEntry("topdown", net_b)],
                             data.subset("test"), data.classes, SuiteConfig(subset=64), out="outputs/eval")
    report.results["models"]["topdown"]["sanity"]

Every (model, part) result is written atomically to ``<out>/parts`` as soon as it is done; a second run
with the same models, data and settings loads those parts instead of recomputing them.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..models import is_topdown
from .attacks import (
    AttackResult,
    AttackSpec,
    derive_seed,
    fool_model,
    input_gradients,
    median_distance,
    predict,
    prepare_model,
    resolve_device,
    run_attack,
)
from .config import SuiteConfig
from .corruptions import corruption_errors, run_corruption
from .perturbations import run_perturbation
from .results import SCHEMA_VERSION, PartStore, atomic_write_json, environment, fingerprint, jsonable, weights_sha256
from .results import write_csv as _write_csv
from .sanity import bits, distances, robust_matrix, run_checks, to_bits
from .scales import num_levels_of, scale_noise, scale_pgd

#: Bump when a change to the code changes what a part computes: saved parts of older code are then redone.
ALGORITHM_VERSION = 3


@dataclass
class ModelEntry:
    """A model to evaluate.

    Args:
        name: its key in the results (``baseline``, ``topdown`` ...).
        net: the network (taking images in [0, 1]); it is copied, never modified.
        identity: a hash that changes whenever the weights do (checkpoint SHA-256); computed from the
            weights if empty.
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


def stratified_subset(targets: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """``size`` indices drawn per class in proportion to the class's share (largest remainder), seeded;
    all indices when ``size`` is ``None`` or not smaller than the data. Sorted."""
    targets = np.asarray(targets)
    n = len(targets)
    if size is None or size >= n:
        return np.arange(n)
    classes, counts = np.unique(targets, return_counts=True)
    quota = counts * size / n
    take = np.floor(quota).astype(int)
    for k in np.argsort(-(quota - take), kind="stable")[: size - take.sum()]:
        take[k] += 1
    chosen = []
    for c, k in zip(classes, take):
        idx = np.flatnonzero(targets == c)
        chosen.extend(idx[np.random.default_rng(derive_seed(seed, "subset", int(c))).permutation(len(idx))[:k]])
    return np.sort(np.asarray(chosen, dtype=int))


class CachedSplit(Dataset):
    """Load (and, for procedural data, render) each test image once per run, whatever reads it.

    Images that are exact multiples of 1/255 (every decoded 8-bit image) are kept as uint8, a quarter of
    the memory of float32.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._items: dict[int, tuple[torch.Tensor, int]] = {}
        targets = getattr(dataset, "targets", None)
        self.targets = list(targets) if targets is not None else [int(dataset[i][1]) for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        i = int(i)
        if i not in self._items:
            x, y = self.dataset[i]
            q = (x * 255).round()
            self._items[i] = (q.to(torch.uint8) if torch.equal(q / 255, x) else x, int(y))
        x, y = self._items[i]
        return (x.float() / 255 if x.dtype == torch.uint8 else x), y


class _Progress:
    """A rich progress bar over all parts (plus one over the current part's images), or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
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
    if "most_harmful_level" in result:
        return f"most harmful level {result['most_harmful_level']} (factor 1/{result['most_harmful_factor']})"
    if (
        "accuracy" in result
        and isinstance(result["accuracy"], list)
        and result["accuracy"]
        and not isinstance(result["accuracy"][0], list)
    ):
        acc = result["accuracy"]
        return f"accuracy {acc[0]:.3f} -> {acc[-1]:.3f}"
    for key in ("top1", "auc", "nonzero_fraction"):
        if result.get(key) is not None:
            return f"{key} {result[key]:.3f}"
    return ""


@torch.no_grad()
def clean_metrics(
    net: nn.Module, dataset: Dataset, classes: list[str], batch_size: int, device: torch.device
) -> dict[str, Any]:
    """Clean top-1, top-5 (more than 5 classes), macro accuracy, per-class accuracy, ECE, NLL, confusion."""
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_calibration_error,
        multiclass_confusion_matrix,
    )

    start = time.perf_counter()
    logits, labels = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        logits.append(net(x.to(device)).float().cpu())
        labels.append(y)
    lg, y = torch.cat(logits), torch.cat(labels)
    k = len(classes)
    if lg.shape[1] != k:
        raise ValueError(f"the network has {lg.shape[1]} outputs but the data has {k} classes")
    per_class = multiclass_accuracy(lg, y, k, average=None)
    counts = torch.bincount(y, minlength=k)
    return {
        "split": "test",
        "n": len(y),
        "top1": float(multiclass_accuracy(lg, y, k, average="micro")),
        "top5": float(multiclass_accuracy(lg, y, k, top_k=5, average="micro")) if k > 5 else None,
        "macro_acc": float(multiclass_accuracy(lg, y, k, average="macro")),
        "per_class_acc": {c: (float(a) if n > 0 else None) for c, a, n in zip(classes, per_class, counts)},
        "ece": float(multiclass_calibration_error(lg, y, k, n_bins=15, norm="l1")),
        # mean top softmax probability: below top-1, the net is underconfident; above, overconfident
        "confidence": float(lg.softmax(1).amax(1).mean()),
        "nll": float(torch.nn.functional.cross_entropy(lg, y)),
        "confusion": multiclass_confusion_matrix(lg, y, k).tolist(),  # rows: true class, columns: predicted
        "classes": list(classes),
        "time_s": time.perf_counter() - start,
    }


def attack_record(res: AttackResult, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    rec = res.spec.record()
    rec.update(
        {
            "n": int(res.robust.shape[1]),
            "accuracy": res.accuracy,
            "robust": [to_bits(r) for r in res.robust],
            "distances": None
            if res.distances is None
            else [None if not math.isfinite(v) else float(v) for v in res.distances],
            "unverified": res.unverified,
            "time_s": res.time_s,
        }
    )
    if res.distances is not None:
        rec["median_distance"] = median_distance(res.distances)
    rec.update(extra or {})
    return rec


def attack_specs(cfg: SuiteConfig) -> list[AttackSpec]:
    """The gradient attacks ``cfg`` asks for, in running order."""
    a = cfg.attacks
    if a is None:
        return []
    specs = []
    if a.fgsm:
        specs.append(AttackSpec("fgsm", "fgsm", list(a.linf_epsilons), {"random_start": False}, cfg.seed))
    for name, eps in (("linf_pgd", a.linf_epsilons), ("l2_pgd", a.l2_epsilons)):
        p = getattr(a, name)
        if p is not None:
            specs.append(AttackSpec(name, name, list(eps), dict(vars(p)), cfg.seed))
    for name in ("deepfool", "fmn"):
        p = getattr(a, name)
        if p is not None:
            eps = a.l2_epsilons if p.norm == "l2" else a.linf_epsilons
            specs.append(AttackSpec(name, name, list(eps), dict(vars(p)), cfg.seed))
    if a.cw is not None:
        specs.append(AttackSpec("cw", "cw", list(a.l2_epsilons), dict(vars(a.cw)), cfg.seed))
    return specs


def worst_case(
    attacks: dict[str, dict[str, Any]], clean: np.ndarray, norm: str, epsilons: list[float]
) -> dict[str, Any] | None:
    """Per-example worst case over the white-box attacks of one norm: robust only if no attack breaks it."""
    used = [k for k, a in attacks.items() if a["norm"] == norm and a["kind"] in ("fixed", "minimal")]
    if not used:
        return None
    robust = np.tile(clean, (len(epsilons), 1))
    for k in used:
        a = attacks[k]
        if a["kind"] == "minimal":
            d = distances(a["distances"])
            robust &= np.stack([d > e for e in epsilons])
        else:
            r = robust_matrix(a)
            for i, e in enumerate(epsilons):
                if e in a["epsilons"]:
                    robust[i] &= r[a["epsilons"].index(e)]
    return {"epsilons": list(epsilons), "accuracy": robust.mean(axis=1).tolist(), "attacks": used}


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
        raise ValueError("no models to evaluate")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
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
        raise ValueError("test images must lie in [0, 1]")
    data_fp = fingerprint(data_info, len(test_set), positions)
    clean_fp = fingerprint(data_info, len(test_set))

    num_levels = next(
        (num_levels_of(m.net, 0) for m in models if is_topdown(m.net)), cfg.scales.num_levels if cfg.scales else 0
    )
    plan = _plan(cfg)
    bar = _Progress(progress, total=len(models) * len(plan))
    model_parts: dict[str, dict[str, Any]] = {}
    try:
        for entry in models:
            identity = entry.identity or weights_sha256(entry.net)
            net = prepare_model(entry.net, device)
            ctx = _Context(cfg, net, device, x, y, positions, num_levels_of(net, num_levels))
            parts: dict[str, Any] = {}
            for part, settings, compute in plan:
                fp = fingerprint(
                    SCHEMA_VERSION,
                    ALGORITHM_VERSION,
                    identity,
                    clean_fp if part == "clean" else data_fp,
                    part,
                    settings(ctx, parts),
                )
                result = None if fresh else store.load(entry.name, part, fp)
                if result is not None:
                    report.reused.append((entry.name, part))
                    bar.done(f"[{entry.name}] {part}: reused ({_summary(result)})")
                else:
                    if on_part is not None:
                        on_part(entry.name, part)
                    ctx.tick = bar.start(f"{entry.name}: {part}", len(x))
                    result = compute(ctx, parts, test_set, classes)
                    if result is None:  # not applicable (e.g. nothing to compare with)
                        bar.done(f"[{entry.name}] {part}: skipped")
                        continue
                    result = jsonable(result)
                    store.save(entry.name, part, fp, result)
                    report.computed.append((entry.name, part))
                    bar.done(f"[{entry.name}] {part}: {_summary(result)} ({result.get('time_s', 0):.1f} s)")
                parts[part] = result
            model_parts[entry.name] = parts
    finally:
        bar.stop()

    results = assemble(models, model_parts, cfg, data_info, positions, len(test_set), out)
    report.results = results
    atomic_write_json(out / "results.json", results)
    _write_csv(out / "results.csv", results)
    report.files = [out / "results.json", out / "results.csv"]
    if plots:
        from .plots import make_plots

        report.files += make_plots(results, out)
    return report


@dataclass
class _Context:
    cfg: SuiteConfig
    net: nn.Module
    device: torch.device
    x: torch.Tensor
    y: torch.Tensor
    positions: np.ndarray
    num_levels: int
    tick: Callable[[int], None] = lambda k: None
    _fmodel: Any = None

    @property
    def fmodel(self) -> Any:
        if self._fmodel is None:
            self._fmodel = fool_model(self.net, self.device)
        return self._fmodel


Settings = Callable[[_Context, dict[str, Any]], Any]
Compute = Callable[[_Context, dict[str, Any], Dataset, list[str]], dict[str, Any] | None]


def _plan(cfg: SuiteConfig) -> list[tuple[str, Settings, Compute]]:
    """(part name, its settings for the fingerprint, how to compute it), in running order."""
    bs = cfg.batch_size
    plan: list[tuple[str, Settings, Compute]] = []

    def clean(ctx: _Context, parts: dict[str, Any], ds: Dataset, classes: list[str]) -> dict[str, Any]:
        return clean_metrics(ctx.net, ds, classes, bs, ctx.device)

    def subset(ctx: _Context, parts: dict[str, Any], ds: Dataset, classes: list[str]) -> dict[str, Any]:
        start = time.perf_counter()
        grads, correct = input_gradients(ctx.net, ctx.x, ctx.y, bs, ctx.device)
        pred = predict(ctx.net, ctx.x, bs, ctx.device).argmax(1).numpy()
        return {
            "n": len(ctx.x),
            "indices": ctx.positions.tolist(),
            "accuracy": float(correct.mean()),
            "clean_correct": to_bits(pred == ctx.y.numpy()),
            "predictions": pred.tolist(),
            "gradient_l1": grads.tolist(),
            "nonzero_fraction": float((grads > 0).mean()),
            "gradient_loss": "cross-entropy",
            "time_s": time.perf_counter() - start,
        }

    plan.append(("clean", lambda c, p: {"batch_size": bs}, clean))
    plan.append(("subset", lambda c, p: {"batch_size": bs, "seed": cfg.seed, "subset": cfg.subset}, subset))

    for spec in attack_specs(cfg):

        def run(
            ctx: _Context, parts: dict[str, Any], ds: Dataset, classes: list[str], spec: AttackSpec = spec
        ) -> dict[str, Any]:
            res = run_attack(ctx.net, ctx.x, ctx.y, spec, ctx.device, bs, fmodel=ctx.fmodel, on_batch=ctx.tick)
            return attack_record(res)

        plan.append((spec.name, lambda c, p, spec=spec: {"spec": spec.record(), "batch_size": bs}, run))

    if cfg.attacks is not None and cfg.attacks.linf_pgd is not None and cfg.sanity.double_steps:

        def spec_2x(parts: dict[str, Any]) -> AttackSpec | None:
            base = parts.get("linf_pgd")
            if base is None:
                return None
            acc, eps, clean_acc = base["accuracy"], base["epsilons"], parts["subset"]["accuracy"]
            # the most informative eps: robust accuracy nearest half the clean accuracy (0 and 100 % say little)
            k = min(range(1, len(eps)), key=lambda i: (abs(acc[i] - clean_acc / 2), i)) if len(eps) > 1 else 0
            s = dict(base["settings"])
            s["steps"] = 2 * s["steps"]
            # only at that eps: eps = 0 is checked by linf_pgd itself
            return AttackSpec("linf_pgd_2x", "linf_pgd", [eps[k]], s, cfg.seed)

        def run_2x(ctx: _Context, parts: dict[str, Any], ds: Dataset, classes: list[str]) -> dict[str, Any] | None:
            spec = spec_2x(parts)
            if spec is None:
                return None
            res = run_attack(ctx.net, ctx.x, ctx.y, spec, ctx.device, bs, fmodel=ctx.fmodel, on_batch=ctx.tick)
            return attack_record(res, {"reference": "linf_pgd"})

        plan.append(("linf_pgd_2x", lambda c, p: {"spec": (s := spec_2x(p)) and s.record(), "batch_size": bs}, run_2x))

    if cfg.decision is not None:
        plan.append(
            (
                "decision",
                lambda c, p: {
                    "decision": vars(cfg.decision),
                    "seed": cfg.seed,
                    "l2": cfg.attacks.l2_epsilons if cfg.attacks else None,
                    "batch_size": bs,
                },
                _decision,
            )
        )

    if cfg.perturbations is not None:
        for name, levels in cfg.perturbations.levels.items():

            def pert(
                ctx: _Context,
                parts: dict[str, Any],
                ds: Dataset,
                classes: list[str],
                name: str = name,
                levels: list[float] = levels,
            ) -> dict[str, Any]:
                return run_perturbation(ctx.net, ctx.x, ctx.y, ctx.positions, name, levels, cfg.seed, ctx.device, bs)

            plan.append(
                (
                    f"perturbation:{name}",
                    lambda c, p, levels=levels: {"levels": levels, "seed": cfg.seed, "batch_size": bs},
                    pert,
                )
            )

    if cfg.scales is not None:
        sc = cfg.scales

        def noise(ctx: _Context, parts: dict[str, Any], ds: Dataset, classes: list[str]) -> dict[str, Any]:
            return scale_noise(
                ctx.net, ctx.x, ctx.y, ctx.positions, ctx.num_levels, sc.noise_sigmas, cfg.seed, ctx.device, bs
            )

        plan.append(
            (
                "scale_noise",
                lambda c, p: {"levels": c.num_levels, "sigmas": sc.noise_sigmas, "seed": cfg.seed, "batch_size": bs},
                noise,
            )
        )
        if sc.pgd_epsilons:

            def pgd(ctx: _Context, parts: dict[str, Any], ds: Dataset, classes: list[str]) -> dict[str, Any]:
                return scale_pgd(
                    ctx.net,
                    ctx.x,
                    ctx.y,
                    ctx.num_levels,
                    sc.pgd_epsilons,
                    sc.pgd_steps,
                    sc.pgd_rel_stepsize,
                    cfg.seed,
                    ctx.device,
                    bs,
                )

            plan.append(
                (
                    "scale_pgd",
                    lambda c, p: {
                        "levels": c.num_levels,
                        "eps": sc.pgd_epsilons,
                        "steps": sc.pgd_steps,
                        "rel": sc.pgd_rel_stepsize,
                        "seed": cfg.seed,
                        "batch_size": bs,
                    },
                    pgd,
                )
            )

    if cfg.corruptions is not None:
        cc = cfg.corruptions
        for name in cc.names:

            def corr(
                ctx: _Context, parts: dict[str, Any], ds: Dataset, classes: list[str], name: str = name
            ) -> dict[str, Any]:
                return run_corruption(
                    ctx.net, ctx.x, ctx.y, ctx.positions, name, cc.severities, cfg.seed, ctx.device, bs
                )

            plan.append(
                (
                    f"corruption:{name}",
                    lambda c, p: {"severities": cc.severities, "seed": cfg.seed, "batch_size": bs},
                    corr,
                )
            )
    return plan


def _decision(ctx: _Context, parts: dict[str, Any], ds: Dataset, classes: list[str]) -> dict[str, Any] | None:
    """The decision-based attack on a stratified part of the correctly classified images of the subset (a
    misclassified image has distance 0 for every attack and tells nothing), each started from a real image
    of another class that the model does not assign to the image's class."""
    cfg, dc = ctx.cfg, ctx.cfg.decision
    sub = parts["subset"]
    y = ctx.y.numpy()
    pred = np.asarray(sub["predictions"])
    correct = np.flatnonzero(bits(sub["clean_correct"]))
    pos = correct[stratified_subset(y[correct], dc.subset, derive_seed(cfg.seed, "decision"))]
    starts = np.full(len(pos), -1)
    for k, p in enumerate(pos):
        pool = np.flatnonzero((y != y[p]) & (pred != y[p]))
        if len(pool):
            rng = np.random.default_rng(derive_seed(cfg.seed, "decision-start", int(ctx.positions[p])))
            starts[k] = rng.choice(pool)
    keep = starts >= 0
    pos, starts = pos[keep], starts[keep]
    if not len(pos):
        return None
    eps = list(cfg.attacks.l2_epsilons) if cfg.attacks else [0.0, 0.25, 0.5, 1.0, 2.0]
    settings = (
        {
            "steps": dc.steps,
            "initial_gradient_eval_steps": dc.initial_gradient_eval_steps,
            "max_gradient_eval_steps": dc.max_gradient_eval_steps,
            "constraint": "l2",
        }
        if dc.method == "hsj"
        else {"steps": dc.steps}
    )
    spec = AttackSpec("decision", dc.method, eps, settings, cfg.seed)
    res = run_attack(
        ctx.net,
        ctx.x[pos],
        ctx.y[pos],
        spec,
        ctx.device,
        ctx.cfg.batch_size,
        starting_points=ctx.x[starts],
        fmodel=ctx.fmodel,
        on_batch=ctx.tick,
    )
    dist, unverified, elapsed = res.distances, res.unverified, res.time_s
    robust = np.stack([dist > e for e in eps])
    rec = spec.record()
    rec.update(
        {
            "n": len(pos),
            "positions": pos.tolist(),
            "starting_points": starts.tolist(),
            "accuracy": robust.mean(axis=1).tolist(),
            "robust": [to_bits(r) for r in robust],
            "distances": [None if not math.isfinite(v) else float(v) for v in dist],
            "median_distance": median_distance(dist),
            "unverified": unverified,
            "time_s": elapsed,
        }
    )
    return rec


def assemble(
    models: list[ModelEntry],
    model_parts: dict[str, dict[str, Any]],
    cfg: SuiteConfig,
    data_info: dict[str, Any],
    positions: np.ndarray,
    n_test: int,
    out: Path,
) -> dict[str, Any]:
    """results.json's content from every model's parts (see SCHEMA.md)."""
    reference = next((m.name for m in models if not is_topdown(m.net)), models[0].name)
    res_models: dict[str, Any] = {}
    for entry in models:
        parts = model_parts[entry.name]
        attacks = {k: v for k, v in parts.items() if isinstance(v, dict) and v.get("kind") in ("fixed", "minimal")}
        clean_sub = bits(parts["subset"]["clean_correct"]) if "subset" in parts else np.zeros(0, dtype=bool)
        worst = {}
        if cfg.attacks is not None:
            for norm, eps in (("linf", cfg.attacks.linf_epsilons), ("l2", cfg.attacks.l2_epsilons)):
                w = worst_case(attacks, clean_sub, norm, list(eps))
                if w:
                    worst[norm] = w
        checks = run_checks(parts, cfg.sanity.tolerance, cfg.sanity.min_nonzero_gradients)
        failed = [k for k, c in checks.items() if c["passed"] is False]
        m: dict[str, Any] = {
            "checkpoint": entry.info,
            "architecture": type(entry.net).__name__,
            "is_topdown": is_topdown(entry.net),
            "clean": parts.get("clean"),
            "subset": parts.get("subset"),
            "attacks": attacks,
            "decision": parts.get("decision"),
            "worst_case": worst,
            "perturbations": {k.split(":", 1)[1]: v for k, v in parts.items() if k.startswith("perturbation:")},
            "scales": {k.split("_", 1)[1]: v for k, v in parts.items() if k in ("scale_noise", "scale_pgd")},
            "corruptions": {
                "per_corruption": {k.split(":", 1)[1]: v for k, v in parts.items() if k.startswith("corruption:")}
            },
            "sanity": checks,
            "flagged": bool(failed),
            "failed_checks": failed,
            "time_s": float(sum(v.get("time_s", 0) or 0 for v in parts.values() if isinstance(v, dict))),
        }
        res_models[entry.name] = m
    # mCE against the reference, on the same images
    with_corr = {k: m for k, m in res_models.items() if m["corruptions"]["per_corruption"]}
    if reference in with_corr:
        errors = {
            k: {c: r["error"] for c, r in m["corruptions"]["per_corruption"].items()} for k, m in with_corr.items()
        }
        clean_err = {k: 1 - m["subset"]["accuracy"] for k, m in with_corr.items()}
        for k, summary in corruption_errors(errors, clean_err, reference).items():
            res_models[k]["corruptions"].update(summary)
            res_models[k]["corruptions"]["clean_accuracy"] = 1 - clean_err[k]
    return {
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "suite": cfg.to_dict(),
        "data": {
            "description": data_info,
            "split": "test",
            "n_test": n_test,
            "subset_size": len(positions),
            "subset_indices": positions.tolist(),
            "subset_seed": cfg.seed,
        },
        "reference_model": reference,
        "models": res_models,
        "parts_dir": str(out / "parts"),
    }
