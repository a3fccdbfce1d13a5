"""Command-line pieces every topdown command shares (jsonargparse underneath, as LightningCLI)."""

from __future__ import annotations

import argparse
from typing import Any


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
    """``parser.parse_args(argv)`` with any error as one ``ValueError`` line (jsonargparse spreads its messages
    over several). The parser must be built with ``exit_on_error=False``."""
    try:
        return parser.parse_args(argv)
    except argparse.ArgumentError as err:
        raise ValueError(" ".join(str(err).split())) from None
