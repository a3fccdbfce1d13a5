"""Build networks by name, and rebuild them from a recorded ``arch_config``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .base import ImageClassifierNet
from .resnet import ResNet
from .topdown import TopDownResNet

_REGISTRY: dict[str, Callable[..., ImageClassifierNet]] = {}
ARCHITECTURES: dict[str, type[ImageClassifierNet]] = {"ResNet": ResNet, "TopDownResNet": TopDownResNet}


def register_model(name: str) -> Callable[[Callable[..., ImageClassifierNet]], Callable[..., ImageClassifierNet]]:
    """Decorator: register a builder ``fn(**overrides) -> network`` under ``name``."""

    def wrap(fn: Callable[..., ImageClassifierNet]) -> Callable[..., ImageClassifierNet]:
        if name in _REGISTRY:
            raise ConfigError(f"model {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **overrides: Any) -> ImageClassifierNet:
    """Build a registered network; keyword arguments override its defaults (``num_classes=5``)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _REGISTRY[name](**overrides)


def build_from_config(config: dict[str, Any]) -> ImageClassifierNet:
    """Rebuild a network from ``{"class_path": ..., "init_args": ...}`` (only topdown's own classes)."""
    if not isinstance(config, dict) or "class_path" not in config:
        raise ConfigError(f"not an architecture config (needs 'class_path'): {config!r}")
    cls_name = str(config["class_path"]).rsplit(".", 1)[-1]
    if cls_name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {config['class_path']!r}; topdown builds {sorted(ARCHITECTURES)}")
    try:
        return ARCHITECTURES[cls_name](**config.get("init_args", {}))
    except TypeError as err:
        raise ConfigError(f"architecture {cls_name}: bad init_args {config.get('init_args')}: {err}") from err


def _preset(cls: Callable[..., ImageClassifierNet], **defaults: Any) -> Callable[..., ImageClassifierNet]:
    """A builder of ``cls`` with ``defaults``; its keyword arguments override them."""

    def build(**kw: Any) -> ImageClassifierNet:
        return cls(**{**defaults, **kw})

    return build


_TINY = {"widths": (8, 16, 32), "depths": (1, 1, 1)}

#: The registered networks: each a class and the defaults it is built with.
PRESETS: dict[str, Callable[..., ImageClassifierNet]] = {
    # half-width pre-activation ResNet-18 (32-64-128-256), 3x3 stem + max-pool: the 64 px default
    "baseline": _preset(ResNet),
    # the blur control: the baseline behind a fixed low-pass (the 1/2 Gaussian pyramid level, upsampled)
    "baseline_blur": _preset(ResNet, input_lowpass=2),
    # its top-down mirror: add+concat merges with 1x1 fusion, Gaussian pyramid; then one choice changed each
    "topdown": _preset(TopDownResNet),
    "topdown_add": _preset(TopDownResNet, merge="add"),
    "topdown_concat": _preset(TopDownResNet, merge="concat"),
    "topdown_uniform": _preset(TopDownResNet, width_schedule="uniform"),
    "topdown_reverse": _preset(TopDownResNet, width_schedule="reverse"),
    # three stages, one block each, widths 8-16-32: for tests and quick experiments
    "tiny_baseline": _preset(ResNet, **_TINY),
    "tiny_topdown": _preset(TopDownResNet, **_TINY),
}
for _name, _build in PRESETS.items():
    register_model(_name)(_build)
