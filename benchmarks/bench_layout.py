"""Memory layout of the networks: channels-last against PyTorch's default (contiguous NCHW), side by side.

    python benchmarks/bench_layout.py                     # the main job's nets (half width, one block a stage), 64 px
    python benchmarks/bench_layout.py --widths '[32, 64, 128, 256]' --depths '[2, 2, 2, 2]'

Every loaded checkpoint runs channels-last (``topdown.checkpoint.load_model``), as training does
(``model.channels_last``) and the suite's attacks do (``prepare_model``). This prints, for the baseline and the
top-down net, the images per second of an input gradient in eval mode (what an attack step, a render step or
an attribution computes) at several batch sizes, and of a training step, in both layouts (the best of
``repeats`` timings taken in turn, so the machine's drift hits both alike), their ratio, and the largest
difference between the two layouts' logits (float rounding only). The machine's matmul GFLOP/s is
printed first (``benchmarks/machine.py``): state it beside any figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from machine import describe

from topdown.errors import run_command
from topdown.models import ImageClassifierNet, create_model
from topdown.options import parse_options


@dataclass
class Options:
    """What to time.

    Args:
        widths: the baseline's widths (fine to coarse); the top-down net mirrors them.
        depths: blocks a stage.
        image_size: pixels a side.
        batch_sizes: batch sizes of the input-gradient timing (a render batches a few images, an attack 64).
        train_batch: batch size of the training step.
        seconds: how long each timing runs (after a warm-up).
        repeats: timings of each layout, taken in turn; the best counts.
    """

    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    depths: list[int] = field(default_factory=lambda: [1, 1, 1, 1])
    image_size: int = 64
    batch_sizes: list[int] = field(default_factory=lambda: [8, 64])
    train_batch: int = 64
    seconds: float = 1.0
    repeats: int = 3


def _rate(step: Callable[[], None], images: int, seconds: float) -> float:
    """Images per second of ``step`` (``images`` each), timed for about ``seconds`` after three warm-up calls."""
    for _ in range(3):
        step()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        done += images
    return done / (time.perf_counter() - started)


def _best_of(repeats: int, rate: Callable[[bool], float]) -> tuple[float, float]:
    """``(default layout, channels-last)``: the best of ``repeats`` calls of ``rate(channels_last)`` each, in turn."""
    best = [0.0, 0.0]
    for _ in range(repeats):
        for i, channels_last in enumerate((False, True)):
            best[i] = max(best[i], rate(channels_last))
    return best[0], best[1]


def _layout(net: ImageClassifierNet, channels_last: bool) -> ImageClassifierNet:
    return net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def input_gradient_rate(net: ImageClassifierNet, batch: int, size: int, seconds: float) -> float:
    x = torch.rand(batch, 3, size, size, requires_grad=True)
    net.eval().requires_grad_(False)

    def step() -> None:
        x.grad = None
        net(x).logsumexp(1).sum().backward()

    return _rate(step, batch, seconds)


def train_rate(net: ImageClassifierNet, batch: int, size: int, seconds: float, channels_last: bool) -> float:
    x = torch.rand(batch, 3, size, size)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    y = torch.randint(0, net.num_classes, (batch,))
    net.train().requires_grad_(True)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    return _rate(step, batch, seconds)


def layout_rates(net: ImageClassifierNet, opts: Options) -> list[tuple[str, tuple[float, float]]]:
    """``(what, (default layout's images/s, channels-last's))`` of every timing :class:`Options` asks for."""
    size, secs = opts.image_size, opts.seconds
    rows = [
        (
            f"input gradient, {batch}",
            _best_of(opts.repeats, lambda cl, b=batch: input_gradient_rate(_layout(net, cl), b, size, secs)),
        )
        for batch in opts.batch_sizes
    ]
    train = _best_of(opts.repeats, lambda cl: train_rate(_layout(net, cl), opts.train_batch, size, secs, cl))
    return [*rows, (f"training step, {opts.train_batch}", train)]


def main(argv: list[str]) -> None:
    opts = parse_options(Options, argv, __doc__)
    print(f"machine: {describe()}")
    print(f"{'net':<10}{'what':<22}{'NCHW img/s':>12}{'channels-last':>15}{'ratio':>8}")
    for name in ("baseline", "topdown"):
        torch.manual_seed(0)
        net = create_model(name, num_classes=6, widths=opts.widths, depths=opts.depths)
        probe = torch.rand(16, 3, opts.image_size, opts.image_size)
        with torch.no_grad():
            default = _layout(net, False).eval()(probe)
            last = _layout(net, True).eval()(probe)
        for what, (nchw, cl) in layout_rates(net, opts):
            print(f"{name:<10}{what:<22}{nchw:>12.0f}{cl:>15.0f}{cl / nchw:>7.2f}x")
        print(f"{name:<10}largest logit difference between the layouts: {(default - last).abs().max().item():.2e}")


if __name__ == "__main__":
    run_command(main)
