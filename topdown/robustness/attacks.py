"""A thin wrapper around foolbox 3 attacks: explicit devices, seeded batches, independently verified results.

The wrapper never subclasses foolbox; it builds the attack, feeds it batches, and then checks every
adversarial it returns with its own forward pass (inside [0, 1], within epsilon, misclassified). Only
verified adversarials count, and the number foolbox claimed but failed verification is reported (the
``adversarials_verified`` sanity check).

Three kinds of attack:

* ``fixed``: FGSM, Linf PGD, L2 PGD. One run per epsilon; per example and epsilon, "robust" or not. An
  example counts as broken if the returned adversarial or any iterate the attack evaluated on the way is
  adversarial (:class:`IterateRecorder`): foolbox keeps only the last iterate. Examples misclassified to begin
  with are broken at every eps and not attacked; restarts run only on what earlier restarts left robust.
* ``minimal``: DeepFool, FMN, C&W. One run with ``epsilons=[None]`` gives each example's minimal
  adversarial perturbation ``d_i``; accuracy(eps) = mean(d_i > eps), with ``d_i = 0`` for an example
  misclassified to begin with and ``d_i = inf`` where the attack failed.
* ``decision``: HopSkipJump or Boundary, started from real images of other classes (their random
  initialisation fails a whole batch when it fails for one image); a minimal-norm curve like the above.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..batches import map_batches
from ..errors import ConfigError
from ..seeds import derive_seed

FIXED = ("fgsm", "linf_pgd", "l2_pgd")
MINIMAL = ("deepfool", "fmn", "cw")
DECISION = ("hsj", "boundary")
METHODS = FIXED + MINIMAL + DECISION
BROKEN_IF = {
    "fixed": "the final or any intermediate iterate is adversarial (verified)",
    "minimal": "its minimal adversarial perturbation (verified) is <= eps",
    "decision": "its minimal adversarial perturbation (verified) is <= eps",
}


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; anything else as given (validated)."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


def prepare_model(net: nn.Module, device: str | torch.device, copy_model: bool = True) -> nn.Module:
    """A copy of ``net`` on ``device`` in eval mode with frozen parameters, its weights in channels-last memory
    format.

    Frozen parameters matter: foolbox's eagerpy backend calls ``loss.backward()``, which would otherwise
    fill every parameter's ``.grad`` (and waste time computing it). Channels-last weights make every
    convolution run channels-last whatever the layout of the images attacked: on the CPU an input gradient
    then costs about 0.6 of the default layout's (both nets, 64 px).
    """
    net = copy.deepcopy(net) if copy_model else net
    return net.to(resolve_device(device), memory_format=torch.channels_last).eval().requires_grad_(False)


def fool_model(net: nn.Module, device: str | torch.device) -> Any:
    """``foolbox.PyTorchModel`` on an explicit device (it picks ``cuda:0`` by itself otherwise)."""
    import foolbox as fb  # foolbox (and GitPython under it) only when an attack runs

    return fb.PyTorchModel(net, bounds=(0, 1), device=resolve_device(device))


def attack_kind(method: str) -> str:
    if method in FIXED:
        return "fixed"
    if method in MINIMAL:
        return "minimal"
    if method in DECISION:
        return "decision"
    raise ConfigError(f"unknown attack {method!r}; choose one of {METHODS}")


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
    import foolbox.attacks as fa  # foolbox (and GitPython under it) only when an attack runs

    s = dict(settings)

    def given(*names: str) -> dict[str, Any]:
        return {k: s[k] for k in names}

    if method == "fgsm":
        return fa.LinfFastGradientAttack(random_start=False)
    if method in ("linf_pgd", "l2_pgd"):
        cls = fa.LinfProjectedGradientDescentAttack if method == "linf_pgd" else fa.L2ProjectedGradientDescentAttack
        # restarts are run by run_attack, on the examples no earlier restart broke
        return cls(**given("rel_stepsize", "steps", "random_start"))
    if method == "deepfool":
        cls = fa.L2DeepFoolAttack if s["norm"] == "l2" else fa.LinfDeepFoolAttack
        return cls(**given("steps", "candidates", "overshoot"), loss="logits")
    if method == "fmn":
        cls = fa.L2FMNAttack if s["norm"] == "l2" else fa.LInfFMNAttack
        return cls(**given("steps", "max_stepsize", "gamma", "binary_search_steps"))
    if method == "cw":
        return fa.L2CarliniWagnerAttack(
            **given("binary_search_steps", "steps", "stepsize", "confidence", "initial_const")
        )
    if method == "hsj":
        return fa.HopSkipJumpAttack(
            **given("steps", "initial_gradient_eval_steps", "max_gradient_eval_steps"),
            constraint=s.get("constraint", "l2"),
        )
    if method == "boundary":
        return fa.BoundaryAttack(steps=s["steps"])
    raise ConfigError(f"unknown attack {method!r}; choose one of {METHODS}")


@dataclass
class AttackSpec:
    """One attack run as results.json records it.

    Args:
        name: key in the results (``linf_pgd``, ``linf_pgd_2x`` ...).
        method: one of :data:`METHODS`.
        epsilons: the sweep (fixed attacks run once per epsilon; minimal ones are read off at them).
        settings: the attack's own parameters.
        seed: base seed; batch ``b`` runs under a seed derived from ``(seed, name, b)`` (fixed attacks: from
            ``(seed, name, b, k, r)`` for eps ``k`` and restart ``r``).
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
        return {
            "name": self.name,
            "method": self.method,
            "kind": self.kind,
            "norm": self.norm,
            "broken_if": BROKEN_IF[self.kind],
            "epsilons": list(self.epsilons),
            "settings": dict(self.settings),
            "seed": self.seed,
            "library": "foolbox " + _foolbox_version(),
        }


