"""Seeds derived from names: every random draw of a run gets its own, stable across processes and resumes."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any mix of ints and strings (stable across processes, unlike ``hash``)."""
    ints = [
        p if isinstance(p, int) and p >= 0 else int.from_bytes(hashlib.sha256(str(p).encode()).digest()[:8], "little")
        for p in parts
    ]
    return int(np.random.SeedSequence(ints).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
