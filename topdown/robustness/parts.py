"""The suite's parts, each one declaration: a name, a settings object, and a compute function that receives
exactly that object.

A part's fingerprint (what decides whether a saved result is reused) is a hash of its settings object, so
whatever compute reads is in the fingerprint by construction. Parts that depend on earlier parts (the 2x-steps
PGD rerun picks its eps from PGD's curve; AutoAttack attacks the images the earlier attacks left robust)
declare a ``derive`` function instead of fixed settings: it reads the earlier results from the context and
returns the settings object, which is then fingerprinted and handed to compute the same way.

:func:`plan` turns a :class:`~.config.SuiteConfig` into the ordered list of parts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.subsets import stratified_subset
from ..metrics import clean_metrics
from ..seeds import derive_seed
from .attacks import AttackResult, AttackSpec, fool_model, input_gradients, median_distance, predict, run_attack
from .autoattack import AutoAttackRun, library_version, run_autoattack
from .config import AutoAttackBudget, AutoAttackConfig, DecisionConfig, SuiteConfig
from .corruptions import run_corruption
from .decode import PartResults, bits, part_key, robust_before, to_bits
from .perturbations import run_perturbation
from .scales import scale_noise, scale_pgd
from .sweep import Sweep


@dataclass
class Context:
    """What every part computes on: one prepared model, the attacked images, and the parts done so far."""

    net: nn.Module
    device: torch.device
    test_set: Dataset  # the whole test split (clean metrics)
    classes: list[str]
    x: torch.Tensor  # the attacked subset, (N, C, H, W) in [0, 1]
    y: torch.Tensor
    positions: np.ndarray  # test-split indices of x
    num_levels: int  # pyramid levels (the top-down net's own; the image bands of a baseline)
    parts: PartResults = field(default_factory=PartResults)  # finished parts of this model, in running order
    tick: Callable[[int], None] = lambda k: None  # progress: k more images done
    _fmodel: Any = None

    @property
    def fmodel(self) -> Any:
        if self._fmodel is None:
            self._fmodel = fool_model(self.net, self.device)
        return self._fmodel

    def sweep(self, batch_size: int) -> Sweep:
        """The model and the attacked images, for a sweep in batches of ``batch_size``."""
        return Sweep(self.net, self.x, self.y, self.positions, self.device, batch_size)


@dataclass(frozen=True)
class Part:
    """One unit of the suite, computed and saved on its own.

    Args:
        section: what it is part of (one of :data:`~.decode.SECTIONS`: ``attack``, ``perturbation``, ``scale`` ...).
        name: its name within the section (``fgsm``, ``gaussian_noise``, ``noise`` ...).
        compute: ``compute(ctx, settings) -> result`` (``None``: not applicable, nothing saved).
        settings: the settings object compute receives (a dataclass); fingerprinted.
        derive: instead of ``settings``: ``derive(ctx) -> settings`` from earlier parts (``None``: skip).
    """

    section: str
    name: str
    compute: Callable[[Context, Any], dict[str, Any] | None]
    settings: Any = None
    derive: Callable[[Context], Any] | None = None

    @property
    def key(self) -> str:
        """Its key in ``parts/`` and results.json (``perturbation:gaussian_noise``, ``scale_noise``, ``fgsm``)."""
        return part_key(self.section, self.name)

    def settings_for(self, ctx: Context) -> Any:
        return self.derive(ctx) if self.derive is not None else self.settings


def settings_record(settings: Any) -> Any:
    """The settings as plain data, for the fingerprint."""
    return asdict(settings) if is_dataclass(settings) else settings


# -- settings objects ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Batched:
    batch_size: int


@dataclass(frozen=True)
class SubsetSettings:
    batch_size: int
    seed: int
    subset: int | None


@dataclass(frozen=True)
class AttackSettings:
    spec: AttackSpec
    batch_size: int
    reference: str | None = None  # the attack a rerun checks (``linf_pgd_2x``: ``linf_pgd``)


@dataclass(frozen=True)
class DecisionSettings:
    decision: DecisionConfig
    seed: int
    l2: list[float] | None
    batch_size: int


@dataclass(frozen=True)
class PerturbationSettings:
    name: str
    levels: list[float]
    seed: int
    batch_size: int


@dataclass(frozen=True)
class ScaleNoiseSettings:
    levels: int
    sigmas: list[float]
    seed: int
    batch_size: int


@dataclass(frozen=True)
class ScalePGDSettings:
    levels: int
    eps: list[float]
    steps: int
    rel: float
    seed: int
    batch_size: int


@dataclass(frozen=True)
class CorruptionSettings:
    name: str
    severities: list[int]
    seed: int
    batch_size: int


@dataclass(frozen=True)
class AutoAttackSettings:
    run: AutoAttackRun
    pool: list[int]  # positions (into the subset) of AutoAttack's images at this budget
    attacked: list[int]  # those of them this attack is run on (still robust before it)
    seed: int
    batch_size: int


# -- compute functions -----------------------------------------------------------------------------------------
def compute_clean(ctx: Context, s: Batched) -> dict[str, Any]:
    return clean_metrics(ctx.net, ctx.test_set, ctx.classes, s.batch_size, ctx.device)


def compute_subset(ctx: Context, s: SubsetSettings) -> dict[str, Any]:
    start = time.perf_counter()
    grads, correct = input_gradients(ctx.net, ctx.x, ctx.y, s.batch_size, ctx.device)
    pred = predict(ctx.net, ctx.x, s.batch_size, ctx.device).argmax(1).numpy()
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


def compute_attack(ctx: Context, s: AttackSettings) -> dict[str, Any]:
    res = run_attack(ctx.net, ctx.x, ctx.y, s.spec, ctx.device, s.batch_size, fmodel=ctx.fmodel, on_batch=ctx.tick)
    return attack_record(res, {"reference": s.reference} if s.reference else None)


def derive_double_steps(ctx: Context, seed: int, batch_size: int) -> AttackSettings | None:
    """Linf PGD with twice the steps, at the eps where PGD's robust accuracy is nearest half the clean
    accuracy (0 and 100 % say little; eps = 0 is checked by linf_pgd itself)."""
    base = ctx.parts.get("linf_pgd")
    if base is None:
        return None
    acc, eps, clean_acc = base["accuracy"], base["epsilons"], ctx.parts["subset"]["accuracy"]
    k = min(range(1, len(eps)), key=lambda i: (abs(acc[i] - clean_acc / 2), i)) if len(eps) > 1 else 0
    settings = dict(base["settings"])
    settings["steps"] = 2 * settings["steps"]
    return AttackSettings(AttackSpec("linf_pgd_2x", "linf_pgd", [eps[k]], settings, seed), batch_size, "linf_pgd")


def compute_decision(ctx: Context, s: DecisionSettings) -> dict[str, Any] | None:
    """The decision-based attack on a stratified part of the correctly classified images of the subset (a
    misclassified image has distance 0 for every attack and tells nothing), each started from a real image
    of another class that the model does not assign to the image's class."""
    dc = s.decision
    sub = ctx.parts["subset"]
    y = ctx.y.numpy()
    pred = np.asarray(sub["predictions"])
    correct = np.flatnonzero(bits(sub["clean_correct"]))
    pos = correct[stratified_subset(y[correct], dc.subset, derive_seed(s.seed, "decision"))]
    starts = np.full(len(pos), -1)
    for k, p in enumerate(pos):
        pool = np.flatnonzero((y != y[p]) & (pred != y[p]))
        if len(pool):
            rng = np.random.default_rng(derive_seed(s.seed, "decision-start", int(ctx.positions[p])))
            starts[k] = rng.choice(pool)
    keep = starts >= 0
    pos, starts = pos[keep], starts[keep]
    if not len(pos):
        return None
    eps = list(s.l2) if s.l2 is not None else [0.0, 0.25, 0.5, 1.0, 2.0]
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
    spec = AttackSpec("decision", dc.method, eps, settings, s.seed)
    res = run_attack(
        ctx.net,
        ctx.x[pos],
        ctx.y[pos],
        spec,
        ctx.device,
        s.batch_size,
        starting_points=ctx.x[starts],
        fmodel=ctx.fmodel,
        on_batch=ctx.tick,
    )
    return attack_record(res, {"positions": pos.tolist(), "starting_points": starts.tolist()})


