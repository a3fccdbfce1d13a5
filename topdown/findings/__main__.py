"""``python -m topdown.findings --ckpt+ <baseline> --ckpt+ <topdown> [--ckpt+ <control> ...] --out DIR``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import env  # noqa: F401  (sets environment before third-party imports)
from ..checkpoint import load_run
from ..data.subsets import stratified_subset
from ..errors import ConfigError, run_command
from ..io import atomic_write_json
from ..options import checkpoint_parser, parse_args, section_of
from ..store import PartStore
from ..vis.dissection import synthetic_masks
from . import compute_findings
from .plots import localization_plot, make_plots
from .report import print_comparisons


@dataclass
class FindingsConfig:
    """What the findings compute (``python -m topdown.findings``; the pipeline's ``findings`` stage).

    Args:
        images: test images (seeded, stratified by class).
        seed: the images' draw and the hybrids' partners.
        ig_steps: integrated-gradients steps.
        subject: the model compared with every other one.
        vis: vis.json of the same models: adds its spectra renders' figures.
        findings: which (default: every one the data allows).
        layers: CKA's and dissection's (default: stages).
        table: print the comparisons.
        plots: write the figures beside findings.json.
    """

    images: int = 256
    seed: int = 0
    ig_steps: int = 32
    subject: str = "topdown"
    vis: str | None = None
    findings: list[str] | None = None
    layers: list[str] | None = None
    table: bool = True
    plots: bool = True

    def validate(self) -> None:
        if self.images < 8:
            raise ConfigError(f"--images must be at least 8, got {self.images}")


def build_parser() -> Any:
    parser = checkpoint_parser(
        "python -m topdown.findings",
        __doc__,
        models="baseline, top-down, controls",
        out="findings.json and its figures",
        out_default="outputs/findings",
    )
    parser.add_class_arguments(FindingsConfig, nested_key=None)
    return parser


def render_details(path: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """Each model's ``spectra`` details from a vis.json; a model or the method missing there is an error naming
    the file."""
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
    parser = build_parser()
    init = parser.instantiate(parse_args(parser, argv))
    cfg = section_of(FindingsConfig, init)
    return find_checkpoints(init.ckpt, init.names, cfg, init.out, init.data.root)


def find_checkpoints(
    ckpts: list[str], names: list[str] | None, cfg: FindingsConfig, out: str | Path, data_root: str | None = None
) -> dict[str, Any]:
    """The findings of ``cfg`` on the checkpoints, written to ``<out>/findings.json`` (atomically, last) with their
    figures: ``python -m topdown.findings`` and the pipeline's findings stage both come here."""
    if len(ckpts) < 2:
        raise ConfigError("--ckpt: give at least two checkpoints (the baseline and the top-down net)")
    cfg.validate()
    run_ = load_run(list(ckpts), names, data_root)
    src, idx = run_.data_module.splits()["test"]
    test = run_.data_module.subset("test")
    chosen = stratified_subset(np.asarray(test.targets), cfg.images, cfg.seed)
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
        renders=render_details(cfg.vis, list(run_.models)) if cfg.vis else None,
        which=cfg.findings,
        layers=cfg.layers,
        store=PartStore(out),
        subject=cfg.subject,
        seed=cfg.seed,
        ig_steps=cfg.ig_steps,
    )
    findings["dataset"] = run_.data_module.dataset
    findings["checkpoints"] = {name: str(m.path) for name, m in run_.models.items()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.plots:
        make_plots(findings, out)
        if "localization" in findings["findings"]:  # one image of each of the first four classes
            first = [int(np.flatnonzero(labels.numpy() == c)[0]) for c in sorted(set(labels.tolist()))[:4]]
            localization_plot(nets, images[first], labels[first], masks[first] > 0, out / "localization.png")
    atomic_write_json(out / "findings.json", findings)  # last: the stage is done once it is there
    if cfg.table:
        print_comparisons(findings)
        print(f"findings: {out / 'findings.json'}")
    return findings


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_command(run, argv)


if __name__ == "__main__":
    main()
