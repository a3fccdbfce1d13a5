"""Time of each finding for one pair of nets (and of all of them), on the same test images as the findings stage.

    python benchmarks/bench_findings.py --ckpt <baseline.ckpt> --ckpt <topdown.ckpt> [--images 128] [--ig_steps 16]

Each part of ``topdown.findings.compute_findings`` is timed on its own, per net (cue reliance, pyramid swaps,
localization and dissection need the procedural flowers), then CKA for the pair, and the total per pair is printed
beside the machine's float32 matmul speed (``benchmarks/machine.py``) and scaled to a 77 GFLOP/s machine. The class
renders' spectra are the visualizer's ``spectra`` method, timed here too with the main job's render steps
(``--vis_steps 64``; the visualizer's default is 128).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from machine import REFERENCE_GFLOPS, describe, matmul_gflops

from topdown.checkpoint import load_run
from topdown.data.subsets import stratified_subset
from topdown.findings import DEFAULT_LEVELS, SIGMAS
from topdown.findings.bands import band_reliance
from topdown.findings.cues import cue_reliance, pyramid_swaps
from topdown.findings.detectors import stage_detectors
from topdown.findings.localization import attributions, localization
from topdown.findings.similarity import cka_matrix
from topdown.findings.spectra import gradient_spectrum
from topdown.vis.catalog import METHODS
from topdown.vis.config import VisConfig
from topdown.vis.dissection import synthetic_masks
from topdown.vis.method import Job
from topdown.vis.runner import build_context


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", action="append", required=True, help="the baseline's, then the top-down net's")
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--ig_steps", type=int, default=16)
    ap.add_argument("--vis_steps", type=int, default=64, help="render steps of the spectra renders")
    ap.add_argument("--data_root", default=None)
    args = ap.parse_args()
    gflops = matmul_gflops()
    print(describe())
    run = load_run(args.ckpt, None, args.data_root)
    src, idx = run.data_module.splits()["test"]
    test = run.data_module.subset("test")
    chosen = stratified_subset(np.asarray(test.targets), args.images, 0)
    x = torch.stack([test[int(k)][0] for k in chosen])
    y = torch.tensor([test.targets[int(k)] for k in chosen])
    synthetic = run.data_module.dataset == "synthetic"
    masks = synthetic_masks(src, [idx[int(k)] for k in chosen]) if synthetic else None
    nets = {name: m.net.eval() for name, m in run.models.items()}
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
    ctx = build_context(vis, run.data_module, torch.device("cpu"))
    parts["spectra renders"] = lambda n: METHODS["spectra"].run(Job(n, None, ctx, vis.spectra))
    total = 0.0
    print(f"{len(x)} images, {args.ig_steps} integrated-gradients steps, {run.data_module.dataset}")
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


if __name__ == "__main__":
    main()
