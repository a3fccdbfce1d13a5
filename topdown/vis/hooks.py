"""Reading activations by module name, and the ReLU that lets dead channels come alive.

Layers are addressed by their ``model.named_modules()`` name (``"layer2.0.conv1"``, ``"head.fc"``). Two
names are special: ``"input"`` is the image the model was given and ``"logits"`` is its output. A name
with the suffix ``"@in"`` reads the *input* of that module instead of its output, so
``"layer2.0.act2@in"`` is the pre-activation of a ReLU.

Every hook lives inside a context manager and is removed on exit, exceptions included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from ..errors import ConfigError

INPUT = "input"
LOGITS = "logits"
_SPECIAL = (INPUT, LOGITS, "image")


class _StopForwardError(Exception):
    """Raised by the last needed hook so the rest of the network is not computed."""


def split_key(key: str) -> tuple[str, bool]:
    """``"layer2.0.act2@in"`` -> ``("layer2.0.act2", True)``; plain names -> ``(name, False)``."""
    name, sep, where = key.partition("@")
    if sep and where != "in":
        raise ConfigError(f"layer key {key!r}: the only suffix is '@in' (the module's input)")
    return name, bool(sep)


def resolve_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``, with an error that lists nearby names when it does not exist."""
    modules = dict(model.named_modules())
    if name not in modules:
        prefix = name.rsplit(".", 1)[0] if "." in name else ""
        near = [n for n in modules if n and n.startswith(prefix)][:12] or [n for n in modules if n][:12]
        raise KeyError(f"no module named {name!r} in {type(model).__name__}; some names: {', '.join(near)}")
    return modules[name]


def device_of(model: nn.Module) -> torch.device:
    """Where ``model`` is: its first parameter's device (else its first buffer's, else the CPU)."""
    p = next(iter(model.parameters()), None)
    if p is None:
        b = next(iter(model.buffers()), None)
        return b.device if b is not None else torch.device("cpu")
    return p.device


def layer_names(model: nn.Module, kind: type[nn.Module] | tuple[type[nn.Module], ...] | None = None) -> list[str]:
    """Names of every submodule (of the given type), in registration order."""
    return [n for n, m in model.named_modules() if n and (kind is None or isinstance(m, kind))]


class Activations(dict):
    """``{layer key: tensor}`` captured during one forward pass (plus ``"input"`` and ``"logits"``)."""

    def __missing__(self, key: str) -> torch.Tensor:
        raise KeyError(
            f"activation {key!r} was not captured; captured: {sorted(self)}. Objectives declare the layers "
            "they read, so this usually means the layer name is wrong or the module never ran."
        )


class capture(contextlib.AbstractContextManager):  # noqa: N801  (used like a function: ``with capture(...)``)
    """Record the outputs (or ``@in`` inputs) of named modules while the block runs.

    ``with capture(model, ["layer2", "layer3.0.act2@in"]) as acts: model(x)`` leaves the tensors in
    ``acts``. With ``stop_early=True`` the forward pass is cut short (inside :meth:`run`) as soon as every
    requested layer has fired, so a channel of ``layer2`` never pays for ``layer3`` and the head. A module
    that runs several times in one pass (a shared ReLU) keeps its first call when stopping early and its
    last call otherwise.

    Args:
        model: any ``nn.Module``.
        keys: layer keys; ``"input"``, ``"image"`` and ``"logits"`` are filled by :meth:`run`.
        stop_early: allow :meth:`run` to stop the forward pass once everything needed is captured.
    """

    def __init__(self, model: nn.Module, keys: Iterable[str], stop_early: bool = False) -> None:
        self.model = model
        self.keys = list(dict.fromkeys(keys))
        self.stop_early = stop_early and LOGITS not in self.keys
        self.acts = Activations()
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._pending: set[str] = set()
        self._targets: list[tuple[str, str, bool]] = []
        for key in self.keys:
            if key in _SPECIAL:
                continue
            name, use_input = split_key(key)
            resolve_module(model, name)  # fail now on a wrong name
            self._targets.append((key, name, use_input))

    def __enter__(self) -> Activations:
        # Modules are looked up on entry, not at construction: a context entered in between (the
        # redirected ReLU) may have swapped them.
        for key, name, use_input in self._targets:
            module = resolve_module(self.model, name)
            self._handles.append(module.register_forward_hook(self._hook(key, use_input)))
        return self.acts

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, key: str, use_input: bool):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if self.stop_early and key in self.acts:
                return
            value = inputs[0] if use_input else output
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"layer {key!r} produced a {type(value).__name__}, not a tensor")
            self.acts[key] = value
            self._pending.discard(key)
            if self.stop_early and not self._pending:
                raise _StopForwardError

        return hook

    def run(self, x: torch.Tensor, image: torch.Tensor | None = None) -> Activations:
        """Forward ``x`` through the model, filling ``"input"``, ``"image"`` and (if it ran) ``"logits"``."""
        self.acts.clear()
        self.acts[INPUT] = x
        self.acts["image"] = x if image is None else image
        self._pending = {k for k, _, _ in self._targets}
        if self.stop_early and not self._pending:
            return self.acts  # only the image is needed: no forward pass at all
        with contextlib.suppress(_StopForwardError):
            self.acts[LOGITS] = self.model(x)
        return self.acts


def activations(
    model: nn.Module, x: torch.Tensor, keys: Iterable[str], stop_early: bool = True, grad: bool = False
) -> Activations:
    """One forward pass of ``x`` (without autograd unless ``grad``); returns the requested activations."""
    cap = capture(model, keys, stop_early=stop_early)
    with cap, torch.set_grad_enabled(grad):
        return cap.run(x)


# --------------------------------------------------------------------------------------------------
# Redirected ReLU (Lucid): while on, the gradient also flows through inactive ReLUs when it would push
# them up, so a channel that is zero everywhere at the start can still be optimized.
# --------------------------------------------------------------------------------------------------
class _RedirectedReLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        relu_grad = grad * (x > 0)
        # Gradient descent moves x by -grad: grad < 0 pushes an inactive unit towards activity.
        redirected = grad * ((x <= 0) & (grad < 0))
        # Redirect only for the examples whose ordinary ReLU gradient vanished entirely.
        dead = relu_grad.flatten(1).abs().sum(1) == 0
        dead = dead.view(-1, *([1] * (x.dim() - 1)))
        return torch.where(dead, redirected, relu_grad)


class RedirectedReLU(nn.Module):
    """A ReLU whose backward pass is redirected while ``enabled`` (the forward pass is always a ReLU)."""

    def __init__(self) -> None:
        super().__init__()
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.enabled and torch.is_grad_enabled() and x.requires_grad:
            return _RedirectedReLUFn.apply(x)
        return torch.relu(x)


@contextlib.contextmanager
def redirected_relu(model: nn.Module) -> Iterator[list[RedirectedReLU]]:
    """Swap every ``nn.ReLU`` module of ``model`` for a :class:`RedirectedReLU`; always restored on exit.

    Yields the new modules, so a caller can switch them off after the first steps (``m.enabled = False``).
    Only ``nn.ReLU`` *modules* are swapped: a network that calls ``F.relu`` keeps its plain ReLU.
    """
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    new: list[RedirectedReLU] = []
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                swapped.append((parent, child_name, child))
    try:
        for parent, child_name, _ in swapped:
            r = RedirectedReLU()
            new.append(r)
            setattr(parent, child_name, r)
        yield new
    finally:
        for parent, child_name, old in swapped:
            setattr(parent, child_name, old)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no weight gradients while optimizing the input; both restored on exit."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
