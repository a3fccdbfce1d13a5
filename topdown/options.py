"""Command-line pieces every topdown command shares (jsonargparse underneath, as LightningCLI).

Every option is typed. A list option takes a list (``--ckpt '[a.ckpt, b.ckpt]'``) or grows one item at a time
the way jsonargparse appends (``--ckpt+ a.ckpt --ckpt+ b.ckpt``). A section of a config (the suite, the
visualizations) is its dataclass, given inline or as the path of its own YAML file.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from jsonargparse import ActionConfigFile, ArgumentParser

from .errors import ConfigError

T = TypeVar("T")
#: The datasets a job (the pipeline, the experiment) runs on: each has its ``configs/data/<dataset>.yaml``.
JobDataset = Literal["synthetic", "flower_photos", "flowers102"]

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


@dataclass
class DataRoot:
    """A command's ``data`` section: ``--data.root`` (``data: {root: ...}`` in YAML), spelled as in ``train.py``.

    Args:
        root: where the real images are (default ``$TOPDOWN_DATA_ROOT`` or ``./data``).
    """

    root: str | None = None


@dataclass
class DataChoice(DataRoot):
    """The ``data`` section of a command that picks its dataset: ``--data.dataset`` and ``--data.root``.

    Args:
        root: where the real images are (default ``$TOPDOWN_DATA_ROOT`` or ``./data``).
        dataset: ``synthetic``, ``flower_photos`` or ``flowers102`` (adds ``configs/data/<dataset>.yaml``: the
            data and its recipe; for the procedural flowers, demo-sized nets on a short schedule).
    """

    dataset: JobDataset = "synthetic"


def checkpoint_parser(
    prog: str, description: str, *, models: str, out: str, out_default: str | None = None, usage: str | None = None
) -> Any:
    """The parser of a command that reads checkpoints (the suite, the visualizer, the findings), with the options
    they share: ``--config`` (a YAML file of the options), ``--ckpt`` (``models``: which ones, in what order),
    ``--names``, ``--out`` (``out``: what goes there; required unless ``out_default``) and ``--data.root``. The
    command adds its own options and its settings dataclass."""
    parser = ArgumentParser(prog=prog, usage=usage, description=description, default_env=False, exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of the options below")
    parser.add_argument(
        "--ckpt", type=list[str], default=[], help=f"checkpoints, a list or --ckpt+ PATH each: {models}"
    )
    parser.add_argument(
        "--names",
        type=list[str] | None,
        default=None,
        help="a result key per checkpoint, a list or --names+ NAME each (default: baseline/topdown from the "
        "architecture)",
    )
    if out_default is None:
        parser.add_argument("--out", type=str, required=True, help=f"output folder: {out}")
    else:
        parser.add_argument("--out", type=str, default=out_default, help=f"output folder: {out}")
    parser.add_argument(
        "--data.root",
        type=str | None,
        default=None,
        help="where the real images are (default: $TOPDOWN_DATA_ROOT or ./data)",
    )
    return parser


def parse_options(cls: type[T], argv: list[str], doc: str | None = None, module: str | None = None) -> T:
    """A command's or a script's options: ``cls`` (a dataclass whose fields, with their defaults, are the options,
    each helped by its docstring's ``Args:`` entry; a dataclass field is a section, ``--data.root``) from an
    optional YAML ``--config`` and ``argv`` over it (``--image_size 64``, ``--lucent false``, ``--models '[a, b]'``
    or ``--models+ c``). A bad option or section raises one-line :class:`ConfigError`; ``--help`` prints them all,
    under ``doc``'s first paragraph and ``python -m <module>`` (a command's ``__doc__`` and ``__name__``: a command
    run as ``python -m`` calls the ``main`` of its importable module, so its name is never ``__main__``)."""
    parser = ArgumentParser(
        prog=f"python -m {module}" if module else None,
        description=(doc or "").split("\n\n")[0] or None,
        default_env=False,
        exit_on_error=False,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML config file: its keys are the options below")
    parser.add_class_arguments(cls, nested_key=None)
    return section_of(cls, parser.instantiate(parse_args(parser, argv)))


def section_of(cls: type[T], init: Any) -> T:
    """The dataclass ``cls`` from the instantiated namespace ``init`` of a parser that holds its fields at the top
    (``add_class_arguments(cls, nested_key=None)``), beside any other options."""
    return cls(**{k: init[k] for k in cls.__dataclass_fields__ if k in init})


def load_section(cls: type[T], source: str | Path | dict[str, Any] | None = None, **overrides: Any) -> T:
    """A config section (a dataclass such as ``SuiteConfig`` or ``VisConfig``) from its YAML file or a mapping,
    parsed as the commands parse it (unknown keys and wrong types are one-line :class:`ConfigError`), then
    ``overrides`` (field values) applied."""
    parser = ArgumentParser(exit_on_error=False, default_env=False)
    parser.add_class_arguments(cls, nested_key="section")
    if source is None:
        ns = parse_args(parser, [])
    elif isinstance(source, dict):
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
