"""Time of each finding for one pair of nets (and of all of them), on the same test images as the findings stage.

    python benchmarks/bench_findings.py --ckpt+ <baseline.ckpt> --ckpt+ <topdown.ckpt> [--images 128] [--ig_steps 16]
                                        [--vis_steps 64] [--data.root DIR]

Each part of ``topdown.findings.compute_findings`` is timed on its own, per net (cue reliance, pyramid swaps,
localization and dissection need the procedural flowers), then CKA for the pair, and the total per pair is printed
beside the machine's float32 matmul speed (``benchmarks/machine.py``) and scaled to a 77 GFLOP/s machine. The class
renders' spectra are the visualizer's ``spectra`` method, timed here too with the main job's render steps
(``--vis_steps 64``; the visualizer's default is 128).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from machine import REFERENCE_GFLOPS, describe, matmul_gflops

from topdown.checkpoint import load_run
from topdown.data.subsets import stratified_subset
from topdown.errors import ConfigError, run_command
from topdown.findings import DEFAULT_LEVELS, SIGMAS
from topdown.findings.bands import band_reliance
from topdown.findings.cues import cue_reliance, pyramid_swaps
from topdown.findings.detectors import stage_detectors
from topdown.findings.localization import attributions, localization
from topdown.findings.similarity import cka_matrix
from topdown.findings.spectra import gradient_spectrum
from topdown.options import DataRoot, parse_options
from topdown.vis.config import VisConfig
from topdown.vis.dissection import synthetic_masks
from topdown.vis.methods import METHODS, Job
from topdown.vis.runner import build_context


@dataclass
class FindingsBenchOptions:
    """What bench_findings.py times.

    Args:
        ckpt: checkpoints, the baseline's then the top-down net's: a list, or ``--ckpt+ PATH`` each.
        images: test images (seeded, stratified by class).
        ig_steps: integrated-gradients steps.
        vis_steps: render steps of the spectra renders.
        data: ``--data.root``, where the real images are (default ``$TOPDOWN_DATA_ROOT`` or ``./data``).
    """

    ckpt: list[str] = field(default_factory=list)
    images: int = 128
    ig_steps: int = 16
    vis_steps: int = 64
    data: DataRoot = field(default_factory=DataRoot)


def run(argv: list[str]) -> None:
    args = parse_options(FindingsBenchOptions, argv, __doc__)
    if len(args.ckpt) < 2:
        raise ConfigError("--ckpt: give at least two checkpoints (the baseline's, then the top-down net's)")
    gflops = matmul_gflops()
    print(describe())
    loaded = load_run(args.ckpt, None, args.data.root)
    src, idx = loaded.data_module.splits()["test"]
    test = loaded.data_module.subset("test")
    chosen = stratified_subset(np.asarray(test.targets), args.images, 0)
    x = torch.stack([test[int(k)][0] for k in chosen])
    y = torch.tensor([test.targets[int(k)] for k in chosen])
    synthetic = loaded.data_module.dataset == "synthetic"
    masks = synthetic_masks(src, [idx[int(k)] for k in chosen]) if synthetic else None
    nets = {name: m.net.eval() for name, m in loaded.models.items()}
    levels = next(
        (n.pyramid.num_levels for n in nets.values() if getattr(n, "pyramid", None) is not None), DEFAULT_LEVELS
    )
    ig = {}  # the integrated gradients band reliance and localization share, timed on their own

    def integrated_gradients(n):
        ig[id(n)] = attributions(n, x, y, "integrated_gradients", n_steps=args.ig_steps)

    parts = {
        "gradient spectrum": lambda n: gradient_spectrum(n, x, y),
        "integrated grads": integrated_gradients,
        "band reliance": lambda n: band_reliance(n, x, y, levels, ig=ig[id(n)]),
    }
    if synthetic:
        parts |= {
            "cue reliance": lambda n: cue_reliance(n, x, y, src.class_table, SIGMAS),
            "pyramid swaps": lambda n: pyramid_swaps(n, x, y, src.class_table) if getattr(n, "pyramid", None) else None,
            "localization": lambda n: localization(n, x, y, masks > 0, n_steps=args.ig_steps, ig=ig[id(n)]),
            "dissection": lambda n: stage_detectors(n, x, y, masks),
        }
    vis = VisConfig(steps=args.vis_steps)
    ctx = build_context(vis, loaded.data_module, torch.device("cpu"))
    parts["spectra renders"] = lambda n: METHODS["spectra"].run(Job(n, None, ctx, vis.spectra))
    total = 0.0
    print(f"{len(x)} images, {args.ig_steps} integrated-gradients steps, {loaded.data_module.dataset}")
    for part, fn in parts.items():
        cells = []
        for name, net in nets.items():
            started = time.perf_counter()
            fn(net)
            took = time.perf_counter() - started
            total += took
            cells.append(f"{name} {took:6.1f} s")
        print(f"  {part:18s} " + "  ".join(cells))
    names = list(nets)
    started = time.perf_counter()
    cka_matrix(nets[names[0]], nets[names[1]], x)
    took = time.perf_counter() - started
    total += took
    print(f"  {'CKA (the pair)':18s} {took:6.1f} s")
    scaled = total * gflops / REFERENCE_GFLOPS
    ref = f"{REFERENCE_GFLOPS:.0f} GFLOP/s"
    print(f"total per pair: {total:.1f} s at {gflops:.0f} GFLOP/s; {scaled:.1f} s scaled to {ref}")


def main(argv: list[str] | None = None) -> None:
    run_command(run, argv)


if __name__ == "__main__":
    main()