def compute_perturbation(ctx: Context, s: PerturbationSettings) -> dict[str, Any]:
    return run_perturbation(ctx.sweep(s.batch_size), s.name, s.levels, s.seed)


def compute_scale_noise(ctx: Context, s: ScaleNoiseSettings) -> dict[str, Any]:
    return scale_noise(ctx.sweep(s.batch_size), s.levels, s.sigmas, s.seed)


def compute_scale_pgd(ctx: Context, s: ScalePGDSettings) -> dict[str, Any]:
    return scale_pgd(ctx.sweep(s.batch_size), s.levels, s.eps, s.steps, s.rel, s.seed)


def compute_corruption(ctx: Context, s: CorruptionSettings) -> dict[str, Any]:
    return run_corruption(ctx.sweep(s.batch_size), s.name, s.severities, s.seed)


def compute_autoattack(ctx: Context, s: AutoAttackSettings) -> dict[str, Any]:
    attacked = np.asarray(s.attacked, dtype=int)
    broken, unverified, seconds = (
        run_autoattack(
            ctx.net,
            ctx.x[attacked],
            ctx.y[attacked],
            s.run,
            s.seed,
            ctx.device,
            s.batch_size,
            len(ctx.classes),
            on_batch=ctx.tick,
        )
        if len(attacked)
        else (np.zeros(0, dtype=bool), 0, 0.0)
    )
    return {
        "kind": "autoattack",
        "attack": s.run.attack,
        "norm": s.run.norm,
        "eps": s.run.eps,
        "settings": asdict(s.run),
        "seed": s.seed,
        "library": library_version(),
        "pool": list(s.pool),
        "attacked": attacked.tolist(),
        "broken": to_bits(broken),
        "n_broken": int(broken.sum()),
        "unverified": unverified,
        "time_s": seconds,
    }


