"""The headline experiment: both models, several seeds, real flowers, full evaluation, aggregated.

    python -m topdown.experiment --config configs/experiment/headline.yaml
    python -m topdown.experiment --config configs/experiment/headline.yaml --only aggregate

Each (dataset, seed) is one resumable pipeline run in ``<out>/<dataset>/seed<k>``, so the experiment can
span sessions: run the command again and it continues. Every run is trained before any is evaluated, so the
training targets are known hours before the robustness suite ends; then each run is evaluated, visualized
and reported before the next, so each finished run has its report. ``aggregate``
(also run at the end) writes ``docs/results.md`` from whatever runs have finished: mean ± std across seeds,
and the conclusions, which claim "top-down better" only where every seed agrees.
"""

from __future__ import annotations

import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from . import env  # noqa: F401
from .io import atomic_write_text  # noqa: E402
from .pipeline import STAGES, Pipeline, PipelineConfig, check_redo, check_stages  # noqa: E402
from .report.conclusions import _get, conclusions, model_pair, scale_name  # noqa: E402


@dataclass
class DatasetRuns:
    """One dataset of the experiment.

    Args:
        dataset: ``flower_photos`` or ``flowers102`` (or ``synthetic``).
        seeds: training seeds (the data split stays the same).
        epochs: training epochs (``None``: the data config's).
        train_args: extra ``train.py fit`` arguments (e.g. ``--data.trainval true``).
        target_top1: the baseline's clean top-1 goal (the top-down net's: within ``target_gap`` of it).
        target_gap: how far below the baseline the top-down net may be.
        models: training configs, baseline first (``None``: the pipeline's, ``configs/baseline.yaml`` and
            ``configs/topdown.yaml``).
    """

    dataset: str
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int | None = None
    train_args: list[str] = field(default_factory=list)
    target_top1: float | None = None
    target_gap: float = 0.01
    models: list[str] | None = None


@dataclass
class ExperimentConfig:
    """The experiment.

    Args:
        out: where the runs go.
        data_root: where the real images are.
        runs: the datasets and their seeds.
        eval_config: the evaluation suite.
        eval_args: extra ``evaluate.py`` arguments.
        vis_args: extra ``evaluate.py visualize`` arguments.
        results_md: the Markdown summary to write.
        stages: the pipeline stages to run: ``train`` goes through every dataset and seed first, then the
            others run, in order, one run at a time (``[train]``: train everything and stop).
        redo: finished stages to run again in every run, with every later stage (``[visualize]``: new
            visualizations and reports); ``train`` cannot be redone in place.
        only: ``all`` (run then aggregate) or ``aggregate``.
    """

    out: str = "outputs/headline"
    data_root: str | None = None
    runs: list[DatasetRuns] = field(default_factory=list)
    eval_config: str = "configs/eval/full.yaml"
    eval_args: list[str] = field(default_factory=list)
    vis_args: list[str] = field(default_factory=list)
    results_md: str = "docs/results.md"
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    redo: list[str] = field(default_factory=list)
    only: str = "all"


def run_dir(cfg: ExperimentConfig, dataset: str, seed: int) -> Path:
    return Path(cfg.out) / dataset / f"seed{seed}"


def run(cfg: ExperimentConfig) -> None:
    runs = [
        PipelineConfig(
            **({"models": list(ds.models)} if ds.models else {}),
            out=str(run_dir(cfg, ds.dataset, seed)),
            dataset=ds.dataset,
            data_root=cfg.data_root,
            epochs=ds.epochs,
            seed=seed,
            train_args=list(ds.train_args),
            eval_config=cfg.eval_config,
            eval_args=list(cfg.eval_args),
            vis_args=list(cfg.vis_args),
            redo=list(cfg.redo),
        )
        for ds in cfg.runs
        for seed in ds.seeds
    ]
    # Training first, for every run: the accuracy targets are known hours before the robustness suite ends.
    # Then each run's remaining stages, run by run, so every finished run has its report.
    if "train" in cfg.stages:
        for pipeline_cfg in runs:
            Pipeline(replace(pipeline_cfg, stages=["train"], redo=[])).run()
    rest = [s for s in cfg.stages if s != "train"]
    if rest:
        for pipeline_cfg in runs:
            Pipeline(replace(pipeline_cfg, stages=rest)).run()


