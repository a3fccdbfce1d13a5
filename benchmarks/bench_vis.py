"""Feature visualization speed: 64 channels in one batched render against 64 one-by-one renders.

Prints the wall-clock time of each, their ratio (goal: batched >= 10x faster), and the activations each
achieved (the raw channel means of the final images; with ``--ckpt`` also the share that reach the
channel's largest mean over 64 held-out real images). Both modes use the same render, recipe and steps;
they differ only in how many images share an optimization.

If ``torch-lucent`` imports, the same 64 channels are also rendered with Lucent, one by one and batched
(``channel(layer, n, batch=i)`` summed), with its default Fourier image and standard transforms. Lucent 0.1.8
pins packages this project does not use; install it beside the environment, not into it::

    pip install --target /tmp/lucent --no-deps torch-lucent==0.1.8 kornia==0.4.1 decorator
    pip install --target /tmp/lucent ipython
    PYTHONPATH=/tmp/lucent python benchmarks/bench_vis.py --ckpt ...

Usage::

    python benchmarks/bench_vis.py                                   # untrained default baseline, 64 px
    python benchmarks/bench_vis.py --model tiny_baseline --size 32   # the test-sized network
    python benchmarks/bench_vis.py --ckpt runs/flower_photos/baseline/checkpoints/last.ckpt --data.root ../shared/data
    python benchmarks/bench_vis.py --lucent false                    # without torch-lucent
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import torch

from topdown.errors import run_command
from topdown.models import create_model
from topdown.options import DataRoot, parse_options
from topdown.vis import objectives as O
from topdown.vis import param as P
from topdown.vis.quality import channel_means
from topdown.vis.recipe import Recipe
from topdown.vis.render import evaluate, render


@dataclass
class VisBenchOptions:
    """What bench_vis.py renders.

    Args:
        model: registered model name (untrained, 6 classes; ignored with ``--ckpt``).
        ckpt: a trained checkpoint (its data gives reference images and the image size).
        data: ``--data.root``, where the checkpoint's real images are (default ``$TOPDOWN_DATA_ROOT`` or ``./data``).
        size: image size in px (without ``--ckpt``).
        layer: the layer whose channels are rendered.
        channels: how many of its channels (the first ones).
        steps: optimization steps of every render.
        threads: torch threads (0: leave as is).
        lucent: also render with torch-lucent where it imports.
    """

    model: str = "baseline"
    ckpt: str | None = None
    data: DataRoot = field(default_factory=DataRoot)
    size: int = 64
    layer: str = "layer2"
    channels: int = 64
    steps: int = 64
    threads: int = 0
    lucent: bool = True


def ours(
    net: torch.nn.Module,
    layer: str,
    chans: list[int],
    size: int,
    recipe: Recipe,
    batched: bool,
    color: P.ColorStats | None,
) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    if batched:
        r = render(
            net,
            O.channels(layer, chans) - recipe.tv_weight * O.total_variation(),
            recipe.param(size, len(chans), color, "cpu"),
            recipe.tf(),
            recipe.steps,
            recipe.lr,
            recipe.seed,
            recipe.redirect_relu_steps,
        )
        images = r.images
    else:
        out = []
        for i, c in enumerate(chans):
            r = render(
                net,
                O.channel(layer, c) - recipe.tv_weight * O.total_variation(),
                recipe.param(size, 1, color, "cpu", seed_offset=i),
                recipe.tf(),
                recipe.steps,
                recipe.lr,
                recipe.seed + i,
                recipe.redirect_relu_steps,
            )
            out.append(r.images)
        images = torch.cat(out)
    seconds = time.perf_counter() - start
    return seconds, evaluate(net, O.channels(layer, chans), images)


def lucent_renders(
    net: torch.nn.Module, layer: str, chans: list[int], size: int, steps: int, batched: bool
) -> tuple[float, torch.Tensor] | None:
    try:
        from lucent.optvis import objectives as lobj
        from lucent.optvis import param as lparam
        from lucent.optvis import render as lrender
    except Exception as err:
        print(f"torch-lucent not available ({type(err).__name__}: {str(err)[:80]}); skipped")
        return None
    lname = layer.replace(".", "_")
    start = time.perf_counter()
    images = []
    groups = [chans] if batched else [[c] for c in chans]
    for g in groups:
        objective = sum(lobj.channel(lname, c, batch=i) for i, c in enumerate(g))
        n = len(g)

        def param_f(n: int = n):
            return lparam.image(size, batch=n)

        imgs = lrender.render_vis(
            net,
            objective,
            param_f,
            thresholds=(steps,),
            verbose=False,
            preprocess=False,
            progress=False,
            show_image=False,
            fixed_image_size=size,
        )
        images.append(torch.from_numpy(imgs[-1]).permute(0, 3, 1, 2))
    seconds = time.perf_counter() - start
    return seconds, evaluate(net, O.channels(layer, chans), torch.cat(images).float())


def run(argv: list[str]) -> None:
    args = parse_options(VisBenchOptions, argv, __doc__)
    if args.threads:
        torch.set_num_threads(args.threads)

    real = color = None
    if args.ckpt:
        from topdown.checkpoint import load_model
        from topdown.data import FlowerData

        lm = load_model(args.ckpt)
        net = lm.net
        data = FlowerData.from_description(lm.data, root=args.data.root)
        args.size = data.image_size
        val, train = data.subset("val"), data.subset("train")
        real = torch.stack([val[i][0] for i in range(min(64, len(val)))])
        color = P.color_stats(torch.stack([train[i][0] for i in range(min(256, len(train)))]))
    else:
        torch.manual_seed(0)
        net = create_model(args.model, num_classes=6, stem_pool=args.size >= 64)
    net.eval()
    n_ch = channel_means(net, args.layer, torch.rand(1, 3, args.size, args.size)).shape[1]
    chans = list(range(min(args.channels, n_ch)))
    recipe = Recipe(steps=args.steps)
    print(
        f"{type(net).__name__} ({args.model if not args.ckpt else args.ckpt}), {args.layer}: {len(chans)} channels, "
        f"{args.size} px, {args.steps} steps, {torch.get_num_threads()} threads"
    )

    # Warm-up: oneDNN builds its kernels on first use; neither mode should pay for that.
    ours(net, args.layer, chans[:2], args.size, recipe.with_(steps=2), True, color)
    ours(net, args.layer, chans[:1], args.size, recipe.with_(steps=2), True, color)
    rows = []
    tb, vb = ours(net, args.layer, chans, args.size, recipe, True, color)
    rows.append(("topdown.vis batched", tb, vb))
    t1, v1 = ours(net, args.layer, chans, args.size, recipe, False, color)
    rows.append(("topdown.vis one-by-one", t1, v1))
    if args.lucent:
        for batched in (True, False):
            res = lucent_renders(net, args.layer, chans, args.size, args.steps, batched)
            if res is None:
                break
            rows.append((f"torch-lucent {'batched' if batched else 'one-by-one'}", *res))

    ref = channel_means(net, args.layer, real).max(0).values[chans] if real is not None else None
    print(
        f"{'':26s} {'seconds':>9s} {'img/s':>7s} {'median act':>11s} {'mean act':>9s}"
        + ("  reach real max" if ref is not None else "")
    )
    for name, t, v in rows:
        line = f"{name:26s} {t:9.2f} {len(chans) / t:7.2f} {statistics.median(v.tolist()):11.3f} {v.mean():9.3f}"
        if ref is not None:
            line += f"  {(v >= ref).float().mean():.2f}"
        print(line)
    print(f"speed ratio, batched vs one-by-one (topdown.vis): {t1 / tb:.1f}x (goal >= 10x)")
    for name, t, _ in rows[2:]:
        print(f"speed ratio, topdown.vis batched vs {name}: {t / tb:.1f}x")


def main(argv: list[str] | None = None) -> None:
    run_command(run, argv)


if __name__ == "__main__":
    main()
