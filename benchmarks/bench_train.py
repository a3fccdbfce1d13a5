"""Training throughput of both networks, through Lightning and through a plain PyTorch loop.

Prints, from one run: params and MACs of each network, data-loading img/s (decode + augment), and
training img/s of each network under Lightning and under a hand-written loop on the same model and the
same batches, with their ratio (goal: Lightning >= 0.95x the plain loop).

    python benchmarks/bench_train.py                      # procedural flowers, 64 px
    python benchmarks/bench_train.py --data.dataset flower_photos --data.root ../shared/data
    python benchmarks/bench_train.py --models '[tiny_baseline, tiny_topdown]' --image_size 32 --batch_size 32
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from topdown.data import FlowerData
from topdown.errors import run_command
from topdown.lit import ImageClassifier
from topdown.models import count_macs, count_params, create_model
from topdown.options import DataRoot, parse_options


@dataclass
class BenchData(DataRoot):
    """The data to time on.

    Args:
        root: where the real images are (default ``$TOPDOWN_DATA_ROOT`` or ``./data``).
        dataset: ``synthetic``, ``flower_photos``, ``flowers102`` or ``imagefolder``.
    """

    dataset: str = "synthetic"


@dataclass
class TrainBenchOptions:
    """What bench_train.py measures.

    Args:
        data: ``--data.dataset`` (``synthetic``, the procedural flowers; ``flower_photos``, ``flowers102`` or
            ``imagefolder``) and ``--data.root`` (where the real images are), as in ``train.py``.
        image_size: image size in px.
        batch_size: images per batch.
        batches: timed batches per measurement.
        warmup: batches before the timing starts.
        repeats: alternate Lightning/plain this many times.
        models: registered model names, a list (``--models '[tiny_baseline, tiny_topdown]'``); ``--models+ NAME``
            adds one to them.
    """

    data: BenchData = field(default_factory=BenchData)
    image_size: int = 64
    batch_size: int = 64
    batches: int = 12
    warmup: int = 2
    repeats: int = 2
    models: list[str] = field(default_factory=lambda: ["baseline", "topdown"])


class _Batches(torch.utils.data.Dataset):
    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batches[i]


class _Timer(pl.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.images = warmup, None, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx >= self.warmup:
            self.images += len(batch[1])

    def rate(self) -> float:
        return self.images / (time.perf_counter() - self.start)


def plain_loop(module: ImageClassifier, batches: list, warmup: int) -> float:
    """The same optimizer and loss as the LightningModule, without Lightning."""
    net = module.net
    net.train()
    opt = torch.optim.SGD(
        net.parameters(), lr=module.hparams.lr, momentum=0.9, nesterov=True, weight_decay=module.hparams.weight_decay
    )
    images, start = 0, time.perf_counter()
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            images, start = 0, time.perf_counter()
        x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(net(x), y, label_smoothing=module.hparams.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        images += len(y)
    return images / (time.perf_counter() - start)


def lightning_loop(module: ImageClassifier, batches: list, warmup: int) -> float:
    timer = _Timer(warmup)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    loader = DataLoader(_Batches(batches), batch_size=None, shuffle=False)
    trainer.fit(module, train_dataloaders=loader)
    return timer.rate()


def run(argv: list[str]) -> None:
    args = parse_options(TrainBenchOptions, argv, __doc__)
    torch.manual_seed(0)

    data = FlowerData(args.data.dataset, args.data.root, image_size=args.image_size, batch_size=args.batch_size)
    ds = data.subset("train", train=True)
    n_load = min(len(ds), args.batch_size * (args.batches + args.warmup))
    for i in range(n_load):  # first pass decodes and caches the files
        ds[i]
    t0 = time.perf_counter()
    batches = []
    it = iter(DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True))
    for _ in range(args.batches + args.warmup):
        try:
            batches.append(next(it))
        except StopIteration:
            it = iter(DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True))
            batches.append(next(it))
    load_rate = sum(len(b[1]) for b in batches) / (time.perf_counter() - t0)
    print(
        f"data: {args.data.dataset} {args.image_size}px, {len(ds)} training images, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"data loading (cached decode + augment, 1 process): {load_rate:8.1f} img/s")

    rows = []
    for name in args.models:
        net = create_model(name, num_classes=data.num_classes)
        params, macs = count_params(net), count_macs(net, args.image_size)
        base = ImageClassifier(net, data.num_classes, schedule="constant")
        light, plain = [], []
        for _ in range(args.repeats):  # alternate, so background load hits both alike
            light.append(lightning_loop(copy.deepcopy(base), batches, args.warmup))
            plain.append(plain_loop(copy.deepcopy(base), batches, args.warmup))
        rows.append((name, params, macs, max(light), max(plain)))

    print(f"\n{'model':<10} {'params':>9} {'MACs':>9} {'lightning img/s':>16} {'plain img/s':>12} {'ratio':>6}")
    for name, params, macs, lr, pr in rows:
        print(f"{name:<10} {params / 1e6:8.3f}M {macs / 1e6:8.1f}M {lr:16.1f} {pr:12.1f} {lr / pr:6.3f}")
    if len(rows) >= 2:
        (n0, p0, m0, *_), (n1, p1, m1, *_) = rows[0], rows[1]
        print(f"\n{n1}/{n0}: params x{p1 / p0:.3f}, MACs x{m1 / m0:.3f}")


def main(argv: list[str] | None = None) -> None:
    run_command(run, argv)


if __name__ == "__main__":
    main()
