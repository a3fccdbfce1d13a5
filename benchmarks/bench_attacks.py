"""Overhead of topdown's attack wrappers over calling foolbox, or AutoAttack, directly on the same batch.

    python benchmarks/bench_attacks.py [--attack linf_pgd|fgsm|autoattack] [--model tiny_topdown] [--size 32]
                                       [--batch 64] [--steps 10] [--repeats 5]

``--attack autoattack`` compares AutoAttack's APGD-CE then APGD-T at 2/255 (``--steps`` iterations each) run by
its own ``run_standard_evaluation`` with the suite's way: one call per attack (each on the images the previous
left robust), seeded, every adversarial verified by our own forward pass.

Both sides run the same foolbox attack (``LinfPGD`` by default) on the same model, batch and epsilons. The
wrapper adds what makes its numbers trustworthy: seeding each batch (forking the global RNGs), watching the
iterates for adversarials foolbox does not return, checking every claimed adversarial (bounds, epsilon, our
own forward pass's prediction) and the bookkeeping of per-example results. Runs alternate (direct, wrapper,
direct, ...) so that load from other processes hits both alike, and the best of ``--repeats`` runs is
compared (other load only adds time), in wall-clock and in process CPU time.
Goal: overhead <= 5 %.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import foolbox as fb
import torch

from topdown.env import usable_cores
from topdown.errors import run_command
from topdown.models import create_model
from topdown.options import parse_options
from topdown.robustness.attacks import AttackSpec, fool_model, prepare_model, run_attack


@dataclass
class AttackBenchOptions:
    """What bench_attacks.py times.

    Args:
        attack: the attack both sides run (``autoattack``: APGD-CE then APGD-T at 2/255).
        model: registered model name (untrained, 6 classes).
        size: image size in px.
        batch: images in the batch.
        steps: iterations of the iterative attacks.
        repeats: alternating runs of each side (the best one is compared).
        threads: torch threads.
    """

    attack: Literal["linf_pgd", "fgsm", "autoattack"] = "linf_pgd"
    model: str = "tiny_topdown"
    size: int = 32
    batch: int = 64
    steps: int = 10
    repeats: int = 5
    threads: int = min(2, usable_cores())


def run(argv: list[str]) -> dict[str, float]:
    args = parse_options(AttackBenchOptions, argv, __doc__)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device("cpu")
    net = prepare_model(create_model(args.model, num_classes=6, stem_pool=args.size > 32), device)
    x = torch.rand(args.batch, 3, args.size, args.size)
    y = net(x).argmax(1)  # every image "correct": the attack has work to do on all of them
    eps = [0.0, 2 / 255, 8 / 255]
    if args.attack == "autoattack":
        direct, wrapped = _autoattack_pair(net, x, y, args.steps, device)
    elif args.attack == "linf_pgd":
        settings = {"steps": args.steps, "restarts": 1, "rel_stepsize": 0.25, "random_start": True}
        attack = fb.attacks.LinfPGD(steps=args.steps, rel_stepsize=0.25, random_start=True)
    else:
        settings = {"random_start": False}
        attack = fb.attacks.FGSM(random_start=False)
    if args.attack != "autoattack":
        direct, wrapped = _foolbox_pair(net, x, y, AttackSpec(args.attack, args.attack, eps, settings, 0), attack)
    direct(), wrapped()  # warm-up
    wall: dict[str, list[float]] = {"foolbox": [], "wrapper": []}
    cpu: dict[str, list[float]] = {"foolbox": [], "wrapper": []}
    for _ in range(args.repeats):
        for name, fn in (("foolbox", direct), ("wrapper", wrapped)):
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    library = "autoattack" if args.attack == "autoattack" else "foolbox"
    # Other processes only ever add time: the minimum is the least disturbed measurement (as timeit does).
    fb_t, wr_t = min(wall["foolbox"]), min(wall["wrapper"])
    fb_c, wr_c = min(cpu["foolbox"]), min(cpu["wrapper"])
    overhead = 100 * (wr_t / fb_t - 1)
    overhead_cpu = 100 * (wr_c / fb_c - 1)
    steps = f"{args.steps} steps, " if args.attack != "fgsm" else ""
    print(
        f"{args.attack}, {args.model} at {args.size} px, batch {args.batch}, {steps}{len(eps)} epsilons, "
        f"{args.threads} threads, best of {args.repeats} alternating runs"
    )
    for name, t, c in ((f"{library} directly", fb_t, fb_c), ("topdown wrapper", wr_t, wr_c)):
        key = "wrapper" if name.startswith("topdown") else "foolbox"
        print(
            f"  {name:17s}: {t * 1000:8.1f} ms wall, {c * 1000:8.1f} ms CPU   "
            f"(wall runs: {', '.join(f'{v * 1000:.0f}' for v in wall[key])})"
        )
    print(f"  overhead         : {overhead:+8.1f} % wall, {overhead_cpu:+.1f} % CPU   (goal <= 5 %)")
    return {"foolbox_s": fb_t, "wrapper_s": wr_t, "overhead_pct": overhead, "overhead_cpu_pct": overhead_cpu}


def _foolbox_pair(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, attack: object) -> tuple:
    device = torch.device("cpu")
    fmodel = fool_model(net, device)

    def direct() -> None:
        torch.manual_seed(0)
        attack(fmodel, x, y, epsilons=spec.epsilons)

    def wrapped() -> None:
        run_attack(net, x, y, spec, device, batch_size=len(x), fmodel=fmodel)

    return direct, wrapped


def _autoattack_pair(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, device: torch.device) -> tuple:
    from pyautoattack import AutoAttack

    from topdown.robustness.autoattack import AutoAttackRun, run_autoattack

    eps, classes = 2 / 255, int(net(x[:1]).shape[1])
    runs = [AutoAttackRun(a, "linf", eps, apgd_steps=steps) for a in ("apgd-ce", "apgd-t")]

    def direct() -> None:
        aa = AutoAttack(net, norm="Linf", eps=eps, version="standard", seed=0, device=device)
        aa.attacks_to_run, aa.verbose = ["apgd-ce", "apgd-t"], False
        aa.apgd.n_iter = aa.apgd_targeted.n_iter = steps
        aa.apgd_targeted.n_target_classes = min(9, classes - 1)
        aa.run_standard_evaluation(x, y, batch_size=len(x))

    def wrapped() -> None:
        todo = torch.ones(len(x), dtype=torch.bool)
        for run in runs:
            idx = todo.nonzero().view(-1)
            broken, _, _ = run_autoattack(net, x[idx], y[idx], run, 0, device, len(x), classes)
            todo[idx[torch.as_tensor(broken)]] = False

    return direct, wrapped


def main(argv: list[str] | None = None) -> dict[str, float]:
    return run_command(run, argv)


if __name__ == "__main__":
    main()
