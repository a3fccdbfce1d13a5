"""Command-line pieces every topdown command shares (jsonargparse underneath, as LightningCLI)."""

from __future__ import annotations

import argparse
from typing import Any

from .errors import ConfigError


class AppendAction(argparse.Action):
    """A list option that can be repeated: ``--ckpt a --ckpt b`` or ``--ckpt '[a, b]'``.

    The first use on the command line replaces the default (or what a config file read before it set);
    each further use appends. The parser remembers which options it has seen, so build one per parse.
    """

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        import yaml

        text = str(values)
        new = yaml.safe_load(text) if text.lstrip().startswith("[") else [text]
        if not isinstance(new, list) or not all(isinstance(v, str) for v in new):
            raise argparse.ArgumentError(self, f"expected a value or a list of values, got {text!r}")
        seen = parser.__dict__.setdefault("_appended_options", set())
        before = (getattr(namespace, self.dest, None) or []) if self.dest in seen else []
        seen.add(self.dest)
        setattr(namespace, self.dest, [*before, *new])


def parse_args(parser: Any, argv: list[str]) -> Any:
    """``parser.parse_args(argv)`` with any error as one ``ConfigError`` line (jsonargparse spreads its messages
    over several). The parser must be built with ``exit_on_error=False``."""
    try:
        return parser.parse_args(argv)
    except argparse.ArgumentError as err:
        raise ConfigError(" ".join(str(err).split())) from None


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


#: Flat options kept for one release, and what replaced them.
DEPRECATED = {"--dataset": "--data.dataset", "--data_root": "--data.root"}


def warn_deprecated(argv: list[str]) -> None:
    """One line on stderr for each deprecated option given on the command line."""
    import sys

    for old, new in DEPRECATED.items():
        if any(a == old or a.startswith(old + "=") for a in argv):
            print(f"note: {old} is deprecated and will be removed; use {new}", file=sys.stderr)


def parse_command(parser: Any, argv: list[str]) -> Any:
    """A command's options from ``argv``, deprecated options noted; a bad option raises one-line
    :class:`~topdown.errors.ConfigError` (:func:`topdown.errors.run_command` prints it)."""
    warn_deprecated(argv)
    return parse_args(parser, argv)