def autoattack_name(norm: str, eps: float, attack: str) -> str:
    """An AutoAttack part's name in its section (``linf:0.00784314:apgd-ce``)."""
    return f"{norm}:{eps:.6g}:{attack}"


def derive_autoattack(
    ctx: Context, aa: AutoAttackConfig, budget: AutoAttackBudget, attack: str, seed: int, batch_size: int
) -> AutoAttackSettings:
    """The images this AutoAttack attack runs on: those of AutoAttack's subset that are classified correctly
    and that every earlier attack at this (norm, eps) left robust (with ``standalone``: every earlier attack of
    AutoAttack's at this budget)."""
    n = len(ctx.x)
    chosen = np.zeros(n, dtype=bool)
    chosen[stratified_subset(ctx.y.numpy(), budget.subset, derive_seed(seed, "autoattack"))] = True
    earlier = (
        {k: v for k, v in ctx.parts.keyed("autoattack").items() if v.get("eps") == budget.eps}
        if aa.standalone
        else ctx.parts
    )
    robust = robust_before(earlier, bits(ctx.parts["subset"]["clean_correct"]), budget.norm, budget.eps)
    run = AutoAttackRun(
        attack,
        budget.norm,
        budget.eps,
        apgd_steps=aa.apgd_steps,
        fab_steps=aa.fab_steps,
        square_queries=aa.square_queries,
        target_classes=aa.target_classes,
    )
    return AutoAttackSettings(
        run, np.flatnonzero(chosen).tolist(), np.flatnonzero(chosen & robust).tolist(), seed, batch_size
    )


