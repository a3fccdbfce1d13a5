"""Running a function over a large set of images a batch at a time: the one batching loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

#: An argument cut into batches: a tensor (along its first dimension) or a list of tensors of the same length
#: (a pyramid's levels), cut alike.
Batchable = torch.Tensor | Sequence[torch.Tensor]


def _length(x: Batchable) -> int:
    return len(x) if isinstance(x, torch.Tensor) else len(x[0])


def _slice(x: Batchable, lo: int, hi: int) -> Batchable:
    return x[lo:hi] if isinstance(x, torch.Tensor) else [t[lo:hi] for t in x]


def map_batches(fn: Callable[..., Any], *args: Batchable, batch_size: int) -> Any:
    """``fn`` on the same ``batch_size`` slice of every one of ``args``, in order, its outputs concatenated along
    the first dimension: a tensor, or a dict of tensors concatenated key by key."""
    n = _length(args[0])
    if any(_length(a) != n for a in args):
        raise ValueError(f"map_batches: arguments of different lengths {[_length(a) for a in args]}")
    outs = [fn(*(_slice(a, lo, lo + batch_size) for a in args)) for lo in range(0, n, batch_size)]
    if outs and isinstance(outs[0], dict):
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
    return torch.cat(outs) if outs else torch.empty(0)
