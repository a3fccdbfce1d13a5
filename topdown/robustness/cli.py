"""``python evaluate.py``: accuracy and robustness of trained checkpoints, side by side.

    python evaluate.py --ckpt+ runs/synthetic/baseline/checkpoints/last.ckpt \\
                       --ckpt+ runs/synthetic/topdown/checkpoints/last.ckpt \\
                       --config configs/eval/quick.yaml --out outputs/eval

Each network is rebuilt from the architecture its checkpoint records and loaded with
``torch.load(weights_only=True)`` (a pickle that would run code is refused). The test split is rebuilt from
the data description in the checkpoints, which must agree; ``--data.root`` says where the images are.
Every option of the suite (``configs/eval/*.yaml``) can be overridden on the command line, e.g.
``--subset 256 --attacks.linf_pgd.steps 40 --corruptions null``. ``--print_config`` shows them all.

A run writes ``<out>/parts/<model>/<part>.json`` as each part finishes; run the same command again after
an interruption and it continues where it stopped (``--fresh`` recomputes everything).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from ..checkpoint import load_checkpoints, load_run, rebuild_data
from ..options import checkpoint_parser, parse_args, section_of
from ..report import metrics as M
from ..results_view import ModelResults, Results
from ..store import file_sha256, weights_sha256
from .config import SuiteConfig
from .suite import ModelEntry, evaluate_models


def build_parser() -> Any:
    parser = checkpoint_parser(
        "evaluate.py",
        __doc__.split("\n\n")[0],
        usage="evaluate.py [-h] [options]   (the robustness suite)\n       evaluate.py visualize [-h] [options]"
        "   (feature visualizations: evaluate.py visualize --help)",
        models="the first non-top-down one is the mCE reference",
        out="results.json, results.csv, plots",
    )
    parser.add_argument("--fresh", type=bool, default=False, help="recompute parts even if saved ones match")
    parser.add_argument("--progress", type=bool, default=True, help="progress bars and a line per part")
    parser.add_argument("--plots", type=bool, default=True, help="write the figures")
    parser.add_class_arguments(SuiteConfig, nested_key=None)
    return parser


def model_entries(models: dict[str, Any]) -> list[Any]:
    """The suite's entries for loaded checkpoints (``{name: LoadedModel}``): each identified by its weights' hash,
    not its file's (a checkpoint also holds the training clock and its folder's path, so a bitwise retrain writes
    another file; its stored parts still apply), with the file's hash recorded beside it."""
    entries = []
    for name, lm in models.items():
        sha = file_sha256(lm.path)
        info = {"path": str(lm.path), "sha256": sha, "arch": lm.arch, "epoch": lm.epoch, "global_step": lm.global_step}
        entries.append(ModelEntry(name, lm.net, weights_sha256(lm.net), info))
    return entries


def load_models(paths: list[str], names: list[str] | None = None) -> tuple[list[Any], dict[str, Any]]:
    """The suite's entries for the checkpoints and the data description they share (the checks of
    :func:`topdown.checkpoint.load_checkpoints`; :func:`topdown.checkpoint.load_run` also rebuilds the data)."""
    models, description = load_checkpoints(paths, names)
    return model_entries(models), description


def load_test_split(data_desc: dict[str, Any], root: str | None) -> tuple[Any, list[str]]:
    """The test split the checkpoints describe; an error if the data found there has other classes."""
    data = rebuild_data(data_desc, root)
    return data.subset("test"), data.classes


def main(args: list[str] | None = None) -> Any:
    """Parse ``args`` (default ``sys.argv[1:]``), evaluate, print a summary; returns the run report."""
    parser = build_parser()
    ns = parse_args(parser, list(sys.argv[1:] if args is None else args))
    init = parser.instantiate(ns)
    cfg = section_of(SuiteConfig, init)
    return evaluate(
        list(ns.ckpt), ns.names, cfg, ns.out, ns.data.root, fresh=ns.fresh, progress=ns.progress, plots=ns.plots
    )


def evaluate(
    ckpts: list[str],
    names: list[str] | None,
    cfg: Any,
    out: str | Path,
    data_root: str | None = None,
    fresh: bool = False,
    progress: bool = True,
    plots: bool = True,
) -> Any:
    """The suite ``cfg`` (a :class:`~topdown.robustness.config.SuiteConfig`, validated here) on the checkpoints:
    writes ``<out>/results.json`` with its parts, figures and ``config.yaml``, prints the summary and returns the
    run report. ``evaluate.py`` and the pipeline's evaluate stage both come here."""
    cfg.validate()
    run = load_run(list(ckpts), names, data_root)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = {"ckpt": [str(c) for c in ckpts], "names": names, "data": {"root": data_root}, **cfg.to_dict()}
    (out / "config.yaml").write_text(yaml.safe_dump(options, sort_keys=False), encoding="utf-8")
    report = evaluate_models(
        model_entries(run.models),
        run.data_module.subset("test"),
        run.data_module.classes,
        cfg,
        out,
        data_info=run.data_description,
        progress=progress,
        fresh=fresh,
        plots=plots,
    )
    print_summary(report.results)
    print(f"computed {len(report.computed)} parts, reused {len(report.reused)}; results in {out}")
    return report


def print_summary(results: dict[str, Any]) -> None:
    """A table of the headline numbers (named, computed and written as on the results page:
    :mod:`topdown.report.metrics`) and every sanity check, PASS/FAIL beside the numbers."""
    res = Results(results)
    models = res.models
    table = Table(title="topdown evaluation", show_lines=False)
    table.add_column("")
    for name, m in models.items():
        table.add_column(name + (" [FLAGGED]" if m.flagged else ""), justify="right")

    def row(label: str, cell: Callable[[ModelResults], str | None]) -> None:
        vals = [cell(m) or "–" for m in models.values()]
        if any(v != "–" for v in vals):
            table.add_row(label, *vals)

    def metric(m: M.Metric) -> None:
        row(m.label, m.cell)

    metric(M.CLEAN[0])
    row(
        "clean top-1 on the attacked subset (%)",
        lambda m: None if m.subset.accuracy is None else f"{m.subset.accuracy * 100:.1f}",
    )
    for norm in ("linf", "l2"):
        for k, e in enumerate(res.epsilons(norm)):
            if e > 0:
                aa = ", AutoAttack included" if any(m.autoattack(norm, e) for m in models.values()) else ""
                metric(M.worst_case_metric(norm, k, e, aa))
    for norm, e in res.autoattack_budgets:
        for m in M.autoattack_metrics(norm, e, "images"):
            metric(m)
    for name in sorted({p for m in models.values() for p in m.perturbations}):
        metric(M.perturbation_metric(name))
    for m in M.MINIMAL:
        metric(m)
    for kind in ("noise", "pgd"):
        row(
            f"most harmful level ({kind})",
            lambda m, kind=kind: (
                None if (s := m.scale(kind)) is None or s.most_harmful_level is None else str(s.most_harmful_level)
            ),
        )
    row("sanity checks passed", lambda m: M.sanity_count(m.sanity))
    for check in next(iter(models.values())).sanity:

        def fmt(m: ModelResults, check: str = check) -> str | None:
            if (c := m.sanity.get(check)) is None:
                return None
            status = {True: "PASS", False: "FAIL", None: "skip"}[c.passed]
            value = "" if c.value is None else f" {c.value:.3g}{c.direction}{c.threshold:.3g}"
            return status + value

        row(f"sanity: {check}", fmt)
    Console().print(table)