# -- the plan ----------------------------------------------------------------------------------------------------
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


def _derive(fn: Callable[..., Any], *args: Any) -> Callable[[Context], Any]:
    """``derive(ctx)`` calling ``fn(ctx, *args)``: a part's settings read from earlier parts."""

    def derive(ctx: Context) -> Any:
        return fn(ctx, *args)

    return derive


def _sweep_eps(cfg: SuiteConfig, budget: AutoAttackBudget) -> float:
    """The budget's eps as the attack sweep writes it (so the worst case finds it), else as given."""
    sweep = getattr(cfg.attacks, f"{budget.norm}_epsilons", []) if cfg.attacks is not None else []
    return next((float(e) for e in sweep if abs(e - budget.eps) <= 1e-12), float(budget.eps))


def plan(cfg: SuiteConfig) -> list[Part]:
    """Every part ``cfg`` asks for, in running order."""
    bs, seed = cfg.batch_size, cfg.seed
    parts = [
        Part("clean", "clean", compute_clean, Batched(bs)),
        Part("subset", "subset", compute_subset, SubsetSettings(bs, seed, cfg.subset)),
    ]
    parts += [Part("attack", spec.name, compute_attack, AttackSettings(spec, bs)) for spec in attack_specs(cfg)]
    if cfg.attacks is not None and cfg.attacks.linf_pgd is not None and cfg.sanity.double_steps:
        parts.append(Part("attack", "linf_pgd_2x", compute_attack, derive=_derive(derive_double_steps, seed, bs)))
    if cfg.autoattack is not None:
        aa = cfg.autoattack
        for budget in aa.budgets:
            b = AutoAttackBudget(budget.norm, _sweep_eps(cfg, budget), list(budget.attacks), budget.subset)
            for attack in b.attacks:
                name = autoattack_name(b.norm, b.eps, attack)
                derive = _derive(derive_autoattack, aa, b, attack, seed, bs)
                parts.append(Part("autoattack", name, compute_autoattack, derive=derive))
    if cfg.decision is not None:
        l2 = list(cfg.attacks.l2_epsilons) if cfg.attacks else None
        parts.append(Part("decision", "decision", compute_decision, DecisionSettings(cfg.decision, seed, l2, bs)))
    if cfg.perturbations is not None:
        for name, levels in cfg.perturbations.levels.items():
            settings = PerturbationSettings(name, list(levels), seed, bs)
            parts.append(Part("perturbation", name, compute_perturbation, settings))
    if cfg.scales is not None:
        sc = cfg.scales
        noise = _derive(_scale_noise_settings, sc.noise_sigmas, seed, bs)
        parts.append(Part("scale", "noise", compute_scale_noise, derive=noise))
        if sc.pgd_epsilons:
            pgd = (sc.pgd_epsilons, sc.pgd_steps, sc.pgd_rel_stepsize, seed, bs)
            parts.append(Part("scale", "pgd", compute_scale_pgd, derive=_derive(_scale_pgd_settings, *pgd)))
    if cfg.corruptions is not None:
        cc = cfg.corruptions
        for name in cc.names:
            settings = CorruptionSettings(name, list(cc.severities), seed, bs)
            parts.append(Part("corruption", name, compute_corruption, settings))
    return parts


def _scale_noise_settings(ctx: Context, sigmas: list[float], seed: int, bs: int) -> ScaleNoiseSettings:
    return ScaleNoiseSettings(ctx.num_levels, list(sigmas), seed, bs)


def _scale_pgd_settings(ctx: Context, eps: list[float], steps: int, rel: float, seed: int, bs: int) -> ScalePGDSettings:
    return ScalePGDSettings(ctx.num_levels, list(eps), steps, rel, seed, bs)
