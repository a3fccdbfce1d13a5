"""Objectives: what a render maximizes, composed like numbers (``channel(...) - 0.1 * total_variation()``).

An :class:`Objective` maps the activations of one forward pass (see :mod:`topdown.vis.hooks`) to a
tensor of shape ``(B,)``: one value per image of the batch, to be *maximized*. Keeping the batch axis
(where Lucent sums to a scalar) is what lets one render optimize a different objective per image
(``batch=i``) and report what each image achieved.

Penalties (:func:`total_variation`, :func:`l1`, :func:`l2`, :func:`alpha_norm`, :func:`diversity`,
:func:`alignment`, :func:`feature_distance`) return positive amounts; subtract them.

Every objective declares the layer keys it reads (``.layers``), so a render hooks exactly those and stops
the forward pass as soon as they are computed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from numbers import Real

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .hooks import LOGITS

ObjectiveFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


class Objective:
    """A per-image score to maximize, computed from captured activations.

    Args:
        fn: ``acts -> (B,) tensor``.
        layers: the activation keys ``fn`` reads.
        name: a readable description (kept through arithmetic, recorded in ``vis.json``).
    """

    def __init__(self, fn: ObjectiveFn, layers: Iterable[str], name: str) -> None:
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))
        self.name = name

    def __call__(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.fn(acts)
        if out.dim() != 1:
            raise ValueError(f"objective {self.name} returned shape {tuple(out.shape)}; expected (batch,)")
        return out

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    # -- arithmetic -----------------------------------------------------------------------------
    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, Real):
            c = float(other)
            return Objective(lambda a: self(a) + c, self.layers, f"{self.name} + {c:g}")
        other = as_objective(other)
        return Objective(lambda a: self(a) + other(a), self.layers + other.layers, f"{self.name} + {other.name}")

    def __radd__(self, other: float) -> Objective:
        # sum([a, b]) starts from 0.
        return self if isinstance(other, Real) and other == 0 else self + other

    def __neg__(self) -> Objective:
        return Objective(lambda a: -self(a), self.layers, f"-({self.name})")

    def __sub__(self, other: Objective | float) -> Objective:
        if isinstance(other, Real):
            return self + (-float(other))
        other = as_objective(other)
        return Objective(lambda a: self(a) - other(a), self.layers + other.layers, f"{self.name} - {other.name}")

    def __rsub__(self, other: float) -> Objective:
        return (-self) + other

    def __mul__(self, other: float) -> Objective:
        if not isinstance(other, Real):
            raise TypeError(f"an objective can only be scaled by a number, not {type(other).__name__}")
        c = float(other)
        return Objective(lambda a: c * self(a), self.layers, f"{c:g} * ({self.name})")

    __rmul__ = __mul__

    def __truediv__(self, other: float) -> Objective:
        return self * (1.0 / float(other))

    @staticmethod
    def sum(objectives: Sequence[Objective]) -> Objective:
        """Sum of many objectives in one node (flatter than chained ``+`` for hundreds of channels)."""
        objs = [as_objective(o) for o in objectives]
        if not objs:
            raise ValueError("Objective.sum needs at least one objective")
        layers = [k for o in objs for k in o.layers]
        name = " + ".join(o.name for o in objs[:4]) + (f" + ... ({len(objs)} terms)" if len(objs) > 4 else "")
        return Objective(lambda a: torch.stack([o(a) for o in objs]).sum(0), layers, name)


def as_objective(obj: Objective | str) -> Objective:
    """An :class:`Objective` unchanged; ``"layer:17"`` -> ``channel("layer", 17)``; ``"logits:3"`` a class."""
    if isinstance(obj, Objective):
        return obj
    if isinstance(obj, str):
        layer, sep, n = obj.rpartition(":")
        if not sep or not n.strip().lstrip("-").isdigit():
            raise ConfigError(f"objective string {obj!r} must look like 'layer.name:channel'")
        return channel(layer.strip(), int(n))
    raise TypeError(f"cannot make an objective from {type(obj).__name__}")


# --------------------------------------------------------------------------------------------------
# Batch selection
# --------------------------------------------------------------------------------------------------
def _batch_mask(batch: int | Sequence[int] | None, n: int, device: torch.device) -> torch.Tensor | None:
    if batch is None:
        return None
    idx = [batch] if isinstance(batch, int) else list(batch)
    if any(not -n <= i < n for i in idx):
        raise IndexError(f"batch index {batch} out of range for a batch of {n}")
    mask = torch.zeros(n, device=device)
    mask[idx] = 1.0
    return mask


def _per_image(
    layer: str, batch: int | Sequence[int] | None, name: str, score: Callable[[torch.Tensor], torch.Tensor]
) -> Objective:
    """Objective from ``score(activation) -> (B,)``, zeroed outside ``batch``."""

    def fn(acts: dict[str, torch.Tensor]) -> torch.Tensor:
        t = acts[layer]
        values = score(t)
        mask = _batch_mask(batch, t.shape[0], t.device)
        return values if mask is None else values * mask

    suffix = "" if batch is None else f", batch={batch}"
    return Objective(fn, [layer], f"{name}{suffix}")


def _mean_rest(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).mean(1) if t.dim() > 1 else t


# --------------------------------------------------------------------------------------------------
# Units of the network
# --------------------------------------------------------------------------------------------------
def channel(layer: str, n: int, batch: int | Sequence[int] | None = None) -> Objective:
    """Mean activation of channel ``n`` of ``layer`` (over all positions); a logit for 2-D outputs."""
    return _per_image(layer, batch, f"channel({layer}:{n})", lambda t: _mean_rest(t[:, n]))


def neuron(
    layer: str, n: int, x: int | None = None, y: int | None = None, batch: int | Sequence[int] | None = None
) -> Objective:
    """Activation of channel ``n`` at one spatial position (default: the centre, bottom-right of the
    middle four for even sizes, as in Lucid)."""

    def score(t: torch.Tensor) -> torch.Tensor:
        h, w = t.shape[-2:]
        yy = h // 2 if y is None else y
        xx = w // 2 if x is None else x
        return t[:, n, yy, xx]

    return _per_image(layer, batch, f"neuron({layer}:{n}, x={x}, y={y})", score)


def class_logit(c: int, batch: int | Sequence[int] | None = None) -> Objective:
    """Logit of class ``c``."""
    return _per_image(LOGITS, batch, f"class_logit({c})", lambda t: t[:, c])


def class_logprob(c: int, batch: int | Sequence[int] | None = None) -> Objective:
    """Log-softmax probability of class ``c``: pushes the other classes down as well."""
    return _per_image(LOGITS, batch, f"class_logprob({c})", lambda t: F.log_softmax(t, 1)[:, c])


def direction(
    layer: str, vector: torch.Tensor, batch: int | Sequence[int] | None = None, cossim_pow: float = 0.0
) -> Objective:
    """Projection of every position's activation vector onto ``vector`` (a direction in channel space),
    averaged over positions; with ``cossim_pow > 0`` multiplied by ``cos^pow`` to favour alignment over size.
    """
    vec = torch.as_tensor(vector, dtype=torch.float32).flatten()

    def score(t: torch.Tensor) -> torch.Tensor:
        v = vec.to(t.device, t.dtype)
        if t.shape[1] != v.numel():
            raise ValueError(f"direction has {v.numel()} entries but {layer} has {t.shape[1]} channels")
        shape = (1, -1) + (1,) * (t.dim() - 2)
        dot = (t * v.view(shape)).sum(1)  # (B, H, W)
        if cossim_pow:
            cos = dot / (t.norm(dim=1) * v.norm() + 1e-8)
            dot = dot * cos.clamp_min(1e-2) ** cossim_pow
        return _mean_rest(dot)

    return _per_image(layer, batch, f"direction({layer})", score)


def direction_neuron(
    layer: str,
    vector: torch.Tensor,
    x: int | None = None,
    y: int | None = None,
    batch: int | Sequence[int] | None = None,
) -> Objective:
    """Dot product of the activation vector at one position with ``vector``."""
    vec = torch.as_tensor(vector, dtype=torch.float32).flatten()

    def score(t: torch.Tensor) -> torch.Tensor:
        h, w = t.shape[-2:]
        at = t[:, :, h // 2 if y is None else y, w // 2 if x is None else x]
        return at @ vec.to(t.device, t.dtype)

    return _per_image(layer, batch, f"direction_neuron({layer})", score)


def deepdream(layer: str, batch: int | Sequence[int] | None = None) -> Objective:
    """Mean squared activation of the whole layer (Mordvintsev et al.): amplify whatever is there."""
    return _per_image(layer, batch, f"deepdream({layer})", lambda t: _mean_rest(t.pow(2)))


def caricature(
    layer: str, target: torch.Tensor, cossim_pow: float = 1.0, batch: int | Sequence[int] | None = None
) -> Objective:
    """Dot product with a reference activation (e.g. of a real image), times ``cos^pow``: exaggerate what
    the layer saw in that image (Lucid's caricature)."""
    ref = target.detach()

    def score(t: torch.Tensor) -> torch.Tensor:
        r = ref.to(t.device, t.dtype).expand_as(t).flatten(1)
        f = t.flatten(1)
        dot = (f * r).sum(1)
        cos = dot / (f.norm(dim=1) * r.norm(dim=1) + 1e-8)
        return dot / r.norm(dim=1).clamp_min(1e-8) * cos.clamp_min(1e-2) ** cossim_pow

    return _per_image(layer, batch, f"caricature({layer})", score)


def channel_interpolate(layer1: str, n1: int, layer2: str, n2: int) -> Objective:
    """Across the batch, weight moves linearly from channel ``n1`` of ``layer1`` (image 0) to channel ``n2``
    of ``layer2`` (last image)."""

    def fn(acts: dict[str, torch.Tensor]) -> torch.Tensor:
        a, b = acts[layer1][:, n1], acts[layer2][:, n2]
        n = a.shape[0]
        w = torch.linspace(0.0, 1.0, n, device=a.device, dtype=a.dtype) if n > 1 else a.new_zeros(1)
        return (1 - w) * _mean_rest(a) + w * _mean_rest(b)

    return Objective(fn, [layer1, layer2], f"channel_interpolate({layer1}:{n1} -> {layer2}:{n2})")


# --------------------------------------------------------------------------------------------------
# Penalties (positive; subtract them)
# --------------------------------------------------------------------------------------------------
def total_variation(layer: str = "image", batch: int | Sequence[int] | None = None) -> Objective:
    """Mean absolute difference between horizontally and vertically adjacent pixels."""

    def score(t: torch.Tensor) -> torch.Tensor:
        dx = (t[..., :, 1:] - t[..., :, :-1]).abs().flatten(1).mean(1)
        dy = (t[..., 1:, :] - t[..., :-1, :]).abs().flatten(1).mean(1)
        return dx + dy

    return _per_image(layer, batch, f"total_variation({layer})", score)


def l1(layer: str = "image", constant: float = 0.5, batch: int | Sequence[int] | None = None) -> Objective:
    """Mean ``|t - constant|`` (for the image: distance from mid-grey)."""
    return _per_image(layer, batch, f"l1({layer})", lambda t: _mean_rest((t - constant).abs()))


def l2(layer: str = "image", constant: float = 0.5, batch: int | Sequence[int] | None = None) -> Objective:
    """Root mean square of ``t - constant``."""
    return _per_image(layer, batch, f"l2({layer})", lambda t: _mean_rest((t - constant).pow(2)).add(1e-12).sqrt())


def alpha_norm(
    layer: str = "image", alpha: float = 6.0, constant: float = 0.5, batch: int | Sequence[int] | None = None
) -> Objective:
    """Mean ``|t - constant|^alpha`` (Mahendran & Vedaldi's alpha-norm prior: a large alpha keeps pixels in range)."""
    name = f"alpha_norm({layer}, {alpha:g})"
    return _per_image(layer, batch, name, lambda t: _mean_rest((t - constant).abs() ** alpha))


def feature_distance(layer: str, target: torch.Tensor, batch: int | Sequence[int] | None = None) -> Objective:
    """``||phi(x) - phi_0||^2 / ||phi_0||^2`` per image: the inversion loss (target broadcast over the batch
    or one per image)."""
    ref = target.detach()

    def score(t: torch.Tensor) -> torch.Tensor:
        r = ref.to(t.device, t.dtype).expand_as(t)
        return (t - r).flatten(1).pow(2).sum(1) / r.flatten(1).pow(2).sum(1).clamp_min(1e-12)

    return _per_image(layer, batch, f"feature_distance({layer})", score)


def diversity(layer: str) -> Objective:
    """Per image, the mean cosine similarity of its Gram matrix (style) at ``layer`` with the other images'
    (Lucid's diversity term). Subtract it to make a batch cover different facets."""

    def fn(acts: dict[str, torch.Tensor]) -> torch.Tensor:
        t = acts[layer]
        b, c = t.shape[:2]
        if b < 2:
            return t.new_zeros(b)
        flat = t.reshape(b, c, -1)  # (B, C, HW)
        gram = F.normalize((flat @ flat.transpose(1, 2)).flatten(1), dim=1)  # (B, C*C)
        sim = gram @ gram.T  # (B, B)
        return (sim.sum(1) - sim.diagonal()) / (b - 1)

    return Objective(fn, [layer], f"diversity({layer})")


def alignment(layer: str, decay_ratio: float = 2.0) -> Objective:
    """Squared distance between the activations of batch neighbours (up to 4 apart, weighted
    ``decay_ratio**-d``); subtract it so an interpolation keeps landmarks in place."""

    def fn(acts: dict[str, torch.Tensor]) -> torch.Tensor:
        t = acts[layer]
        b = t.shape[0]
        out = t.new_zeros(b)
        for d in range(1, min(4, b - 1) + 1):
            dist = (t[d:] - t[:-d]).flatten(1).pow(2).mean(1) / decay_ratio**d  # (B - d,)
            # Each pair's penalty is shared by both images.
            out = out + F.pad(dist, (0, d)) / 2 + F.pad(dist, (d, 0)) / 2
        return out

    return Objective(fn, [layer], f"alignment({layer}, {decay_ratio:g})")


def channels(layer: str, indices: Sequence[int], scale: torch.Tensor | Sequence[float] | None = None) -> Objective:
    """Image ``i`` of the batch maximizes channel ``indices[i]`` (divided by ``scale[i]`` when given):
    many channels in one render, in one vectorized objective."""
    idx = torch.as_tensor(list(indices), dtype=torch.long)
    div = None if scale is None else torch.as_tensor(scale, dtype=torch.float32).flatten()

    def fn(acts: dict[str, torch.Tensor]) -> torch.Tensor:
        t = acts[layer]
        if t.shape[0] != idx.numel():
            raise ValueError(f"channels(): {idx.numel()} channels but a batch of {t.shape[0]} images")
        sel = t[torch.arange(t.shape[0], device=t.device), idx.to(t.device)]  # (B, ...) one channel per image
        out = _mean_rest(sel)
        return out if div is None else out / div.to(out.device, out.dtype)

    shown = ", ".join(map(str, list(indices)[:6])) + (", ..." if len(indices) > 6 else "")
    return Objective(fn, [layer], f"channels({layer}: [{shown}])")


def classes(
    indices: Sequence[int], logprob: bool = False, scale: torch.Tensor | Sequence[float] | None = None
) -> Objective:
    """Image ``i`` of the batch maximizes the logit (or log-probability) of class ``indices[i]`` (divided by
    ``scale[i]`` when given)."""
    idx = torch.as_tensor(list(indices), dtype=torch.long)
    div = None if scale is None else torch.as_tensor(scale, dtype=torch.float32).flatten()

    def fn(acts: dict[str, torch.Tensor]) -> torch.Tensor:
        t = acts[LOGITS]
        if logprob:
            t = F.log_softmax(t, 1)
        out = t[torch.arange(t.shape[0], device=t.device), idx.to(t.device)]
        return out if div is None else out / div.to(out.device, out.dtype)

    return Objective(fn, [LOGITS], f"classes({'logprob' if logprob else 'logit'}: {list(indices)})")
