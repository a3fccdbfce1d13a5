"""Wall time of the main job, stage by stage, from a fresh output folder.

    python benchmarks/bench_main_job.py                      # the default job (scripts/run.sh), ~10 min
    python benchmarks/bench_main_job.py --out /tmp/job -- --epochs 2   # anything after -- goes to the pipeline

It runs ``python -m topdown.pipeline --config configs/pipeline.yaml`` in a new process, as ``scripts/run.sh``
does once ``.venv`` exists, into an output folder that must not hold a run yet (nothing is resumed), and
prints the wall time of the whole command and of each stage (from ``pipeline.json``), each net's training
throughput, what the nets reached (test accuracy, weakest class), the slowest suite parts and visualization
methods (each with its share of its stage: where a trim would pay) and the machine's load average before and
after: a busy machine inflates every figure, so compare runs made at the same load. It measures the machine's
float32 matmul speed before and after the job (``benchmarks/machine.py``; the scale uses their mean) and prints
every time also scaled to a 77 GFLOP/s machine (a 2-core AVX2 cloud core or laptop, the slower machine the job
is sized for: ten minutes there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from machine import REFERENCE_GFLOPS, matmul_gflops

from topdown.env import usable_cores
from topdown.errors import ConfigError, run_command
from topdown.io import read_json_if_there
from topdown.options import parse_options
from topdown.results_view import VisResults
from topdown.store import PartStore

ROOT = Path(__file__).resolve().parents[1]


def _clock(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}"


@dataclass
class MainJobBenchOptions:
    """What bench_main_job.py runs (anything after ``--`` goes to the pipeline).

    Args:
        out: output folder, without a run in it (default: a new temporary one).
        pipeline: the pipeline's config.
    """

    out: str | None = None
    pipeline: str = "configs/pipeline.yaml"


def run(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    args = parse_options(MainJobBenchOptions, own, __doc__)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="topdown-main-job-"))
    if (out / "pipeline.json").exists():
        raise ConfigError(f"--out {out} already holds a run (pipeline.json); give a fresh folder")

    cmd = [sys.executable, "-m", "topdown.pipeline", "--config", args.pipeline, "--out", str(out), *extra]
    cores = usable_cores()
    torch.set_num_threads(cores)
    gflops_before = matmul_gflops()
    cap = torch.backends.cpu.get_cpu_capability()
    print(f"machine: {cap} kernels, {cores} cores, 2048² float32 matmul {gflops_before:.0f} GFLOP/s", flush=True)
    load_before = os.getloadavg()
    print(f"$ {' '.join(cmd)}", flush=True)
    started = time.perf_counter()
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    wall = time.perf_counter() - started
    load_after = os.getloadavg()
    if rc != 0:
        print(f"error: the main job exited with status {rc}", file=sys.stderr)
        return rc

    # A cloud core's matmul speed drifts by a quarter within minutes: measured before and after the job, the scale
    # uses their mean
    gflops_after = matmul_gflops()
    gflops = (gflops_before + gflops_after) / 2
    scale = gflops / REFERENCE_GFLOPS
    state = json.loads((out / "pipeline.json").read_text())
    stages = state["stages"]
    measured = f"{gflops:.0f} GFLOP/s (mean of {gflops_before:.0f} before and {gflops_after:.0f} after)"
    where = f"{cores} CPU cores, {cap} kernels, {measured}"
    print(f"\nmain job wall time: {_clock(wall)} ({wall:.0f} s) on {where}")
    print(f"scaled to a {REFERENCE_GFLOPS:.0f} GFLOP/s machine (x {scale:.2f}): {_clock(wall * scale)}")
    print(f"load average (1/5/15 min) before: {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, ", end="")
    print(f"after: {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f}")
    print(f"\n{'stage':<18}{'wall':>8}{'at 77':>8}{'share':>8}  detail")
    accounted = 0.0
    for key, stage in stages.items():
        seconds = float(stage.get("seconds") or 0.0)
        accounted += seconds
        detail = ""
        if key.startswith("train/"):
            detail = f"{stage.get('epochs')} epochs, {stage.get('train_images_per_s')} training images/s"
            if stage.get("val_acc") is not None:
                detail += f", validation accuracy {100 * stage['val_acc']:.1f}%"
        print(f"{key:<18}{_clock(seconds):>8}{_clock(seconds * scale):>8}{seconds / wall:>8.0%}  {detail}")
    rest = wall - accounted
    times = f"{_clock(rest):>8}{_clock(rest * scale):>8}{rest / wall:>8.0%}"
    print(f"{'start-up, other':<18}{times}  imports, loading, the closing table")

    results = out / "eval" / "results.json"
    if results.exists():
        models = json.loads(results.read_text())["models"]
        print("\ntest accuracy (whole test split), per class:")
        for name, m in models.items():
            clean = m.get("clean") or {}
            per_class = clean.get("per_class_acc") or {}
            classes = ", ".join(f"{c} {100 * a:.1f}" for c, a in per_class.items())
            print(f"  {name}: {100 * clean.get('top1', float('nan')):.1f}% ({classes})")
    _print_heaviest(out)
    print(f"\nreport: {out / 'report.html'}")
    return 0


def _heaviest(out: Path) -> dict[str, list[tuple[str, float]]]:
    """Per stage, ``(model/part, seconds)`` of each stored suite part and each visualization method, slowest first."""
    found: dict[str, list[tuple[str, float]]] = {"evaluate": [], "visualize": []}
    for path in sorted(PartStore(out / "eval").root.glob("*/*.json")):
        doc = read_json_if_there(path) or {}
        seconds = (doc.get("result") or {}).get("time_s")
        if isinstance(seconds, int | float):
            found["evaluate"].append((f"{doc.get('model')}/{doc.get('part')}", float(seconds)))
    vis = VisResults(read_json_if_there(out / "vis" / "vis.json"))
    for model, entry in vis.models.items():
        for key, method in entry.methods.items():
            if method.seconds is not None:
                found["visualize"].append((f"{model}/{key}", float(method.seconds)))
    return {stage: sorted(rows, key=lambda r: -r[1]) for stage, rows in found.items()}


def _print_heaviest(out: Path, most: int = 8) -> None:
    """Where the evaluation and the visualizations spend their time: the slowest parts, with their share."""
    for stage, rows in _heaviest(out).items():
        total = sum(s for _, s in rows)
        if not rows or total <= 0:
            continue
        print(f"\n{stage}: {len(rows)} parts, {total:.0f} s in all; the slowest:")
        for name, seconds in rows[:most]:
            print(f"  {name:<44}{seconds:>7.1f} s{seconds / total:>6.0%}")


def main(argv: list[str] | None = None) -> int:
    return run_command(run, argv)


if __name__ == "__main__":
    sys.exit(main())
