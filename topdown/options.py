"""Command-line pieces every topdown command shares (jsonargparse underneath, as LightningCLI).

Every option is typed. A list option takes a list (``--ckpt '[a.ckpt, b.ckpt]'``) or grows one item at a time
the way jsonargparse appends (``--ckpt+ a.ckpt --ckpt+ b.ckpt``). A section of a config (the suite, the
visualizations) is its dataclass, given inline or as the path of its own YAML file.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, TypeVar

from jsonargparse import ActionConfigFile, ArgumentParser

from .errors import ConfigError

T = TypeVar("T")

_NOT_A_LIST = re.compile(r'Parser key "([\w.]+)":\s+Expected a <class \'list\'>')


def parse_args(parser: Any, argv: list[str]) -> Any:
    """``parser.parse_args(argv)`` with any error as one ``ConfigError`` line (jsonargparse spreads its messages
    over several). The parser must be built with ``exit_on_error=False``."""
    try:
        return parser.parse_args(argv)
    except argparse.ArgumentError as err:
        text = " ".join(str(err).split())
        if m := _NOT_A_LIST.search(str(err)):
            key = m.group(1)
            text += f" (a list: --{key} '[a, b]', or --{key}+ a --{key}+ b to append)"
        raise ConfigError(text) from None


class DataOptions:
    """``--data.dataset`` and ``--data.root``, spelled as in ``train.py`` and ``evaluate.py``, for the commands
    whose own config holds them flat (the pipeline's ``dataset``/``data_root``, the experiment's ``data_root``).

    Args:
        dataset: ``synthetic``, ``flower_photos`` or ``flowers102`` (where the command takes one).
        root: where the real images are (default ``$TOPDOWN_DATA_ROOT`` or ``./data``).
    """

    def __init__(self, dataset: str | None = None, root: str | None = None) -> None:
        self.dataset = dataset
        self.root = root


def parse_command(parser: Any, argv: list[str]) -> Any:
    """A command's options from ``argv``; a bad option raises one-line :class:`~topdown.errors.ConfigError`
    (:func:`topdown.errors.run_command` prints it)."""
    return parse_args(parser, argv)


def parse_options(cls: type[T], argv: list[str], prog: str | None = None, description: str | None = None) -> T:
    """A script's options: ``cls`` (a dataclass whose fields, with their defaults, are the options, each helped by
    its docstring's ``Args:`` entry) built from ``argv`` (``--image_size 64``, ``--lucent false``,
    ``--models '[a, b]'`` or ``--models+ c``); a bad option raises one-line :class:`ConfigError`, ``--help``
    prints them all."""
    parser = ArgumentParser(prog=prog, description=description, default_env=False, exit_on_error=False)
    parser.add_class_arguments(cls)
    return cls(**parse_command(parser, argv).as_dict())


def parse_config(
    cls: type[T], argv: list[str], prog: str, description: str, config_help: str, data_skip: set[str] | None = None
) -> tuple[T, DataOptions]:
    """A job's config (the pipeline's, the experiment's): ``cls`` from a YAML ``--config`` and options over it,
    its sections typed, and the ``--data.*`` options (:class:`DataOptions`, less ``data_skip``) beside it; a bad
    option or section raises one-line :class:`ConfigError`."""
    parser = ArgumentParser(prog=prog, description=description, exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile, help=config_help)
    parser.add_class_arguments(cls, nested_key=None)
    parser.add_class_arguments(DataOptions, "data", skip=data_skip)
    init = parser.instantiate(parse_command(parser, argv))
    return cls(**{k: init[k] for k in cls.__dataclass_fields__ if k in init}), init.data


def load_section(cls: type[T], source: str | Path | dict[str, Any] | None = None, **overrides: Any) -> T:
    """A config section (a dataclass such as ``SuiteConfig`` or ``VisConfig``) from its YAML file or a mapping,
    parsed as the commands parse it (unknown keys and wrong types are one-line :class:`ConfigError`), then
    ``overrides`` (field values) applied."""
    parser = ArgumentParser(exit_on_error=False, default_env=False)
    parser.add_class_arguments(cls, nested_key="section")
    if source is None:
        ns = parse_args(parser, [])
    elif isinstance(source, dict):
        import json

        ns = parse_args(parser, ["--section", json.dumps(source)])
    else:
        if not Path(source).is_file():
            raise ConfigError(f"{source}: no such config file")
        ns = parse_args(parser, ["--section", str(source)])
    section = parser.instantiate(ns).section
    for key, value in overrides.items():
        if not hasattr(section, key):
            raise ConfigError(f"{cls.__name__}: unknown setting {key!r}")
        setattr(section, key, value)
    return section
