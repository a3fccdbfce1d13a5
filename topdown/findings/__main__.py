"""``python -m topdown.findings --ckpt <baseline> --ckpt <topdown> [--ckpt <control> ...] --out DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import env  # noqa: F401  (sets environment before third-party imports)
from ..errors import ConfigError, run_command


def build_parser() -> Any:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(
        prog="python -m topdown.findings", description=__doc__, default_env=False, exit_on_error=False
    )
    parser.add_argument(
        "--ckpt", type=list[str], default=[], help="checkpoints: a list, or --ckpt+ PATH each (baseline, top-down, ...)"
    )
    parser.add_argument(
        "--names", type=list[str] | None, default=None, help="a name per checkpoint (default: from each)"
    )
    parser.add_argument("--out", type=str, default="outputs/findings", help="where findings.json goes")
    parser.add_argument("--images", type=int, default=256, help="test images (seeded, stratified by class)")
    parser.add_argument("--seed", type=int, default=0, help="the images' draw and the hybrids' partners")
    parser.add_argument("--ig_steps", type=int, default=32, help="integrated-gradients steps")
    parser.add_argument("--subject", type=str, default="topdown", help="the model compared with every other one")
    parser.add_argument(
        "--vis", type=str | None, default=None, help="vis.json of the same models: adds its spectra renders' figures"
    )
    parser.add_argument(
        "--findings", type=list[str] | None, default=None, help="which (default: every one the data allows)"
    )
    parser.add_argument(
        "--layers", type=list[str] | None, default=None, help="CKA's and dissection's (default: stages)"
    )
    parser.add_argument("--table", type=bool, default=True, help="print the comparisons")
    parser.add_argument("--plots", type=bool, default=True, help="write the figures beside findings.json")
    parser.add_argument("--data.root", dest="data_root", type=str | None, default=None, help="where real images are")
    return parser


def render_details(path: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """Each model's ``spectra`` details from a vis.json; a model or the method missing there is an error naming
    the file."""
    import json

    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"--vis {path}: cannot read it ({err})") from None
    out = {}
    for name in names:
        entry = doc.get("models", {}).get(name, {}).get("methods", {}).get("spectra")
        if entry is None:
            raise ConfigError(f"--vis {path}: no spectra renders of {name!r} (run the visualizer with its models)")
        out[name] = entry["details"]
    return out


def run(argv: list[str]) -> dict[str, Any]:
    import numpy as np
    import torch

    from ..checkpoint import load_run
    from ..data.subsets import stratified_subset
    from ..io import atomic_write_json
    from ..options import parse_args
    from ..store import PartStore
    from ..vis.dissection import synthetic_masks
    from . import compute_findings
    from .plots import localization_plot, make_plots
    from .report import print_comparisons

    args = parse_args(build_parser(), argv)
    if len(args.ckpt) < 2:
        raise ConfigError("--ckpt: give at least two checkpoints (the baseline and the top-down net)")
    if args.images < 8:
        raise ConfigError(f"--images must be at least 8, got {args.images}")
    run_ = load_run(args.ckpt, args.names, args.data_root)
    src, idx = run_.data_module.splits()["test"]
    test = run_.data_module.subset("test")
    chosen = stratified_subset(np.asarray(test.targets), args.images, args.seed)
    images = torch.stack([test[int(k)][0] for k in chosen])
    labels = torch.tensor([test.targets[int(k)] for k in chosen])
    synthetic = run_.data_module.dataset == "synthetic"
    masks = synthetic_masks(src, [idx[int(k)] for k in chosen]) if synthetic else None
    nets = {name: m.net for name, m in run_.models.items()}
    findings = compute_findings(
        nets,
        images,
        labels,
        class_table=src.class_table if synthetic else None,
        masks=masks,
        renders=render_details(args.vis, list(run_.models)) if args.vis else None,
        which=args.findings,
        layers=args.layers,
        store=PartStore(args.out),
        subject=args.subject,
        seed=args.seed,
        ig_steps=args.ig_steps,
    )
    findings["dataset"] = run_.data_module.dataset
    findings["checkpoints"] = {name: str(m.path) for name, m in run_.models.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.plots:
        make_plots(findings, out)
        if "localization" in findings["findings"]:  # one image of each of the first four classes
            first = [int(np.flatnonzero(labels.numpy() == c)[0]) for c in sorted(set(labels.tolist()))[:4]]
            localization_plot(nets, images[first], labels[first], masks[first] > 0, out / "localization.png")
    atomic_write_json(out / "findings.json", findings)  # last: the stage is done once it is there
    if args.table:
        print_comparisons(findings)
        print(f"findings: {out / 'findings.json'}")
    return findings


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_command(run, argv)


if __name__ == "__main__":
    main()