def _mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0] * scale:.{digits}f}"
    return f"{statistics.fmean(values) * scale:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def _clean(key: str) -> Any:
    """A getter of one clean-accuracy figure of a model's results."""
    return lambda m: _get(m, "clean", key)


def _sanity(model: dict[str, Any]) -> str | None:
    checks = model.get("sanity") or {}
    if not checks:
        return None
    return f"{sum(bool(c.get('passed')) for c in checks.values())}/{len(checks)}"


def _targets(ds: DatasetRuns, runs: list[dict[str, Any]], base: str, td: str) -> list[str]:
    """Whether the mean clean accuracies meet the dataset's targets, in words."""
    if ds.target_top1 is None:
        return []
    acc = {k: [a for r in runs if (a := _get(r, "models", k, "clean", "top1")) is not None] for k in (base, td)}
    if not acc[base] or not acc[td]:
        return []
    b, t = statistics.fmean(acc[base]), statistics.fmean(acc[td])
    ok_b, ok_t = b >= ds.target_top1 - 1e-9, t >= b - ds.target_gap - 1e-9
    return [
        f"Targets: baseline top-1 ≥ {ds.target_top1 * 100:g}%: {b * 100:.1f}%, {'met' if ok_b else 'not met'}; "
        f"top-down within {ds.target_gap * 100:g} point(s) of it: {(t - b) * 100:+.1f} points, "
        f"{'met' if ok_t else 'not met'} (mean over {len(runs)} seed(s))."
    ]


_NOT_RECIPE = {"num_classes", "mean", "std"}


def recipe(run: dict[str, Any]) -> str:
    """How a run's models were trained, in words: architecture, epochs, training crops and test size.

    Seeds are averaged only when this is the same for all of them: a changed config leaves the runs made
    before it out of the mean instead of mixing two recipes.
    """
    desc = _get(run, "data", "description") or {}
    size = desc.get("image_size")
    crops = desc.get("train_image_size") or size
    parts = [f"{crops} px training crops, {size} px test images" if size else "image size not recorded"]
    if desc.get("trainval"):
        parts[0] += ", trained on train+val"
    for key in sorted(run.get("models", {})):
        ck = _get(run, "models", key, "checkpoint") or {}
        arch = ck.get("arch") or {}
        # An argument set to None is an option left off: a checkpoint from before the option existed
        # (which lacks it) was trained the same way.
        init = {k: v for k, v in (arch.get("init_args") or {}).items() if k not in _NOT_RECIPE and v is not None}
        args = ", ".join(f"{k}={v}" for k, v in sorted(init.items()))
        epochs = ck["epoch"] + 1 if isinstance(ck.get("epoch"), int) else "?"
        parts.append(f"{key}: {str(arch.get('class_path', '?')).rsplit('.', 1)[-1]}({args}), {epochs} epochs")
    return "; ".join(parts)


def _vis_row(dirs: list[Path]) -> str | None:
    """Visualization quality figures passed, per seed, baseline then top-down (from each run's vis.json; the
    pipeline visualizes the checkpoints in that order)."""
    from .vis.cli import quality_figures

    cells: list[list[str]] = [[], []]
    for d in dirs:
        p = d / "vis" / "vis.json"
        doc = json.loads(p.read_text()) if p.is_file() else {}
        names = list(doc.get("models", {}))
        for i in range(2):
            figures = quality_figures(doc, names[i]) if i < len(names) else []
            cells[i].append(f"{sum(bool(f['passed']) for _, f in figures)}/{len(figures)}" if figures else "–")
    if all(c == "–" for cs in cells for c in cs):
        return None
    return f"| visualization quality figures passed (each seed) | {' · '.join(cells[0])} | {' · '.join(cells[1])} |"


