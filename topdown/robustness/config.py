"""The evaluation suite's settings: typed dataclasses that jsonargparse turns into CLI options and YAML.

``configs/eval/quick.yaml`` and ``configs/eval/full.yaml`` fill these in. A section set to ``null`` is
skipped (``--attacks.cw null``). Every epsilon is in pixel units of images in [0, 1]. Every random draw
is seeded from ``SuiteConfig.seed`` and the name of what draws it, so a resumed run and a fresh run see
the same noise, the same starting points and the same PGD restarts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import ConfigError
from .corruptions import CORRUPTIONS
from .decode import AA_STANDARD
from .perturbations import PERTURBATIONS


def _linf_eps() -> list[float]:
    return [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255]


def _l2_eps() -> list[float]:
    return [0.0, 0.125, 0.25, 0.5, 1.0]


@dataclass
class PGDConfig:
    """Projected gradient descent (foolbox ``LinfPGD`` / ``L2PGD``).

    Args:
        steps: gradient steps per restart.
        restarts: independent random starts; an example counts as broken if any restart breaks it.
        rel_stepsize: step size as a fraction of epsilon (foolbox's ``rel_stepsize``).
        random_start: start from a uniform point in the epsilon ball (Madry et al.).
    """

    steps: int = 10
    restarts: int = 1
    rel_stepsize: float = 0.25
    random_start: bool = True


@dataclass
class DeepFoolConfig:
    """DeepFool, a minimum-norm attack: one run gives the whole accuracy-versus-epsilon curve.

    Args:
        norm: ``l2`` or ``linf``.
        steps: maximum linearisation steps.
        candidates: classes considered per step (capped at the number of classes).
        overshoot: how far past the linearised boundary each step goes.
    """

    norm: Literal["l2", "linf"] = "l2"
    steps: int = 50
    candidates: int = 10
    overshoot: float = 0.02


@dataclass
class FMNConfig:
    """Fast Minimum-Norm attack (Pintor et al. 2021).

    Args:
        norm: ``l2`` or ``linf``.
        steps: optimisation steps.
        max_stepsize: initial step size (foolbox's ``max_stepsize``).
        gamma: epsilon-update rate.
        binary_search_steps: steps of the search for the initial boundary point.
    """

    norm: Literal["l2", "linf"] = "linf"
    steps: int = 50
    max_stepsize: float = 1.0
    gamma: float = 0.05
    binary_search_steps: int = 10


@dataclass
class CWConfig:
    """Carlini & Wagner L2 (optional, slow).

    Args:
        binary_search_steps: searches over the trade-off constant.
        steps: optimisation steps per search step.
        stepsize: Adam step size.
        initial_const: the first trade-off constant.
        confidence: logit margin required of an adversarial.
    """

    binary_search_steps: int = 5
    steps: int = 100
    stepsize: float = 0.01
    initial_const: float = 1e-3
    confidence: float = 0.0


@dataclass
class AttackSuite:
    """Gradient (white-box) attacks, all untargeted, on the seeded evaluation subset.

    Args:
        linf_epsilons: the Linf sweep (FGSM, Linf PGD, Linf minimum-norm curves); must start at 0.
        l2_epsilons: the L2 sweep (L2 PGD, L2 minimum-norm curves); must start at 0.
        fgsm: run FGSM (Linf, no random start).
        linf_pgd: Linf PGD settings, or null to skip.
        l2_pgd: L2 PGD settings, or null to skip.
        deepfool: DeepFool settings, or null.
        fmn: FMN settings, or null.
        cw: Carlini-Wagner L2 settings, or null (the default: slow).
    """

    linf_epsilons: list[float] = field(default_factory=_linf_eps)
    l2_epsilons: list[float] = field(default_factory=_l2_eps)
    fgsm: bool = True
    linf_pgd: PGDConfig | None = field(default_factory=PGDConfig)
    l2_pgd: PGDConfig | None = field(default_factory=PGDConfig)
    deepfool: DeepFoolConfig | None = field(default_factory=DeepFoolConfig)
    fmn: FMNConfig | None = field(default_factory=FMNConfig)
    cw: CWConfig | None = None


def _standard() -> list[str]:
    return list(AA_STANDARD)


@dataclass
class AutoAttackBudget:
    """One AutoAttack budget.

    Args:
        norm: ``linf`` or ``l2``.
        eps: the budget (pixel units of images in [0, 1]); in ``attacks.<norm>_epsilons`` when that sweep runs,
            so the per-image worst case at that eps includes AutoAttack.
        attacks: which of AutoAttack's attacks to run, in its order: ``[apgd-ce, apgd-t, fab-t, square]`` is
            its "standard" version.
        subset: a seeded, stratified part of the attacked images to run it on (null: all of them). Budgets of
            one size share their images.
    """

    norm: Literal["l2", "linf"] = "linf"
    eps: float = 2 / 255
    attacks: list[str] = field(default_factory=_standard)
    subset: int | None = None


def _budgets() -> list[AutoAttackBudget]:
    return [AutoAttackBudget("linf", 2 / 255, ["apgd-ce", "apgd-t"])]


@dataclass
class AutoAttackConfig:
    """AutoAttack (Croce & Hein 2020, the authors' ``pyautoattack``), one resumable part per attack and budget.

    Each attack runs only on the images still robust at its budget: by default robust to every attack that ran
    before it, the suite's own included, so the worst case is AutoAttack's at a fraction of the cost (Square's
    5000 queries then go only to the images everything else left robust).

    Args:
        budgets: the (norm, eps, attacks, subset) to run.
        standalone: run AutoAttack's own cascade from the correctly classified images, ignoring the suite's
            other attacks (its stand-alone robust accuracy, at more cost).
        apgd_steps: APGD iterations (standard: 100).
        fab_steps: FAB iterations (standard: 100).
        square_queries: Square's queries per image (standard: 5000).
        target_classes: APGD-T's and FAB-T's target classes (standard: 9; capped at the classes minus one).
    """

    budgets: list[AutoAttackBudget] = field(default_factory=_budgets)
    standalone: bool = False
    apgd_steps: int = 100
    fab_steps: int = 100
    square_queries: int = 5000
    target_classes: int = 9


@dataclass
class DecisionConfig:
    """A decision-based attack on a small subset, started from real images of other classes.

    Args:
        method: ``hsj`` (HopSkipJump, L2) or ``boundary`` (Boundary attack).
        subset: images attacked (a seeded stratified part of the correctly classified images of the subset).
        steps: attack iterations.
        initial_gradient_eval_steps: HopSkipJump's first gradient-estimation budget.
        max_gradient_eval_steps: HopSkipJump's largest gradient-estimation budget.
    """

    method: Literal["hsj", "boundary"] = "hsj"
    subset: int = 16
    steps: int = 10
    initial_gradient_eval_steps: int = 50
    max_gradient_eval_steps: int = 200


def _perturbation_levels() -> dict[str, list[float]]:
    return {
        "gaussian_noise": [0.0, 0.02, 0.04, 0.08, 0.12, 0.16, 0.24, 0.32],
        "uniform_noise": [0.0, 0.04, 0.08, 0.12, 0.2, 0.3, 0.4, 0.55],
        "salt_and_pepper": [0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.25],
        "gaussian_blur": [0.0, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0],
        "contrast": [0.0, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9],
        "shift": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        "rotation": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
    }


@dataclass
class PerturbationSuite:
    """The reference paper's perturbations, each swept from its identity (level 0) upwards.

    Args:
        levels: perturbation name -> increasing levels starting at 0. Gaussian noise: std; uniform noise:
            half-width; salt and pepper: fraction of pixels replaced; Gaussian blur: sigma in pixels of a
            32 px image (scaled with the image size); contrast: blend weight towards mid-grey; shift:
            pixels of a 32 px image; rotation: degrees.
    """

    levels: dict[str, list[float]] = field(default_factory=_perturbation_levels)


@dataclass
class ScaleSuite:
    """Per-scale ablation: a perturbation of one pyramid level (top-down) or one image band (baseline).

    Args:
        num_levels: pyramid levels for a suite without a top-down model (otherwise the top-down net's).
        noise_sigmas: std of the Gaussian noise added to one level.
        pgd_epsilons: Linf budgets of a PGD attack on one level (empty: skip).
        pgd_steps: PGD steps.
        pgd_rel_stepsize: PGD step as a fraction of epsilon.
    """

    num_levels: int = 3
    noise_sigmas: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2])
    pgd_epsilons: list[float] = field(default_factory=lambda: [4 / 255])
    pgd_steps: int = 10
    pgd_rel_stepsize: float = 0.25


@dataclass
class CorruptionSuite:
    """Common corruptions (Hendrycks & Dietterich 2019), 5 fixed severities each, seeded per image.

    Args:
        names: corruptions to apply (see ``topdown.robustness.corruptions.CORRUPTIONS``).
        severities: which of the severities 1-5 to run.
    """

    names: list[str] = field(
        default_factory=lambda: [
            "gaussian_noise",
            "shot_noise",
            "impulse_noise",
            "defocus_blur",
            "gaussian_blur",
            "motion_blur",
            "jpeg",
            "contrast",
            "brightness",
            "pixelate",
        ]
    )
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])


@dataclass
class SanityConfig:
    """Thresholds of the gradient-masking checks (Carlini et al. 2019); see ``sanity.py``.

    Args:
        tolerance: allowed slack of the accuracy comparisons (0.01 = one point). On a subset of n images
            the slack is never below one image, ``max(tolerance, 1 / n)``.
        min_nonzero_gradients: share of samples whose input gradient must be non-zero.
        double_steps: rerun Linf PGD with twice the steps to check convergence.
    """

    tolerance: float = 0.01
    min_nonzero_gradients: float = 0.99
    double_steps: bool = True


@dataclass
class SuiteConfig:
    """Everything one evaluation run does.

    Args:
        subset: images of the test split to attack (seeded, stratified by class); null for all. Clean
            metrics always use the whole test split.
        seed: seeds the subset and every random draw of every attack and perturbation.
        batch_size: images per forward pass / attack batch.
        device: ``cpu``, ``cuda``, ``cuda:1`` ... or ``auto`` (CUDA when available).
        attacks: gradient attacks (null: skip).
        autoattack: AutoAttack (null: skip).
        decision: decision-based sanity attack (null: skip).
        perturbations: the reference paper's perturbations (null: skip).
        scales: per-scale ablation (null: skip).
        corruptions: common corruptions (null: skip).
        sanity: sanity-check thresholds.
    """

    subset: int | None = 128
    seed: int = 0
    batch_size: int = 128
    device: str = "cpu"
    attacks: AttackSuite | None = field(default_factory=AttackSuite)
    autoattack: AutoAttackConfig | None = field(default_factory=AutoAttackConfig)
    decision: DecisionConfig | None = field(default_factory=DecisionConfig)
    perturbations: PerturbationSuite | None = field(default_factory=PerturbationSuite)
    scales: ScaleSuite | None = field(default_factory=ScaleSuite)
    corruptions: CorruptionSuite | None = field(default_factory=CorruptionSuite)
    sanity: SanityConfig = field(default_factory=SanityConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Raise ``ValueError`` for settings that would give untrustworthy numbers."""
        if self.subset is not None and self.subset < 1:
            raise ConfigError(f"subset must be >= 1 or null, got {self.subset}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        a = self.attacks
        if a is not None:
            for name in ("linf_epsilons", "l2_epsilons"):
                eps = getattr(a, name)
                if not eps or eps[0] != 0:
                    raise ConfigError(f"attacks.{name} must start at 0 (eps = 0 must equal clean accuracy), got {eps}")
                if any(e2 <= e1 for e1, e2 in zip(eps, eps[1:])):
                    raise ConfigError(f"attacks.{name} must increase strictly, got {eps}")
            for name in ("deepfool", "fmn"):
                cfg = getattr(a, name)
                if cfg is not None and cfg.norm not in ("l2", "linf"):
                    raise ConfigError(f"attacks.{name}.norm must be 'l2' or 'linf', got {cfg.norm!r}")
            for name in ("linf_pgd", "l2_pgd"):
                cfg = getattr(a, name)
                if cfg is not None and (cfg.steps < 1 or cfg.restarts < 1):
                    raise ConfigError(f"attacks.{name}: steps and restarts must be >= 1")
        if self.autoattack is not None:
            self._validate_autoattack(self.autoattack)
        if self.decision is not None and self.decision.method not in ("hsj", "boundary"):
            raise ConfigError(f"decision.method must be 'hsj' or 'boundary', got {self.decision.method!r}")
        if self.perturbations is not None:
            for name, levels in self.perturbations.levels.items():
                if name not in PERTURBATIONS:
                    raise ConfigError(
                        f"perturbations.levels: unknown perturbation {name!r}; choose from {sorted(PERTURBATIONS)}"
                    )
                if not levels or levels[0] != 0 or any(b <= a for a, b in zip(levels, levels[1:])):
                    raise ConfigError(f"perturbations.levels.{name} must start at 0 and increase, got {levels}")
        if self.corruptions is not None:
            unknown = [n for n in self.corruptions.names if n not in CORRUPTIONS]
            if unknown:
                raise ConfigError(f"corruptions.names: unknown {unknown}; choose from {sorted(CORRUPTIONS)}")
            bad = [s for s in self.corruptions.severities if s not in (1, 2, 3, 4, 5)]
            if bad:
                raise ConfigError(f"corruptions.severities must be in 1..5, got {bad}")
        if self.scales is not None and self.scales.num_levels < 2:
            raise ConfigError(f"scales.num_levels must be >= 2, got {self.scales.num_levels}")

    def _validate_autoattack(self, aa: AutoAttackConfig) -> None:
        for key in ("apgd_steps", "fab_steps", "square_queries", "target_classes"):
            if getattr(aa, key) < 1:
                raise ConfigError(f"autoattack.{key} must be >= 1, got {getattr(aa, key)}")
        seen = set()
        for i, b in enumerate(aa.budgets):
            key = f"autoattack.budgets[{i}]"
            if b.subset is not None and b.subset < 1:
                raise ConfigError(f"{key}.subset must be >= 1 or null, got {b.subset}")
            if b.norm not in ("linf", "l2"):
                raise ConfigError(f"{key}.norm must be 'linf' or 'l2', got {b.norm!r}")
            if not (isinstance(b.eps, (int, float)) and 0 < b.eps <= (1 if b.norm == "linf" else 1e3)):
                raise ConfigError(f"{key}.eps must be > 0 (and <= 1 for linf), got {b.eps!r}")
            unknown = [a for a in b.attacks if a not in AA_STANDARD]
            if unknown or not b.attacks:
                raise ConfigError(
                    f"{key}.attacks: unknown attack(s) {unknown or b.attacks}; choose from {list(AA_STANDARD)}"
                )
            if list(b.attacks) != [a for a in AA_STANDARD if a in b.attacks]:
                raise ConfigError(f"{key}.attacks must follow AutoAttack's order {list(AA_STANDARD)}, got {b.attacks}")
            if (b.norm, b.eps) in seen:
                raise ConfigError(f"{key}: budget {b.norm} eps={b.eps:g} is given twice")
            seen.add((b.norm, b.eps))
            sweep = getattr(self.attacks, f"{b.norm}_epsilons", None) if self.attacks is not None else None
            if sweep is not None and not any(abs(b.eps - e) <= 1e-12 for e in sweep):
                raise ConfigError(
                    f"{key}.eps={b.eps:g} is not in attacks.{b.norm}_epsilons {sweep}: the worst case could not "
                    "include it"
                )