def _foolbox_version() -> str:
    import foolbox  # foolbox (and GitPython under it) only when an attack runs

    return str(foolbox.__version__)


def norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example ``norm`` (``l2`` or ``linf``) of a batch of perturbations, in float64."""
    flat = delta.detach().flatten(1).double()
    return flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)


@torch.no_grad()
def predict(net: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Logits of ``x`` in batches of ``batch_size`` (the batching every attack uses), on the CPU."""
    return map_batches(lambda b: net(b.to(device)).float().cpu(), x, batch_size=batch_size)


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
        fmodel: a ready ``foolbox.PyTorchModel`` of ``net`` for minimal and decision attacks (built here if
            omitted); fixed attacks always wrap ``net`` in an :class:`IterateRecorder`.
        on_batch: called with the number of images after each batch (progress bars).
    """
    device = resolve_device(device)
    if spec.kind == "decision" and starting_points is None:
        raise ConfigError(f"{spec.name}: decision-based attacks need starting_points (real images of other classes)")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ConfigError(f"{spec.name}: images must lie in [0, 1] (foolbox asserts its bounds)")
    recorder = IterateRecorder(net) if spec.kind == "fixed" else None
    if recorder is not None:
        fmodel = fool_model(recorder, device)
    elif fmodel is None:
        fmodel = fool_model(net, device)
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
            sl = slice(lo, lo + len(xb))
            if spec.kind == "fixed":
                with torch.no_grad():
                    correct = net(xb).argmax(1) == yb
                for k, e in enumerate(eps):
                    robust[k, sl], bad = _fixed_eps(net, fmodel, recorder, attack, xb, yb, correct, e, spec, (b, k))
                    unverified += bad
            else:
                kw = {}
                if starting_points is not None:
                    kw["starting_points"] = starting_points[lo : lo + batch_size].to(device).clone()
                with seeded(derive_seed(spec.seed, spec.name, b)):
                    _, advs, success = attack(fmodel, xb, yb, epsilons=[None], **kw)
                with torch.no_grad():
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


def restarts_at(spec: AttackSpec, eps: float) -> int:
    """How many random starts ``spec`` runs at ``eps``: one at eps = 0, whose ball holds only the image itself
    (every start is the same point), and where starts are not random."""
    n = int(spec.settings.get("restarts", 1))
    return 1 if eps == 0 or not spec.settings.get("random_start", False) else n


def _fixed_eps(
    net: nn.Module,
    fmodel: Any,
    recorder: IterateRecorder,
    attack: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    correct: torch.Tensor,
    eps: float,
    spec: AttackSpec,
    where: tuple[int, int],
) -> tuple[np.ndarray, int]:
    """One fixed-epsilon attack on one batch: which examples stay robust, and how many claims failed checks.

    An example misclassified to begin with is broken at every eps (foolbox would count it a success with no
    work). Restart ``r`` runs only on the examples every earlier restart left robust, under its own seed; an
    example is broken if any restart breaks it (foolbox's ``repeat`` semantics, without re-attacking examples
    that are already broken).
    """
    broken = ~correct
    unverified = 0
    for r in range(restarts_at(spec, eps)):
        todo = (~broken).nonzero().view(-1)
        if len(todo) == 0:
            break
        xs, ys = x[todo], y[todo]
        # one call per eps (foolbox loops over them the same way) so the recorder knows the eps
        recorder.reset(ys)
        with seeded(derive_seed(spec.seed, spec.name, *where, r)):
            _, advs, success = attack(fmodel, xs, ys, epsilons=[eps])
        with torch.no_grad():
            # foolbox's last call classified exactly the returned images: reuse our net's verdict
            last = recorder.last
            wrong = last[1] if last is not None and torch.equal(last[0], advs[0]) else None
            found, bad = _verify(net, xs, ys, advs[0], success[0], spec.norm, eps, wrong)
            unverified += bad
            extra = recorder.found & ~found if recorder.found is not None else None
            if extra is not None and extra.any():
                # an iterate that was adversarial on the way counts too (foolbox returns the last)
                seen, _ = _verify(net, xs, ys, recorder.adv, extra, spec.norm, eps)
                found |= seen
        broken[todo] |= found
    return (~broken).cpu().numpy(), unverified


class IterateRecorder(nn.Module):
    """Passes images through to ``net`` and keeps, per example, the first image foolbox evaluated that ``net``
    misclassifies.

    foolbox's PGD returns its last iterate; an iterate that was adversarial earlier and left the adversarial
    region again would be lost, so PGD could miss what FGSM finds. Every iterate passes through the model (for
    its gradient), so watching the model's inputs recovers them without touching foolbox. What it keeps is
    re-verified (inside [0, 1], within eps, misclassified) before it counts.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.train(net.training)
        self.reset(None)

    def reset(self, y: torch.Tensor | None) -> None:
        self.y = y
        self.found: torch.Tensor | None = None
        self.adv: torch.Tensor | None = None
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None  # (input, misclassified) of the last call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.y is not None and x.shape[0] == self.y.shape[0]:
            with torch.no_grad():
                wrong = out.detach().argmax(1) != self.y
                self.last = (x.detach(), wrong)
                new = wrong.clone()
                if self.found is None:
                    self.found, self.adv = torch.zeros_like(new), torch.zeros_like(x.detach())
                new &= ~self.found
                if new.any():
                    self.adv[new] = x.detach()[new]
                    self.found |= new
        return out


