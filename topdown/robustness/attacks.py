"""A thin wrapper around foolbox 3 attacks: explicit devices, seeded batches, independently verified results.

The wrapper never subclasses foolbox; it builds the attack, feeds it batches, and then checks every
adversarial it returns with its own forward pass (inside [0, 1], within epsilon, misclassified). Only
verified adversarials count, and the number foolbox claimed but failed verification is reported (the
``adversarials_verified`` sanity check).

Three kinds of attack:

* ``fixed``: FGSM, Linf PGD, L2 PGD. One run per epsilon; per example and epsilon, "robust" or not.
* ``minimal``: DeepFool, FMN, C&W. One run with ``epsilons=[None]`` gives each example's minimal
  adversarial perturbation ``d_i``; accuracy(eps) = mean(d_i > eps), with ``d_i = 0`` for an example
  misclassified to begin with and ``d_i = inf`` where the attack failed.
* ``decision``: HopSkipJump or Boundary, started from real images of other classes (their random
  initialisation fails a whole batch when it fails for one image); a minimal-norm curve like the above.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import env  # noqa: F401  (GitPython/albumentations quirks, before foolbox is imported)

FIXED = ("fgsm", "linf_pgd", "l2_pgd")
MINIMAL = ("deepfool", "fmn", "cw")
DECISION = ("hsj", "boundary")
METHODS = FIXED + MINIMAL + DECISION


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; anything else as given (validated)."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


def prepare_model(net: nn.Module, device: str | torch.device, copy_model: bool = True) -> nn.Module:
    """A copy of ``net`` on ``device`` in eval mode with frozen parameters.

    Frozen parameters matter: foolbox's eagerpy backend calls ``loss.backward()``, which would otherwise
    fill every parameter's ``.grad`` (and waste time computing it).
    """
    net = copy.deepcopy(net) if copy_model else net
    return net.to(resolve_device(device)).eval().requires_grad_(False)


def fool_model(net: nn.Module, device: str | torch.device) -> Any:
    """``foolbox.PyTorchModel`` on an explicit device (it picks ``cuda:0`` by itself otherwise)."""
    import foolbox as fb

    return fb.PyTorchModel(net, bounds=(0, 1), device=resolve_device(device))


def attack_kind(method: str) -> str:
    if method in FIXED:
        return "fixed"
    if method in MINIMAL:
        return "minimal"
    if method in DECISION:
        return "decision"
    raise ValueError(f"unknown attack {method!r}; choose one of {METHODS}")


def attack_norm(method: str, settings: dict[str, Any]) -> str:
    if method in ("fgsm", "linf_pgd"):
        return "linf"
    if method in ("l2_pgd", "cw", "boundary"):
        return "l2"
    if method == "hsj":
        return settings.get("constraint", "l2")
    return settings.get("norm", "l2")


def build_attack(method: str, settings: dict[str, Any]) -> Any:
    """The foolbox attack object for ``method`` with ``settings`` (as recorded in results.json)."""
    import foolbox.attacks as fa

    s = dict(settings)
    if method == "fgsm":
        return fa.LinfFastGradientAttack(random_start=False)
    if method in ("linf_pgd", "l2_pgd"):
        cls = fa.LinfProjectedGradientDescentAttack if method == "linf_pgd" else fa.L2ProjectedGradientDescentAttack
        attack = cls(rel_stepsize=s["rel_stepsize"], steps=s["steps"], random_start=s["random_start"])
        # Repeated keeps, per example and epsilon, the first restart that succeeds.
        return attack.repeat(s["restarts"]) if s.get("restarts", 1) > 1 else attack
    if method == "deepfool":
        cls = fa.L2DeepFoolAttack if s["norm"] == "l2" else fa.LinfDeepFoolAttack
        return cls(steps=s["steps"], candidates=s["candidates"], overshoot=s["overshoot"], loss="logits")
    if method == "fmn":
        cls = fa.L2FMNAttack if s["norm"] == "l2" else fa.LInfFMNAttack
        return cls(steps=s["steps"], max_stepsize=s["max_stepsize"], gamma=s["gamma"],
                   binary_search_steps=s["binary_search_steps"])
    if method == "cw":
        return fa.L2CarliniWagnerAttack(binary_search_steps=s["binary_search_steps"], steps=s["steps"],
                                        stepsize=s["stepsize"], confidence=s["confidence"],
                                        initial_const=s["initial_const"])
    if method == "hsj":
        return fa.HopSkipJumpAttack(steps=s["steps"], initial_gradient_eval_steps=s["initial_gradient_eval_steps"],
                                    max_gradient_eval_steps=s["max_gradient_eval_steps"],
                                    constraint=s.get("constraint", "l2"))
    if method == "boundary":
        return fa.BoundaryAttack(steps=s["steps"])
    raise ValueError(f"unknown attack {method!r}; choose one of {METHODS}")


@dataclass
class AttackSpec:
    """One attack run as results.json records it.

    Args:
        name: key in the results (``linf_pgd``, ``linf_pgd_2x`` ...).
        method: one of :data:`METHODS`.
        epsilons: the sweep (fixed attacks run once per epsilon; minimal ones are read off at them).
        settings: the attack's own parameters.
        seed: base seed; batch ``b`` runs under a seed derived from ``(seed, name, b)``.
    """

    name: str
    method: str
    epsilons: list[float]
    settings: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def kind(self) -> str:
        return attack_kind(self.method)

    @property
    def norm(self) -> str:
        return attack_norm(self.method, self.settings)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "kind": self.kind, "norm": self.norm,
                "epsilons": list(self.epsilons), "settings": dict(self.settings), "seed": self.seed,
                "library": "foolbox " + _foolbox_version()}


def _foolbox_version() -> str:
    import foolbox

    return str(foolbox.__version__)


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any mix of ints and strings (stable across processes, unlike ``hash``)."""
    ints = [p if isinstance(p, int) and p >= 0 else int.from_bytes(hashlib.sha256(str(p).encode()).digest()[:8],
                                                                   "little") for p in parts]
    return int(np.random.SeedSequence(ints).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example ``norm`` (``l2`` or ``linf``) of a batch of perturbations, in float64."""
    flat = delta.detach().flatten(1).double()
    return flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)


@torch.no_grad()
def predict(net: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Logits of ``x`` in batches of ``batch_size`` (the batching every attack uses), on the CPU."""
    out = [net(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


@dataclass
class AttackResult:
    """What one attack did to one model on one set of images.

    ``robust[k, i]``: example ``i`` is still classified correctly at ``epsilons[k]`` (fixed attacks), or its
    minimal perturbation exceeds ``epsilons[k]`` (minimal and decision attacks). ``distances``: minimal
    attacks only, per example (``inf`` = not broken, ``0`` = misclassified already).
    """

    spec: AttackSpec
    robust: np.ndarray
    distances: np.ndarray | None
    unverified: int
    time_s: float

    @property
    def accuracy(self) -> list[float]:
        return self.robust.mean(axis=1).tolist()


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch (CPU and the current CUDA device) and numpy, and restore the caller's RNG states after.

    foolbox draws random starts from torch's global generator and some attacks from numpy's.
    """
    np_state = np.random.get_state()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed % (1 << 32))
        try:
            yield
        finally:
            np.random.set_state(np_state)


def run_attack(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    device: str | torch.device = "cpu",
    batch_size: int = 128,
    starting_points: torch.Tensor | None = None,
    fmodel: Any | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> AttackResult:
    """Run one foolbox attack over ``x`` in seeded batches and verify what it returns.

    Args:
        net: a prepared model (:func:`prepare_model`: eval mode, frozen, on ``device``).
        x: images (N, C, H, W) in [0, 1].
        y: labels (N,).
        spec: which attack, its settings, epsilons and seed.
        device: where the attack runs.
        batch_size: images per foolbox call.
        starting_points: decision attacks: an adversarial start per image (real images of other classes).
        fmodel: a ready ``foolbox.PyTorchModel`` of ``net`` (built here if omitted).
        on_batch: called with the number of images after each batch (progress bars).
    """
    device = resolve_device(device)
    if spec.kind == "decision" and starting_points is None:
        raise ValueError(f"{spec.name}: decision-based attacks need starting_points (real images of other classes)")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError(f"{spec.name}: images must lie in [0, 1] (foolbox asserts its bounds)")
    fmodel = fmodel if fmodel is not None else fool_model(net, device)
    attack = build_attack(spec.method, spec.settings)
    eps = [float(e) for e in spec.epsilons]
    norm = spec.norm
    n = len(x)
    robust = np.zeros((len(eps), n), dtype=bool)
    distances = np.full(n, np.inf) if spec.kind != "fixed" else None
    unverified = 0
    start = time.perf_counter()
    # Lightning's test loop runs under inference mode, where no attack can take a gradient.
    with torch.inference_mode(False), torch.enable_grad():
        for b, lo in enumerate(range(0, n, batch_size)):
            xb = x[lo : lo + batch_size].to(device).clone()
            yb = y[lo : lo + batch_size].to(device).clone()
            with seeded(derive_seed(spec.seed, spec.name, b)):
                if spec.kind == "fixed":
                    _, advs, success = attack(fmodel, xb, yb, epsilons=eps)
                else:
                    kw = {}
                    if starting_points is not None:
                        kw["starting_points"] = starting_points[lo : lo + batch_size].to(device).clone()
                    _, advs, success = attack(fmodel, xb, yb, epsilons=[None], **kw)
            sl = slice(lo, lo + len(xb))
            with torch.no_grad():
                if spec.kind == "fixed":
                    for k, (e, adv) in enumerate(zip(eps, advs)):
                        broken, bad = _verify(net, xb, yb, adv, success[k], norm, e)
                        robust[k, sl] = ~broken.cpu().numpy()
                        unverified += bad
                else:
                    adv = advs[0]
                    broken, bad = _verify(net, xb, yb, adv, success[0], norm, None)
                    unverified += bad
                    d = norms(adv - xb, norm).cpu().numpy()
                    clean_wrong = (net(xb).argmax(1) != yb).cpu().numpy()
                    d = np.where(broken.cpu().numpy(), d, np.inf)
                    d[clean_wrong] = 0.0  # misclassified to begin with: broken at any epsilon, eps = 0 included
                    distances[sl] = d
            if on_batch is not None:
                on_batch(len(xb))
    if distances is not None:
        robust = curve_from_distances(distances, eps)
    return AttackResult(spec, robust, distances, unverified, time.perf_counter() - start)


def _verify(net: nn.Module, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor, claimed: torch.Tensor, norm: str,
            eps: float | None) -> tuple[torch.Tensor, int]:
    """Which examples are truly broken (own forward pass, in bounds, within eps, finite), and how many
    foolbox claimed but are not."""
    finite = torch.isfinite(adv).flatten(1).all(1)
    adv = torch.where(finite.view(-1, 1, 1, 1), adv, x)  # a NaN from a failed attack is no adversarial
    in_bounds = (adv >= 0).flatten(1).all(1) & (adv <= 1).flatten(1).all(1)
    ok = finite & in_bounds
    if eps is not None:
        # foolbox clips to eps in float32; allow its rounding, never more
        ok &= norms(adv - x, norm).to(x.device) <= eps * (1 + 1e-5) + 1e-6
    misclassified = net(adv).argmax(1) != y
    broken = ok & misclassified
    bad = int((claimed.bool() & ~broken).sum())
    return broken, bad


def curve_from_distances(distances: np.ndarray, epsilons: Sequence[float]) -> np.ndarray:
    """``robust[k, i] = distances[i] > epsilons[k]``: a minimum-norm attack's whole curve from one run."""
    d = np.asarray(distances, dtype=float)
    return np.stack([d > e for e in epsilons]) if len(epsilons) else np.zeros((0, len(d)), dtype=bool)


def median_distance(distances: np.ndarray) -> float:
    """Median minimal perturbation over all examples (0 for misclassified, inf for unbroken ones)."""
    return float(np.median(distances)) if len(distances) else math.nan


def input_gradients(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                    device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Per-example L1 norm of the cross-entropy loss's gradient with respect to the input, and the
    clean correctness flags from the same forward passes.

    The loss is the one the gradient attacks follow, so a zero here means they have nothing to follow
    (rounding, ``detach``, ``no_grad`` or a saturated softmax inside the model).
    """
    grads, correct = [], []
    with torch.inference_mode(False), torch.enable_grad():
        for lo in range(0, len(x), batch_size):
            xb = x[lo : lo + batch_size].to(device).clone().requires_grad_(True)
            yb = y[lo : lo + batch_size].to(device)
            logits = net(xb)
            loss = torch.nn.functional.cross_entropy(logits, yb, reduction="sum")
            (g,) = torch.autograd.grad(loss, xb)
            grads.append(g.detach().flatten(1).abs().sum(1).double().cpu())
            correct.append((logits.detach().argmax(1) == yb).cpu())
    return torch.cat(grads).numpy(), torch.cat(correct).numpy()
