"""Golden records: what a record was made on, and how a new run is compared with it.

A seeded run on the committed tiny nets (``tests/tiny_nets.py``) is bitwise reproducible with the torch build,
CPU, kernel set and thread count it was recorded with (:func:`machine`), so there every number must be equal.
Elsewhere (AVX2 instead of AVX512, torch's ``default`` kernels, another CPU, one thread) only the rounding of sums
differs, and the comparison allows the tolerance each golden test states beside its measured differences.
"""

from __future__ import annotations

import math
import platform
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

#: A decimal figure in a sentence (integers, such as image counts, and per-image bit strings stay exact).
_NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?")

#: ``(rel, abs)``: a number passes when ``|new - old| <= abs + rel * |old|``.
Tolerance = tuple[float, float]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else ``platform.processor()``): oneDNN and MKL choose their blocking
    and code paths by the CPU itself, not only by its instruction set."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, str]:
    """What bitwise equality of float results depends on: the torch build, the CPU and the kernels torch picks on
    it, and the threads it splits a sum over (the tests run two, or one on a one-core machine)."""
    return {
        "torch": str(torch.__version__),  # a plain str: torch.load(weights_only=True) reads it back
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "threads": str(torch.get_num_threads()),
    }


def differences(
    golden: Any,
    new: Any,
    tolerance: Callable[[str], Tolerance] | None,
    path: str,
    optional: frozenset[str] | None = frozenset(),
) -> list[str]:
    """Where ``new`` differs from ``golden``, one line each. ``tolerance(path)`` gives the allowed difference of
    the number at ``path`` (``None``: equal, bitwise; otherwise a text is compared with its decimal figures masked).
    Keys in ``optional`` may be in ``new`` and not in the record (fields added after it was made; ``None``: any
    key); every other key must be in both."""
    if isinstance(golden, dict) and isinstance(new, dict):
        kept = set(golden) if optional is None else set(new) - (optional - set(golden))
        out = [f"{path}.{k}: only in the record" for k in sorted(set(golden) - set(new))]
        out += [f"{path}.{k}: only in the new run" for k in sorted(kept - set(golden))]
        for k in sorted(set(golden) & set(new)):
            out += differences(golden[k], new[k], tolerance, f"{path}.{k}", optional)
        return out
    if isinstance(golden, list) and isinstance(new, list):
        if len(golden) != len(new):
            return [f"{path}: {len(golden)} items recorded, {len(new)} now"]
        return [
            d
            for i, (g, n) in enumerate(zip(golden, new))
            for d in differences(g, n, tolerance, f"{path}[{i}]", optional)
        ]
    numbers = (int, float)
    if isinstance(golden, float) and isinstance(new, float) and math.isnan(golden) and math.isnan(new):
        return []
    if (
        tolerance is not None
        and isinstance(golden, numbers)
        and isinstance(new, numbers)
        and not isinstance(golden, bool)
    ):
        rel, abs_ = tolerance(path)
        same = abs(new - golden) <= abs_ + rel * abs(golden)
    elif tolerance is not None and isinstance(golden, str) and isinstance(new, str):
        # a sentence that quotes figures (a sanity check's detail): its words must match; the figures are
        # compared where they are stored as numbers
        same = _NUMBER.sub("#", golden) == _NUMBER.sub("#", new)
    else:
        same = type(golden) is type(new) and golden == new
    return [] if same else [f"{path}: recorded {golden!r}, now {new!r}"]


def largest_relative_differences(golden: Any, new: Any, path: str = "", floor: float = 1e-6) -> list[tuple[float, str]]:
    """``(|new - old| / max(|old|, floor), path)`` for every number both hold, largest first: what a tolerance
    is chosen from (``python tests/test_vis_golden.py --measure`` prints it)."""
    if isinstance(golden, dict) and isinstance(new, dict):
        return sorted(
            (
                d
                for k in set(golden) & set(new)
                for d in largest_relative_differences(golden[k], new[k], f"{path}.{k}", floor)
            ),
            reverse=True,
        )
    if isinstance(golden, list) and isinstance(new, list) and len(golden) == len(new):
        return sorted(
            (
                d
                for i, (g, n) in enumerate(zip(golden, new))
                for d in largest_relative_differences(g, n, f"{path}[{i}]", floor)
            ),
            reverse=True,
        )
    if isinstance(golden, (int, float)) and isinstance(new, (int, float)) and not isinstance(golden, bool):
        if math.isnan(golden) or math.isnan(new) or golden == new:
            return []
        return [(abs(new - golden) / max(abs(golden), floor), f"{path} ({golden!r} -> {new!r})")]
    return []
