"""AutoAttack (Croce & Hein, ICML 2020) through its authors' own code, the ``pyautoattack`` package.

AutoAttack is the robustness field's standard: APGD on the cross-entropy loss (``apgd-ce``), targeted APGD on
the DLR loss (``apgd-t``), targeted FAB (``fab-t``) and the black-box Square attack (``square``, 5000 queries),
each later attack run only on the images the earlier ones left robust. This module runs ONE of those attacks
at one (norm, eps) on the images it is given, in seeded batches, and verifies every adversarial it returns
with its own forward pass, exactly as :mod:`.attacks` does for foolbox. The suite chains the calls (one
resumable part per attack and budget) and decides which images each attack sees (``parts.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import torch
from torch import nn

from ..seeds import derive_seed
from .attacks import _verify, seeded
from .decode import AA_STANDARD

#: AutoAttack's attacks, in its own running order ("standard" runs all four).
ATTACKS = AA_STANDARD
NORMS = {"linf": "Linf", "l2": "L2"}


def library_version() -> str:
    return "pyautoattack " + metadata.version("pyautoattack")


@dataclass(frozen=True)
class AutoAttackRun:
    """One AutoAttack attack at one budget, with the parameters of AutoAttack's "standard" version.

    Args:
        attack: one of :data:`ATTACKS`.
        norm: ``linf`` or ``l2``.
        eps: the budget, in pixel units of images in [0, 1].
        apgd_steps: iterations of APGD (standard: 100).
        fab_steps: iterations of FAB (standard: 100).
        square_queries: queries per image of Square (standard: 5000).
        target_classes: target classes of APGD-T and FAB-T (standard: 9; capped at the classes minus one).
    """

    attack: str
    norm: str
    eps: float
    apgd_steps: int = 100
    fab_steps: int = 100
    square_queries: int = 5000
    target_classes: int = 9

    def build(self, net: nn.Module, num_classes: int, seed: int, device: torch.device) -> Any:
        """The library's ``AutoAttack`` object, set to run just this attack with these parameters."""
        from pyautoattack import AutoAttack  # AutoAttack only when it runs

        aa = AutoAttack(net, norm=NORMS[self.norm], eps=float(self.eps), version="standard", seed=seed, device=device)
        aa.attacks_to_run = [self.attack]
        aa.verbose = False
        targets = max(1, min(self.target_classes, num_classes - 1))
        aa.apgd.n_iter = aa.apgd_targeted.n_iter = self.apgd_steps
        aa.apgd_targeted.n_target_classes = aa.fab.n_target_classes = targets
        aa.fab.n_iter = self.fab_steps
        aa.square.n_queries = self.square_queries
        return aa


def run_autoattack(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    run: AutoAttackRun,
    seed: int,
    device: torch.device,
    batch_size: int,
    num_classes: int,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, int, float]:
    """Attack ``x`` (images the caller still counts as robust) with one AutoAttack attack.

    Returns ``(broken, unverified, seconds)``: which images the attack broke, verified by our own forward pass
    (finite, inside [0, 1], within eps, misclassified), and how many of its claims failed that check.
    """
    broken = np.zeros(len(x), dtype=bool)
    unverified = 0
    start = time.perf_counter()
    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    with torch.inference_mode(False):
        for b, lo in enumerate(range(0, len(x), batch_size)):
            xb, yb = x[lo : lo + batch_size].to(device), y[lo : lo + batch_size].to(device)
            batch_seed = derive_seed(seed, run.attack, run.norm, run.eps, b) % (1 << 31)
            aa = run.build(net, num_classes, batch_seed, device)
            with seeded(batch_seed):  # the library seeds torch's global generator: give the caller's back
                adv, predicted = aa.run_standard_evaluation(xb, yb, batch_size=len(xb))
            with torch.no_grad():
                found, bad = _verify(net, xb, yb, adv.to(device), predicted.to(device) != yb, run.norm, run.eps)
            broken[lo : lo + len(xb)] = found.cpu().numpy()
            unverified += bad
            if on_batch is not None:
                on_batch(len(xb))
    return broken, unverified, time.perf_counter() - start
