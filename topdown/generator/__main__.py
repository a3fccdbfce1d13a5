"""``python -m topdown.generator --ckpt <checkpoint> --out <generator.pt> [--epochs N ...]``: train the learned
prior of one classifier on its own training images (resumable: run it again after a kill; a finished file with
the same recipe is reused)."""

from __future__ import annotations

from typing import Any

import torch
from jsonargparse import ArgumentParser

from .. import env  # noqa: F401  (sets environment before third-party imports)
from ..checkpoint import load_run
from ..errors import run_command
from ..options import parse_args
from .train import GeneratorConfig, train_generator


def build_parser() -> Any:
    parser = ArgumentParser(
        prog="python -m topdown.generator", description=__doc__, default_env=False, exit_on_error=False
    )
    parser.add_argument("--ckpt", type=str, required=True, help="the classifier's checkpoint")
    parser.add_argument("--out", type=str, required=True, help="the generator file to write")
    parser.add_argument("--data.root", type=str | None, default=None, help="where the real images are")
    parser.add_class_arguments(GeneratorConfig, "train")
    return parser


def run(argv: list[str]) -> dict[str, Any]:
    args = parse_args(build_parser(), argv)
    cfg = GeneratorConfig(**vars(args.train))
    cfg.validate()
    loaded = load_run([args.ckpt], None, args.data.root)
    (lm,) = loaded.models.values()
    train = loaded.data_module.subset("train")
    n = len(train) if cfg.images is None else min(cfg.images, len(train))
    images = torch.stack([train[i][0] for i in range(n)])
    return train_generator(lm.net, images, args.out, cfg, str(lm.path), loaded.data_description)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_command(run, argv)


if __name__ == "__main__":
    main()