def _verify(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    adv: torch.Tensor,
    claimed: torch.Tensor,
    norm: str,
    eps: float | None,
    wrong: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """Which of the adversarials foolbox claims are real (finite, inside [0, 1], within eps, misclassified by
    our own forward pass), and how many claims fail. Only claimed ones are re-run: an example foolbox did not
    break counts as robust either way. ``wrong``: our net's verdict on exactly ``adv`` when a forward pass of it
    was already watched (:class:`IterateRecorder`), which saves running it again."""
    claimed = claimed.bool()
    broken = torch.zeros_like(claimed)
    idx = claimed.nonzero().view(-1)
    if len(idx) == 0:
        return broken, 0
    a, a0 = adv[idx], x[idx]
    flat = a.flatten(1)
    # a NaN from a failed attack is no adversarial; nor is anything outside [0, 1] or beyond eps
    ok = torch.isfinite(flat).all(1) & (flat >= 0).all(1) & (flat <= 1).all(1)
    if eps is not None:
        # foolbox clips to eps in float32; allow its rounding, never more
        ok &= norms(a - a0, norm).to(x.device) <= eps * (1 + 1e-5) + 1e-6
    if wrong is not None:
        broken[idx] = ok & wrong[idx]
    elif ok.any():
        keep = idx[ok]
        broken[keep] = net(adv[keep]).argmax(1) != y[keep]
    return broken, int((claimed & ~broken).sum())


def curve_from_distances(distances: np.ndarray, epsilons: Sequence[float]) -> np.ndarray:
    """``robust[k, i] = distances[i] > epsilons[k]``: a minimum-norm attack's whole curve from one run."""
    d = np.asarray(distances, dtype=float)
    return np.stack([d > e for e in epsilons]) if len(epsilons) else np.zeros((0, len(d)), dtype=bool)


def median_distance(distances: np.ndarray) -> float | None:
    """Median minimal perturbation over the examples classified correctly to begin with (those with a
    non-zero distance; ``inf`` counts for an unbroken one). ``None`` when there are none."""
    d = np.asarray(distances, dtype=float)
    d = d[d > 0]
    return float(np.median(d)) if len(d) else None


def input_gradients(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
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
