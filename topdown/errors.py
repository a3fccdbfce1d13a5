"""The errors a user can act on. Every command prints one of these as a single ``error:`` line and exits with
status 1 (with ``TOPDOWN_TRACEBACK=1``, the traceback instead); any other exception is a bug in topdown and shows
its traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TopdownError(Exception):
    """Bad input the user can fix: the message names the file, key or value at fault."""


class ConfigError(TopdownError, ValueError):
    """A setting that cannot work (a config key, an option, a constructor argument from a YAML file)."""


#: What a command prints as one line: the project's own errors, and a file the user named that is not there.
USER_ERRORS: tuple[type[BaseException], ...] = (TopdownError, FileNotFoundError)


def run_command(run: Callable[[list[str]], T], argv: list[str] | None = None) -> T:
    """``run(argv)`` (default ``sys.argv[1:]``) for any topdown command: a user error (:data:`USER_ERRORS`)
    printed as one ``error:`` line with exit status 1, or raised with its traceback where ``TOPDOWN_TRACEBACK`` is
    set. Every other exception propagates: it is a bug."""
    try:
        return run(list(sys.argv[1:] if argv is None else argv))
    except USER_ERRORS as err:
        if os.environ.get("TOPDOWN_TRACEBACK"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