def aggregate(cfg: ExperimentConfig) -> str:
    """Markdown tables and conclusions over every finished run."""
    md = [
        "# Results: top-down vs baseline on real flowers",
        "",
        "Generated by `python -m topdown.experiment --config configs/experiment/headline.yaml --data_root <data>` "
        "(resumable: run it again to continue; `--only aggregate` rewrites this page) from the runs in "
        f"`{cfg.out}`; every number is mean ± std over the seeds that have finished.",
        "",
    ]
    for ds in cfg.runs:
        found = []
        for seed in ds.seeds:
            p = run_dir(cfg, ds.dataset, seed) / "eval" / "results.json"
            if p.is_file():
                res = json.loads(p.read_text())
                found.append((recipe(res), res, p.parent.parent, p.stat().st_mtime))
        md += [f"## {ds.dataset}", ""]
        if not found or model_pair(found[0][1]) is None:
            md += [f"No finished run yet ({len(ds.seeds)} seed(s) planned).", ""]
            continue
        current = max(found, key=lambda f: f[3])[0]  # the newest run's recipe
        stale = [str(d) for rec, _, d, _ in found if rec != current]
        runs = [r for rec, r, _, _ in found if rec == current]
        dirs = [d for rec, _, d, _ in found if rec == current]
        base, td = model_pair(runs[0])
        md += [f"{len(runs)} of {len(ds.seeds)} seed(s) finished: {', '.join(str(d) for d in dirs)}.", ""]
        md += [f"Training: {current}.", ""]
        if stale:
            md += [
                f"Left out, trained with another recipe: {', '.join(stale)} (delete a folder and run the "
                "experiment again to redo it with the current configs).",
                "",
            ]
        md += ["| metric | baseline | top-down |", "|---|---|---|"]

        def values(get: Any, runs: list = runs, pair: tuple = (base, td)) -> list[list[Any]]:
            return [[get(r["models"][k]) for r in runs] for k in pair]

        def row(label: str, get: Any, scale: float = 100.0, digits: int = 1) -> str | None:
            vals = [[v for v in vs if v is not None] for vs in values(get)]
            if not any(vals):
                return None  # a metric no run recorded (an older results file, or a suite without it)
            cells = [_mean_std(vs, scale, digits) for vs in vals]
            return f"| {label} | {cells[0]} | {cells[1]} |"

        def per_seed(label: str, get: Any) -> str | None:
            vals = values(get)
            if all(v is None for vs in vals for v in vs):
                return None
            cells = [" · ".join("–" if v is None else v for v in vs) for vs in vals]
            return f"| {label} | {cells[0]} | {cells[1]} |"

        rows = [
            row("clean top-1 (%)", _clean("top1")),
            per_seed(
                "clean top-1 of each seed (%)",
                lambda m: None if (a := _clean("top1")(m)) is None else f"{a * 100:.1f}",
            ),
            row("clean top-5 (%)", _clean("top5")),
            row("clean macro accuracy (%)", _clean("macro_acc")),
            row("mean confidence (%)", _clean("confidence")),
            row("expected calibration error (×100)", _clean("ece")),
        ]
        for norm, name in (("linf", "L∞"), ("l2", "L2")):
            eps = _get(runs[0], "models", base, "worst_case", norm, "epsilons") or []
            for k, e in enumerate(eps[1:], 1):
                label = f"{e * 255:g}/255" if norm == "linf" else f"{e:g}"
                get = lambda m, norm=norm, k=k: _get(m, "worst_case", norm, "accuracy", k)  # noqa: E731
                rows.append(row(f"worst-case {name} accuracy at ε = {label} (%)", get))
        rows += [
            row(
                "median minimal L∞ perturbation, FMN (/255)",
                lambda m: _get(m, "attacks", "fmn", "median_distance"),
                scale=255.0,
            ),
            row(
                "median minimal L2 perturbation, DeepFool (an upper bound)",
                lambda m: _get(m, "attacks", "deepfool", "median_distance"),
                scale=1.0,
                digits=2,
            ),
            row(
                "median minimal L2 perturbation, HopSkipJump (decision-based)",
                lambda m: _get(m, "decision", "median_distance"),
                scale=1.0,
                digits=2,
            ),
            row("mCE (% of baseline)", lambda m: (m.get("corruptions") or {}).get("mce")),
        ]
        for name in runs[0]["suite"].get("perturbations", {}).get("levels") or {}:
            rows.append(
                row(
                    f"AUC {name.replace('_', ' ')} (×100)",
                    lambda m, name=name: ((m.get("perturbations") or {}).get(name) or {}).get("auc"),
                )
            )
        # One scale at a time: the top-down net's pyramid level, the baseline's same frequency band of the image.
        for kind, what in (("noise", "Gaussian noise σ = {:g}"), ("pgd", "L∞ PGD ε = {:g}/255")):
            sc = _get(runs[0], "models", td, "scales", kind) or {}
            strengths = sc.get("sigmas") if kind == "noise" else [e * 255 for e in sc.get("epsilons") or []]
            if not strengths:
                continue
            for i, factor in enumerate(sc.get("factors") or []):
                get = lambda m, kind=kind, i=i: _get(m, "scales", kind, "accuracy", i, -1)  # noqa: E731
                rows.append(row(f"{what.format(strengths[-1])} on the {scale_name(factor)} scale only (%)", get))
        rows.append(per_seed("sanity checks passed (each seed)", _sanity))
        rows.append(_vis_row(dirs))
        md += [r for r in rows if r is not None]
        md += [
            "",
            "Attacks and perturbations use a seeded, stratified subset of the test images (the clean rows use "
            "all of them); worst case is per image over every attack of that norm. On one scale only: the "
            "top-down net's pyramid level, the baseline's same frequency band of the image.",
        ]
        md += ["", *_targets(ds, runs, base, td), "", "Conclusions (computed):", ""]
        md += [f"- {c}" for c in conclusions(runs)]
        reports = [f"`{d / 'report.html'}`" for d in dirs if (d / "report.html").is_file()]
        if reports:
            md += ["", f"Each run's full report (every section, both models side by side): {', '.join(reports)}."]
        figs = Path(cfg.results_md).parent / "figures" / ds.dataset
        pngs = ("attacks_linf.png", "perturbations.png", "corruptions.png", "scales.png")
        pngs = [p for p in pngs if (dirs[0] / "eval" / p).is_file()]
        if pngs:
            md += ["", f"Plots of {dirs[0].name}:"]
            figs.mkdir(parents=True, exist_ok=True)
        for png in pngs:
            shutil.copyfile(dirs[0] / "eval" / png, figs / png)
            md += ["", f"![{png}](figures/{ds.dataset}/{png})"]
        md.append("")
    text = "\n".join(md) + "\n"
    atomic_write_text(cfg.results_md, text)
    return text


def main(args: list[str] | None = None) -> None:
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="python -m topdown.experiment", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_class_arguments(ExperimentConfig, nested_key=None)
    ns = parser.parse_args(args)
    init = parser.instantiate(ns)
    cfg = ExperimentConfig(**{k: init[k] for k in ExperimentConfig.__dataclass_fields__ if k in init})
    if cfg.only not in ("all", "aggregate"):
        print(f"error: only: expected 'all' or 'aggregate', got {cfg.only!r}", file=sys.stderr)
        sys.exit(1)
    try:
        check_stages(cfg.stages)
        check_redo(cfg.redo)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    if cfg.only == "all":
        run(cfg)
    print(aggregate(cfg))


if __name__ == "__main__":
    main()
