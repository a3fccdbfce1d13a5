"""Visualizing a classifier through its learned prior: DGN-AM's ascent and PPGN's sampler in code space.

Both search the code ``h`` (the classifier's pooled penultimate features) and draw ``G(h)``; the classifier
judges the drawing. What comes out is what *the generator* can draw that the net calls a class, not the net's
own preferred stimulus: the generator was trained on the data, so it can only draw data-like images. The fair
comparison for a net's own preference is the pixel-space recipes (Fourier, MACO).

Units: every step in code space is in units of the codes' per-dimension standard deviation over the training
images (``std``), so the same settings mean the same on two nets whose codes have different scales.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from ..errors import ConfigError
from ..models.base import ImageClassifierNet
from ..store import weights_sha256
from ..vis.facets import kmeans
from .model import CodeDAE, CodeGenerator, codes
from .train import GeneratorError, read_generator_file

#: What the PPGN prior term ``R(h) - h`` is computed through.
PRIORS = ("dae", "reconstruction")


@dataclass
class LearnedPrior:
    """A trained generator with its code autoencoder and the codes' statistics, for the classifier ``net`` whose
    penultimate features are its codes (its encoder E)."""

    net: ImageClassifierNet = field(repr=False)
    G: CodeGenerator
    dae: CodeDAE
    lo: torch.Tensor
    hi: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    record: dict[str, Any] = field(repr=False)
    path: str = ""

    def to(self, device: torch.device | str) -> LearnedPrior:
        self.G.to(device)
        self.dae.to(device)
        for k in ("lo", "hi", "mean", "std"):
            setattr(self, k, getattr(self, k).to(device))
        return self

    def clip(self, h: torch.Tensor) -> torch.Tensor:
        """``h`` clipped, per dimension, to the range of the training codes (DGN-AM's constraint)."""
        return torch.maximum(torch.minimum(h, self.hi), self.lo)

    def summary(self) -> dict[str, Any]:
        """What vis.json records of the prior."""
        r = self.record
        last = r["history"][-1] if r["history"] else {}
        return {
            "path": self.path,
            "checkpoint": r["net"]["checkpoint"],
            "epochs": r["epochs_done"],
            "images": r["images"],
            "layer": r["layer"],
            "seconds": round(float(r["seconds"]), 1),
            "final_losses": last,
            "config": r["config"],
        }


def _describe_data(d: dict[str, Any]) -> str:
    return f"{d.get('dataset', '?')} at {d.get('image_size', '?')} px (seed {d.get('seed', '?')})"


def load_prior(
    path: str | Path, net: ImageClassifierNet, checkpoint: str = "", data: dict[str, Any] | None = None
) -> LearnedPrior:
    """The prior in ``path``, for ``net`` (from ``checkpoint``) and the data described by ``data``; a file trained
    for other weights or other data is refused with one line naming both."""
    record = read_generator_file(path)
    mine, theirs = weights_sha256(net), record["net"]["sha256"]
    if mine != theirs:
        raise GeneratorError(
            f"{path}: trained for {record['net']['checkpoint'] or 'another net'} ({record['net']['class']}, weights "
            f"{theirs[:12]}), not for {checkpoint or 'this net'} ({type(net).__name__}, weights {mine[:12]})"
        )
    if data is not None and record["data"] and record["data"] != data:
        raise GeneratorError(
            f"{path}: trained on {_describe_data(record['data'])}, not on {_describe_data(data)} "
            f"({checkpoint or 'this net'}'s data)"
        )
    G = CodeGenerator(**record["generator"]["config"])
    G.load_state_dict(record["generator"]["state_dict"])
    dae = CodeDAE(**record["dae"]["config"])
    dae.load_state_dict(record["dae"]["state_dict"])
    code = record["code"]
    std = record["code_std"].clamp_min(1e-6)
    return LearnedPrior(net, G.eval(), dae.eval(), code["lo"], code["hi"], code["mean"], std, record, str(path))


@dataclass
class Chains:
    """Codes searched or sampled, the images drawn from them and what the classifier says of them."""

    codes: torch.Tensor  # (N, C)
    images: torch.Tensor  # (N, 3, S, S)
    classes: torch.Tensor  # (N,) the target class of each
    logits: torch.Tensor  # (N,) the target's logit
    probs: torch.Tensor  # (N,) the target's probability
    trace: list[float]  # the mean target probability after each step
    recipe: dict[str, Any]


def _result(prior: LearnedPrior, h: torch.Tensor, target: torch.Tensor, trace: list, recipe: dict) -> Chains:
    with torch.no_grad():
        images = prior.G(h)
        logits = prior.net(images)
    pick = logits.gather(1, target[:, None])[:, 0]
    probs = logits.softmax(1).gather(1, target[:, None])[:, 0]
    return Chains(h.detach(), images.detach(), target, pick.detach(), probs.detach(), trace, recipe)


def _class_step(
    prior: LearnedPrior, h: torch.Tensor, target: torch.Tensor, objective: Literal["logit", "log_prob"]
) -> tuple[torch.Tensor, float]:
    """The gradient of each code's target ``logit`` (DGN-AM) or ``log_prob`` (PPGN) of ``G(h)`` with respect
    to ``h``, over its mean absolute value (the original's step normalization); and the mean target probability
    at ``h``."""
    h = h.detach().requires_grad_(True)
    logits = prior.net(prior.G(h))
    value = logits if objective == "logit" else logits.log_softmax(1)
    (g,) = torch.autograd.grad(value.gather(1, target[:, None]).sum(), h)
    prob = float(logits.detach().softmax(1).gather(1, target[:, None]).mean())
    return g / g.abs().mean(1, keepdim=True).clamp_min(1e-12), prob


def dgn_am(
    prior: LearnedPrior, classes: list[int], *, steps: int = 200, lr: float = 0.05, start: torch.Tensor | None = None
) -> Chains:
    """DGN-AM (Nguyen et al. 2016): gradient ascent on each class's logit in code space, every step scaled by
    the gradient's mean absolute value (as the original) and by the codes' spread, ``h`` clipped to the training
    codes' range after every step. Starts from the training codes' mean (or ``start``, (len(classes), C))."""
    target = torch.tensor(classes, device=prior.mean.device)
    h = (prior.mean.expand(len(classes), -1) if start is None else start).clone()
    trace = []
    for _ in range(steps):
        step, prob = _class_step(prior, h, target, "logit")
        h = prior.clip(h + lr * prior.std * step)
        trace.append(prob)
    return _result(prior, h, target, trace, {"method": "dgn_am", "steps": steps, "lr": lr, "clip": "data range"})


def _prior_term(prior: LearnedPrior, h: torch.Tensor, kind: str) -> torch.Tensor:
    """``R(h) - h``: toward likelier codes, through the code autoencoder or the reconstruction ``E(G(h))``."""
    with torch.no_grad():
        r = prior.dae(h) if kind == "dae" else codes(prior.net, prior.G(h))
    return r - h


def ppgn(
    prior: LearnedPrior,
    classes: list[int],
    *,
    chains: int = 3,
    steps: int = 200,
    eps1: float = 0.1,
    eps2: float = 0.05,
    eps3: float = 0.02,
    kind: Literal["dae", "reconstruction"] = "dae",
    start: torch.Tensor | None = None,
    seed: int = 0,
) -> Chains:
    """The PPGN-h sampler (Nguyen et al. 2017), ``chains`` chains per class:

    ``h <- clip(h + eps1 (R(h) - h) + eps2 std * g / mean|g| + eps3 std * n)``,

    ``R(h) - h`` the prior term (:data:`PRIORS`: the code autoencoder, or ``E(G(h)) - h``), ``g`` the gradient
    of the class's log-probability of ``G(h)`` (normalized as DGN-AM's), ``n`` standard normal noise. Chains
    start from training codes drawn with ``seed`` (the data's own codes, spread over every class) or from
    ``start`` ((len(classes) * chains, C), class-major)."""
    if kind not in PRIORS:
        raise ConfigError(f"ppgn prior: expected one of {', '.join(PRIORS)}, got {kind!r}")
    device = prior.mean.device
    gen = torch.Generator().manual_seed(seed)
    target = torch.tensor(classes, device=device).repeat_interleave(chains)
    if start is None:
        spread = torch.randn(len(target), prior.mean.numel(), generator=gen).to(device)
        start = prior.clip(prior.mean + 0.5 * prior.std * spread)
    h = start.clone()
    trace = []
    for _ in range(steps):
        step, prob = _class_step(prior, h, target, "log_prob")
        noise = torch.randn(h.shape, generator=gen).to(device)
        h = h + eps1 * _prior_term(prior, h, kind) + eps2 * prior.std * step + eps3 * prior.std * noise
        h = prior.clip(h)
        trace.append(prob)
    recipe = {"method": "ppgn", "chains": chains, "steps": steps, "eps1": eps1, "eps2": eps2, "eps3": eps3}
    return _result(prior, h, target, trace, {**recipe, "prior": kind, "seed": seed})


def code_distance(prior: LearnedPrior, h: torch.Tensor, data_codes: torch.Tensor) -> torch.Tensor:
    """(N,) each code's distance to its nearest data code, in standardized units over the dimension count's
    root (about 1.4 between two independent draws of a standard normal)."""
    z, d = h / prior.std, data_codes / prior.std
    return torch.cdist(z, d).min(1).values / h.shape[1] ** 0.5


def facet_starts(codes_of_class: torch.Tensor, facets: int, seed: int = 0) -> torch.Tensor:
    """(facets, C): the means of the k-means clusters of one class's training codes (multifaceted starts)."""
    centres, _ = kmeans(codes_of_class.detach().cpu().double().numpy(), min(facets, len(codes_of_class)), seed)
    return torch.as_tensor(centres, dtype=codes_of_class.dtype)
