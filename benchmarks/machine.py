"""How fast this machine is, printed beside every timing so that timings from different CPUs compare.

    python benchmarks/machine.py     # the kernel set torch picked and the float32 matmul GFLOP/s

Scale a wall time to another machine by the ratio of the two GFLOP/s figures (the main job's benchmark does
so for a 77 GFLOP/s machine: a 2-core AVX2 cloud core or laptop).
"""

from __future__ import annotations

import time

import torch

from topdown.env import usable_cores

#: The slower machine the main job is sized for: a 2-core AVX2 AMD EPYC, 2048² float32 matmul.
REFERENCE_GFLOPS = 77.0


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """The best of ``repeats`` ``n``×``n`` float32 matmuls, in GFLOP/s, on torch's current threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def describe() -> str:
    """One line: CPU kernels, threads and matmul speed."""
    cap = torch.backends.cpu.get_cpu_capability()
    threads = f"{torch.get_num_threads()} threads of {usable_cores()} cores"
    return f"{cap} kernels, {threads}, 2048² matmul {matmul_gflops():.0f} GFLOP/s"


if __name__ == "__main__":
    print(describe())
