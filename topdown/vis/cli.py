"""``python evaluate.py visualize``: what each network learned, side by side, with quality figures.

    python evaluate.py visualize --ckpt+ runs/synthetic/baseline/checkpoints/last.ckpt \\
                                 --ckpt+ runs/synthetic/topdown/checkpoints/last.ckpt \\
                                 --config configs/vis/quick.yaml --out outputs/vis

Every method runs with the same recipe and seed on every checkpoint. Every setting is an option of
``VisConfig`` (``configs/vis/*.yaml``; ``--print_config`` lists them): the shared recipe (``--steps 64``) and
each method's own section (``--dream.lr 0.01``). The run writes PNG grids under ``<out>/<model>/`` and
``<out>/compare/`` and ``<out>/vis.json`` (``SCHEMA.md`` beside this file). Each (model, method) result is
stored under ``<out>/parts/`` as it finishes: run the same command after an interruption and it continues
where it stopped (``--fresh`` recomputes everything).
"""

from __future__ import annotations

import sys
from typing import Any

from ..checkpoint import load_run
from ..options import checkpoint_parser, parse_args, section_of
from .config import VisConfig
from .methods import METHODS
from .runner import VisRun, default_layer, quality_figures, visualize

__all__ = ["METHODS", "build_parser", "default_layer", "main", "quality_figures", "run", "visualize_checkpoints"]


def build_parser() -> Any:
    parser = checkpoint_parser(
        "evaluate.py visualize",
        __doc__.split("\n\n")[0],
        models="baseline, top-down, controls",
        out="PNGs, parts/ and vis.json",
    )
    parser.add_argument("--fresh", type=bool, default=False, help="recompute results even if stored ones match")
    parser.add_argument("--progress", type=bool, default=True, help="a line per method")
    parser.add_class_arguments(VisConfig, nested_key=None)
    return parser


def parse(argv: list[str]) -> tuple[Any, VisConfig]:
    """The parsed options and the validated ``VisConfig``; a ``ConfigError`` of one line for any user error."""
    parser = build_parser()
    ns = parse_args(parser, argv)
    init = parser.instantiate(ns)
    cfg = section_of(VisConfig, init)
    cfg.validate()
    return ns, cfg


def run(args: list[str] | None = None) -> VisRun:
    """Parse ``args`` (default ``sys.argv[1:]``) and visualize every checkpoint; returns the run (its
    ``vis.json`` document and which results were computed or reused)."""
    argv = list(sys.argv[1:] if args is None else args)
    ns, cfg = parse(argv)
    options = {k: v for k, v in ns.as_dict().items() if k not in ("config", "__path__")}
    return visualize_checkpoints(
        list(ns.ckpt), ns.names, cfg, ns.out, ns.data.root, ns.fresh, ns.progress, command=argv, args=options
    )


def visualize_checkpoints(
    ckpts: list[str],
    names: list[str] | None,
    cfg: VisConfig,
    out: str,
    data_root: str | None = None,
    fresh: bool = False,
    progress: bool = True,
    command: list[str] | None = None,
    args: dict[str, Any] | None = None,
) -> VisRun:
    """``cfg`` (validated here) on the checkpoints: ``evaluate.py visualize`` and the pipeline's visualize stage
    both come here."""
    cfg.validate()
    loaded = load_run(list(ckpts), names, data_root)
    return visualize(loaded, cfg, out, fresh=fresh, progress=progress, command=command, args=args)


def main(args: list[str] | None = None) -> dict[str, Any]:
    """Parse ``args`` (default ``sys.argv[1:]``), visualize every checkpoint, write PNGs and ``vis.json``;
    returns the ``vis.json`` document."""
    return run(args).doc
