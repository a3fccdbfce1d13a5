"""Robustness evaluation of trained classifiers: foolbox attacks, AutoAttack, the reference paper's perturbations,
per-scale ablations, common corruptions and the sanity checks that catch gradient masking.

``python evaluate.py --ckpt+ <baseline.ckpt> --ckpt+ <topdown.ckpt> --config configs/eval/quick.yaml --out DIR``
runs it all (``cli.py``); :func:`evaluate_models` does the same from Python. The layout of results.json is
in ``SCHEMA.md`` beside this file.
"""

from ..store import SCHEMA_VERSION
from .attacks import AttackResult, AttackSpec, fool_model, prepare_model, run_attack
from .config import (
    AttackSuite,
    AutoAttackBudget,
    AutoAttackConfig,
    CorruptionSuite,
    CWConfig,
    DecisionConfig,
    DeepFoolConfig,
    FMNConfig,
    PerturbationSuite,
    PGDConfig,
    SanityConfig,
    ScaleSuite,
    SuiteConfig,
)
from .corruptions import CORRUPTIONS, corrupt_batch, corruption_errors
from .decode import PartResults
from .perturbations import PERTURBATIONS, apply_perturbation
from .sanity import run_checks
from .scales import band
from .suite import ModelEntry, RunReport, evaluate_models, stratified_subset

__all__ = [
    "CORRUPTIONS",
    "PERTURBATIONS",
    "SCHEMA_VERSION",
    "AttackResult",
    "AttackSpec",
    "AttackSuite",
    "AutoAttackBudget",
    "AutoAttackConfig",
    "CWConfig",
    "CorruptionSuite",
    "DecisionConfig",
    "DeepFoolConfig",
    "FMNConfig",
    "ModelEntry",
    "PGDConfig",
    "PartResults",
    "PerturbationSuite",
    "RunReport",
    "SanityConfig",
    "ScaleSuite",
    "SuiteConfig",
    "apply_perturbation",
    "band",
    "corrupt_batch",
    "corruption_errors",
    "evaluate_models",
    "fool_model",
    "prepare_model",
    "run_attack",
    "run_checks",
    "stratified_subset",
]
