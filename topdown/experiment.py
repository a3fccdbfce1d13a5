"""The headline experiment: both models, several seeds, real flowers, full evaluation, aggregated.

    python -m topdown.experiment --config configs/experiment/headline.yaml
    python -m topdown.experiment --config configs/experiment/headline.yaml --only aggregate

Each (dataset, seed) is one resumable pipeline run in ``<out>/<dataset>/seed<k>``, so the experiment can
span sessions: run the command again and it continues. Every run is trained before any is evaluated, so the
training targets are known hours before the robustness suite ends; then each run is evaluated, visualized
and reported before the next, so each finished run has its report. Each finished run's small result files
(``eval/results.json``, ``vis/vis.json``, ``pipeline.json``; never checkpoints or images) are copied into
``docs/runs/<dataset>/seed<k>``, so the page can be rebuilt from the repository alone. ``aggregate``
(also run at the end) writes ``docs/results.md`` from whatever runs have finished, read from ``<out>`` where
they are there, else from ``docs/runs``: mean ± std across seeds, one column per model (baseline, top-down and
the controls a run holds), and the conclusions, which claim "top-down better" only where every seed agrees.
``--only carry`` copies each unfinished run's stored parts beside its published files, so a run can move to
another machine without ``out``: there it retrains and reuses every carried part its nets and the code match.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from .errors import ConfigError, run_command
from .findings.plots import FIGURES
from .findings.report import markdown_section
from .io import atomic_write_bytes, atomic_write_text
from .options import DataChoice, DataRoot, JobDataset, parse_options
from .pipeline import DEFAULT_STAGES, DatasetRecipe, Pipeline, PipelineConfig, check_redo, check_stages
from .report import metrics as M
from .report.conclusions import (
    CONTROL_DESCRIPTIONS,
    CONTROLS,
    SURVIVAL_RULE,
    budget_text,
    conclusions,
    control_conclusions,
    survival,
)
from .results_view import AutoAttack, Check, ModelResults, Results, VisResults, as_results
from .robustness.config import SuiteConfig
from .vis.config import VisConfig


@dataclass
class DatasetRuns:
    """One dataset of the experiment.

    Args:
        dataset: ``flower_photos`` or ``flowers102`` (or ``synthetic``).
        seeds: training seeds (the data split stays the same).
        epochs: training epochs (``None``: the data config's).
        train_configs: more training config files for every model (``configs/trainval.yaml``: train on the
            validation images too).
        target_top1: the baseline's clean top-1 goal (the top-down net's: within ``target_gap`` of it).
        target_gap: how far below the baseline the top-down net may be.
        models: training configs, baseline first (``None``: the pipeline's, ``configs/baseline.yaml`` and
            ``configs/topdown.yaml``).
        eval: this dataset's robustness suite: a ``configs/eval/*.yaml`` path (relative to the experiment's
            config) or its settings inline.
        vis: this dataset's visualizations: a ``configs/vis/*.yaml`` path or settings inline (unset ones keep
            the visualizer's defaults).
    """

    dataset: str
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int | None = None
    train_configs: list[str] = field(default_factory=list)
    target_top1: float | None = None
    target_gap: float = 0.01
    models: list[str] | None = None
    eval: SuiteConfig = field(default_factory=SuiteConfig)
    vis: VisConfig = field(default_factory=VisConfig)


@dataclass
class ExperimentConfig:
    """The experiment.

    Args:
        out: where the runs go.
        data: ``root``, where the real images are (``--data.root``).
        runs: the datasets, their seeds and each one's suite and visualizations.
        controls: training configs of control models each run trains and evaluates beside the two
            (``configs/baseline_blur.yaml``: the blur control).
        accuracy_control: each run also evaluates the baseline's epoch whose validation accuracy is nearest the
            top-down net's final one (test accuracy where the nets were trained on the validation images; its
            baseline must be trained keeping every epoch).
        results_md: the Markdown summary to write.
        published: where each finished run's small result files are copied (``<published>/<dataset>/seed<k>``,
            the same layout as the run's folder), so the summary can be rebuilt without ``out``; the summary
            links them (``None``: ``runs`` beside ``results_md``, i.e. ``docs/runs``).
        stages: the pipeline stages to run: ``train`` goes through every dataset and seed first, then the
            others run, in order, one run at a time (``[train]``: train everything and stop).
        redo: finished stages to run again in every run, with every later stage (``[visualize]``: new
            visualizations and reports); ``train`` cannot be redone in place.
        only: ``all`` (run then aggregate), ``aggregate``, or ``carry``: copy each unfinished run's stored
            parts into ``<published>/<dataset>/seed<k>/carry`` to commit, so the run resumes on a machine
            without ``out`` (it retrains, then reuses every part its retrained nets and the code still match).
        adopt_published: where a run's suite result is published (``<published>/<dataset>/seed<k>/eval``) and
            its checkpoints are gone, retrain and adopt that result for nets that score the clean test split
            exactly as it records, instead of running the suite again (``PipelineConfig.adopt_eval``).
    """

    out: str = "outputs/headline"
    data: DataRoot = field(default_factory=DataRoot)
    runs: list[DatasetRuns] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)
    accuracy_control: bool = False
    results_md: str = "docs/results.md"
    published: str | None = None
    stages: list[str] = field(default_factory=lambda: list(DEFAULT_STAGES))
    redo: list[str] = field(default_factory=list)
    only: Literal["all", "aggregate", "carry"] = "all"
    adopt_published: bool = False


def run_dir(cfg: ExperimentConfig, dataset: str, seed: int) -> Path:
    return Path(cfg.out) / dataset / f"seed{seed}"


def _published_root(cfg: ExperimentConfig) -> Path:
    return Path(cfg.published) if cfg.published is not None else Path(cfg.results_md).parent / "runs"


def published_dir(cfg: ExperimentConfig, dataset: str, seed: int) -> Path:
    return _published_root(cfg) / dataset / f"seed{seed}"


#: A run's small result files, relative to its folder: what the summary is computed from (never checkpoints or
#: images).
PUBLISHED = ("eval/results.json", "vis/vis.json", "findings/findings.json", "pipeline.json")


def _without_report_time(data: bytes) -> Any:
    """A pipeline.json without its report stage's ``seconds``: the report is rebuilt on every pass, so only its
    timing changes when nothing else did."""
    try:
        state = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return data
    stages = state.get("stages") if isinstance(state, dict) else None
    report = stages.get("report") if isinstance(stages, dict) else None
    if isinstance(report, dict):
        report.pop("seconds", None)
    return state


def _changed(rel: str, new: bytes, old: bytes) -> bool:
    if new == old:
        return False
    return rel != "pipeline.json" or _without_report_time(new) != _without_report_time(old)


def _copy_changed(src: Path, dst: Path, rel: str | Path) -> Path:
    """Copy ``src/rel`` to ``dst/rel`` atomically, only when it changed (:func:`_changed`); return the copy."""
    data = (src / rel).read_bytes()
    if not (dst / rel).is_file() or _changed(str(rel), data, (dst / rel).read_bytes()):
        atomic_write_bytes(dst / rel, data)
    return dst / rel


def publish(cfg: ExperimentConfig, dataset: str, seed: int) -> list[Path]:
    """Copy a run's result files (``PUBLISHED``, those it has) into ``published_dir``, each atomically and only
    when it changed (a pipeline.json whose only change is the report's rebuild time is left as it is); return the
    copies. A published file the run lacks goes: it came from other nets (a run redone whose visualizations have
    not run yet), and the folder holds one run's files."""
    src, dst = run_dir(cfg, dataset, seed), published_dir(cfg, dataset, seed)
    copies = []
    for rel in PUBLISHED:
        if not (src / rel).is_file():
            (dst / rel).unlink(missing_ok=True)
            continue
        copies.append(_copy_changed(src, dst, rel))
    return copies


#: Where an unfinished run's stored parts travel to another machine, inside its ``published_dir``.
CARRY = "carry"


def _part_files(root: Path) -> list[Path]:
    """The stored parts under a run's folder (``eval/parts``, ``vis/parts``, ``findings/parts``), relative to it."""
    if not root.is_dir():
        return []
    return sorted(
        rel for p in root.rglob("*.json") if p.is_file() and "parts" in (rel := p.relative_to(root)).parts[:-1]
    )


def _finished(cfg: ExperimentConfig, dataset: str, seed: int) -> bool:
    """Whether a run's folder holds every result file the summary reads."""
    return all((run_dir(cfg, dataset, seed) / rel).is_file() for rel in PUBLISHED)


def carry(cfg: ExperimentConfig, dataset: str, seed: int) -> list[Path]:
    """Copy an unfinished run's stored parts into ``<published_dir>/carry`` (each atomically, only when changed),
    with its pipeline.json as a record of how it was trained (the CPU kernels among it); return the copies.

    Checkpoints stay behind: on another machine the run retrains (bitwise alike on the same kernel level, e.g.
    ``bash scripts/kernels.sh avx2``), and each carried part is reused only where its fingerprint (code, weights,
    data, settings) still matches."""
    src, dst = run_dir(cfg, dataset, seed), published_dir(cfg, dataset, seed) / CARRY
    rels = [*_part_files(src), *([Path("pipeline.json")] if (src / "pipeline.json").is_file() else [])]
    return [_copy_changed(src, dst, rel) for rel in rels]


def carried_kernels(cfg: ExperimentConfig, dataset: str, seed: int) -> str | None:
    """A one-line warning where the carried parts' nets were trained on other CPU kernels than this process
    trains on (a retrain here gives other nets, so none of the parts would be reused); else ``None``."""
    try:
        state = json.loads((published_dir(cfg, dataset, seed) / CARRY / "pipeline.json").read_text())
        kernels = {v["cpu_capability"] for k, v in state["stages"].items() if k.startswith("train/")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    here = torch.backends.cpu.get_cpu_capability()
    if kernels and kernels != {here}:
        return (
            f"{run_dir(cfg, dataset, seed)}: its carried parts come from nets trained on {', '.join(sorted(kernels))} "
            f"kernels and this process trains on {here}: they match only retrained there "
            "(bash scripts/kernels.sh avx2 ...)"
        )
    return None


def restore_carried(cfg: ExperimentConfig, dataset: str, seed: int) -> list[Path]:
    """Copy the carried parts a run's folder lacks into it (never over a part it has); return them."""
    src, dst = published_dir(cfg, dataset, seed) / CARRY, run_dir(cfg, dataset, seed)
    if warning := carried_kernels(cfg, dataset, seed):
        print(f"warning: {warning}", file=sys.stderr)
    restored = []
    for rel in _part_files(src):
        if not (dst / rel).exists():
            atomic_write_bytes(dst / rel, (src / rel).read_bytes())
            restored.append(dst / rel)
    return restored


def carry_all(cfg: ExperimentConfig) -> list[Path]:
    """``--only carry``: carry every unfinished run that has stored parts."""
    copies = []
    for ds in cfg.runs:
        for seed in ds.seeds:
            if not _finished(cfg, ds.dataset, seed):
                copies += carry(cfg, ds.dataset, seed)
    return copies


def _published_eval(cfg: ExperimentConfig, dataset: str, seed: int) -> str | None:
    """The published suite result a run adopts (``adopt_published``), where there is one."""
    path = published_dir(cfg, dataset, seed) / "eval" / "results.json"
    return str(path) if cfg.adopt_published and path.is_file() else None


def find_run(cfg: ExperimentConfig, dataset: str, seed: int) -> Path | None:
    """The folder a finished run (one with ``eval/results.json``) is read from: ``run_dir`` where it is there,
    else ``published_dir``; ``None`` where neither holds it."""
    for d in (run_dir(cfg, dataset, seed), published_dir(cfg, dataset, seed)):
        if (d / "eval" / "results.json").is_file():
            return d
    return None


def run(cfg: ExperimentConfig) -> None:
    runs = [
        PipelineConfig(
            **({"models": list(ds.models)} if ds.models else {}),
            **({"controls": list(cfg.controls)} if cfg.controls else {}),
            **({"accuracy_control": True} if cfg.accuracy_control else {}),
            out=str(run_dir(cfg, ds.dataset, seed)),
            data=DataChoice(root=cfg.data.root, dataset=ds.dataset),
            epochs=ds.epochs,
            seed=seed,
            train_configs=list(ds.train_configs),
            per_dataset={ds.dataset: DatasetRecipe(eval=ds.eval, vis=ds.vis)},
            redo=list(cfg.redo),
            adopt_eval=_published_eval(cfg, ds.dataset, seed),
        )
        for ds in cfg.runs
        for seed in ds.seeds
    ]
    check_stages(cfg.stages)
    check_redo(cfg.redo)
    for pipeline_cfg in runs:  # every run's settings checked before any run starts
        pipeline_cfg.validate()
    check_page(cfg)
    for pipeline_cfg in runs:
        if restored := restore_carried(cfg, pipeline_cfg.data.dataset, pipeline_cfg.seed):
            print(f"{pipeline_cfg.out}: {len(restored)} carried part(s) restored", file=sys.stderr)
    # Training first, for every run: the accuracy targets are known hours before the robustness suite ends.
    # Then each run's remaining stages, run by run, so every finished run has its report.
    if "train" in cfg.stages:
        for pipeline_cfg in runs:
            Pipeline(replace(pipeline_cfg, stages=["train"], redo=[])).run()
    rest = [s for s in cfg.stages if s != "train"]
    if rest:
        for pipeline_cfg in runs:
            Pipeline(replace(pipeline_cfg, stages=rest)).run()
            publish(cfg, pipeline_cfg.data.dataset, pipeline_cfg.seed)
            if _finished(cfg, pipeline_cfg.data.dataset, pipeline_cfg.seed):  # its results are published now
                shutil.rmtree(published_dir(cfg, pipeline_cfg.data.dataset, pipeline_cfg.seed) / CARRY, True)


def _targets(ds: DatasetRuns, runs: list[Results], base: str, td: str) -> list[str]:
    """Whether the mean clean accuracies meet the dataset's targets, in words."""
    if ds.target_top1 is None:
        return []
    acc = {k: [a for r in runs if (m := r.model(k)) and (a := m.clean.top1) is not None] for k in (base, td)}
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


def _model_recipe(model: ModelResults) -> tuple[str, str]:
    """``(architecture with its options, epochs trained)`` from a model's checkpoint record."""
    arch = model.arch
    # An argument set to None is an option left off: a checkpoint from before the option existed
    # (which lacks it) was trained the same way.
    init = {k: v for k, v in (arch.get("init_args") or {}).items() if k not in _NOT_RECIPE and v is not None}
    args = ", ".join(f"{k}={v}" for k, v in sorted(init.items()))
    epochs = str(model.epoch + 1) if model.epoch is not None else "?"
    return f"{str(arch.get('class_path', '?')).rsplit('.', 1)[-1]}({args})", epochs


def recipe(run: Results | dict[str, Any]) -> str:
    """How a run's models were trained, in words: architecture, epochs, training crops and test size.

    Seeds are averaged only when this is the same for all of them: a changed config leaves the runs made
    before it out of the mean instead of mixing two recipes. The controls are described apart
    (``controls_text``): a run evaluated before they existed was trained the same way.
    """
    res = as_results(run)
    desc = res.data_description
    size = desc.get("image_size")
    crops = desc.get("train_image_size") or size
    parts = [f"{crops} px training crops, {size} px test images" if size else "image size not recorded"]
    if desc.get("trainval"):
        parts[0] += ", trained on train+val"
    models = res.models
    for key in sorted(models):
        if key in CONTROLS:
            continue
        arch, epochs = _model_recipe(models[key])
        parts.append(f"{key}: {arch}, {epochs} epochs")
    return "; ".join(parts)


def controls_text(runs: list[Results] | list[dict[str, Any]]) -> str | None:
    """The controls the runs hold, in words: what each is, its architecture, its epochs (per seed where they differ)."""
    parts = []
    for key, name in CONTROLS.items():
        have = [_model_recipe(m) for r in runs if (m := as_results(r).model(key)) is not None]
        if have:
            archs = " / ".join(dict.fromkeys(a for a, _ in have))
            each = [e for _, e in have]
            epochs = f"{each[0]} epochs" if len(set(each)) == 1 else " · ".join(each) + " epochs (each seed)"
            parts.append(f"the {name} (`{key}`, {archs}, {epochs}): {CONTROL_DESCRIPTIONS[key]}")
    return "Controls: " + "; ".join(parts) if parts else None


def _vis_row(dirs: list[Path], cols: list[str]) -> str | None:
    """Visualization quality figures passed, per seed, one cell per model (from each run's vis.json, which
    names the models as the evaluation does or, with other names, holds them in the same order)."""
    cells: list[list[str]] = [[] for _ in cols]
    for d in dirs:
        p = d / "vis" / "vis.json"
        vis = VisResults(json.loads(p.read_text()) if p.is_file() else {})
        names = list(vis.models)
        for i, key in enumerate(cols):
            name = key if key in names else (names[i] if i < len(names) and names[i] not in cols else None)
            figures = vis.quality_figures(name) if name is not None else []
            cells[i].append(f"{sum(bool(f.passed) for _, f in figures)}/{len(figures)}" if figures else "–")
    if all(c == "–" for cs in cells for c in cs):
        return None
    return _md_row("visualization quality figures passed (each seed)", [" · ".join(cs) for cs in cells])


def _md_row(label: str, cells: list[str]) -> str:
    return "| " + " | ".join([label, *cells]) + " |"


def _autoattack_budgets(runs: list[Results], cols: list[str]) -> list[tuple[str, float]]:
    """Every ``(norm, eps)`` AutoAttack ran at on any model of any run: L∞ first, then by eps."""
    seen: dict[str, tuple[str, float]] = {}
    for r in runs:
        for k in cols:
            for s in m.autoattacks.values() if (m := r.model(k)) is not None else ():
                seen.setdefault(f"{s.norm}:{s.eps:.6g}", (s.norm, s.eps))
    return sorted(seen.values(), key=lambda b: (b[0] != "linf", b[1]))


def _with_autoattack(runs: list[Results], cols: list[str], norm: str, eps: float) -> str:
    """How a worst-case row's label says whether AutoAttack is in it."""
    ran = [m.autoattack(norm, eps) is not None for r in runs for k in cols if (m := r.model(k)) is not None]
    if not any(ran):
        return ""
    if all(ran):
        return ", AutoAttack included"
    return f", AutoAttack included where it ran ({sum(ran)} of {len(ran)} model evaluations)"


def _each_seed(values: list[str | None]) -> str:
    """A cell with one value per seed: ``85.8 · – · 84.1``."""
    return " · ".join("–" if v is None else v for v in values)


def _broke(seeds: list[AutoAttack | None]) -> str:
    """AutoAttack's extra broken images at one budget on each seed, and how many each of its attacks broke,
    summed over the seeds: ``9 (custom: apgd-ce 6, apgd-t 3)``, ``9 · 4 (custom, over the seeds: apgd-ce 8,
    apgd-t 5)``."""
    ran = [s for s in seeds if s is not None]
    counts = _each_seed([None if s is None else str(s.extra_broken) for s in seeds])
    if not ran:
        return counts
    each: dict[str, int] = {}
    for s in ran:
        for name, a in s.attacks.items():
            if a.n_broken is not None:
                each[name] = each.get(name, 0) + a.n_broken
    versions = " / ".join(dict.fromkeys(s.version for s in ran))
    over = ", over the seeds" if len(seeds) > 1 else ""
    each_text = ", ".join(f"{name} {n}" for name, n in each.items())
    return f"{counts} ({versions}{over}{': ' + each_text if each_text else ''})"


def _passed(check: Check | None) -> str | None:
    if not check:
        return None
    return {True: "pass", False: "FAIL"}.get(check.passed, "not run")


def _link(path: Path, page: Path) -> str:
    return Path(os.path.relpath(path, page.parent)).as_posix()


PLOTS = ("attacks_linf.png", "perturbations.png", "corruptions.png", "scales.png")


def findings_markdown(cfg: ExperimentConfig, page: Path) -> list[str]:
    """The page's "What the visualizations found": every seed's findings.json, from its run or its published
    copy, through :func:`topdown.findings.report.markdown_section`, and the first seed's figures."""
    per_dataset: dict[str, list[dict[str, Any]]] = {}
    first: dict[str, Path] = {}
    for ds in cfg.runs:
        for seed in ds.seeds:
            path = next(
                (
                    f
                    for d in (run_dir(cfg, ds.dataset, seed), published_dir(cfg, ds.dataset, seed))
                    if (f := d / "findings" / "findings.json").is_file()
                ),
                None,
            )
            if path is not None:
                per_dataset.setdefault(ds.dataset, []).append(json.loads(path.read_text()))
                first.setdefault(ds.dataset, path.parent)
    if not per_dataset:
        return []
    md = markdown_section(per_dataset)
    for dataset, src in first.items():
        figs = page.parent / "figures" / dataset / "findings"
        pngs = [p for p in FIGURES if (src / p).is_file() or (figs / p).is_file()]
        if pngs:
            md += [f"Figures of the first seed of {dataset}:", ""]
            figs.mkdir(parents=True, exist_ok=True)
        for png in pngs:
            if (src / png).is_file() and src != figs:
                shutil.copyfile(src / png, figs / png)
            md += [f"![{png}](figures/{dataset}/findings/{png})", ""]
    return md


@dataclass
class FoundRun:
    """One finished run of a dataset: where it is, its results and the training recipe behind them."""

    seed: int
    dir: Path
    results: Results
    recipe: str
    when: tuple[str, float]  # the evaluation's recorded time (a copied file's own time is when it was copied)


@dataclass
class DatasetResults:
    """The finished runs of one dataset that share the newest run's recipe, and those left out (another recipe)."""

    spec: DatasetRuns
    runs: list[FoundRun]
    stale: list[Path]

    @property
    def results(self) -> list[Results]:
        return [r.results for r in self.runs]


def collect(cfg: ExperimentConfig, ds: DatasetRuns) -> DatasetResults | None:
    """Every finished run of ``ds`` (from ``cfg.out``, else its published copy); ``None`` when no run with a
    baseline and a top-down net has finished."""
    found = []
    for seed in ds.seeds:
        d = find_run(cfg, ds.dataset, seed)
        if d is None:
            continue
        p = d / "eval" / "results.json"
        res = Results(json.loads(p.read_text()))
        found.append(FoundRun(seed, d, res, recipe(res), (str(res.created or ""), p.stat().st_mtime)))
    if not found or found[0].results.pair() is None:
        return None
    current = max(found, key=lambda f: f.when).recipe  # the newest run's recipe
    return DatasetResults(ds, [f for f in found if f.recipe == current], [f.dir for f in found if f.recipe != current])


def metric_table(runs: list[Results], cols: list[str], dirs: list[Path]) -> list[str]:
    """The headline table's rows (:mod:`topdown.report.metrics`), each cell the mean ± std over ``runs`` of one
    model (``cols``), or its value on each seed."""

    def values(metric: Any) -> list[list[Any]]:
        return [[metric(m) if (m := r.model(k)) is not None else None for r in runs] for k in cols]

    def row(m: M.Metric) -> str | None:
        vals = [[v for v in vs if v is not None] for vs in values(m.get)]
        if not any(vals):
            return None  # a metric no run recorded (an older results file, or a suite without it)
        return _md_row(m.label, [m.mean_std(vs) for vs in vals])

    def per_seed(label: str, get: Any, cell: Any = _each_seed) -> str | None:
        vals = values(get)
        if all(v is None for vs in vals for v in vs):
            return None
        return _md_row(label, [cell(vs) for vs in vals])

    top1 = M.CLEAN[0]
    rows = [
        row(top1),
        per_seed("clean top-1 of each seed (%)", lambda m: None if top1.get(m) is None else top1.cell(m)),
    ]
    rows += [row(m) for m in M.CLEAN[1:]]
    base = runs[0].pair()[0]
    for norm in ("linf", "l2"):
        w = runs[0].models[base].worst_case(norm)
        for k, e in enumerate(((w.epsilons if w else None) or [])[1:], 1):
            rows.append(row(M.worst_case_metric(norm, k, e, _with_autoattack(runs, cols, norm, e))))
    budgets = _autoattack_budgets(runs, cols)
    for norm, e in budgets:
        at = lambda m, norm=norm, e=e: m.autoattack(norm, e)  # noqa: E731
        sizes = {s.n for r in runs for k in cols if (m := r.model(k)) is not None and (s := at(m))}
        with_, without = M.autoattack_metrics(norm, e, f"{sizes.pop()} images" if len(sizes) == 1 else "images")
        rows += [row(with_), row(without)]
        rows.append(per_seed(f"AutoAttack at {budget_text(norm, e)}: images only it broke (each seed)", at, _broke))
    if budgets:
        check = lambda m: _passed(m.check("autoattack_adds_little"))  # noqa: E731
        rows.append(per_seed("sanity check: AutoAttack adds little (each seed)", check))
    rows += [row(m) for m in M.MINIMAL]
    rows += [row(M.perturbation_metric(name)) for name in runs[0].perturbation_levels]
    rows += [row(m) for m in M.scale_metrics(runs[0].models[runs[0].pair()[1]])]
    rows.append(per_seed("sanity checks passed (each seed)", lambda m: M.sanity_count(m.sanity)))
    rows.append(_vis_row(dirs, cols))
    return [r for r in rows if r is not None]


TABLE_NOTE = (
    "Attacks and perturbations use a seeded, stratified subset of the test images (the clean rows use all of them); "
    "worst case is per image over every attack of that norm"
)


def dataset_section(cfg: ExperimentConfig, found: DatasetResults, page: Path, pngs: list[str]) -> list[str]:
    """The results page's section of one dataset, from its finished runs (``pngs``: its published plots)."""
    ds, runs, dirs = found.spec, found.results, [f.dir for f in found.runs]
    seeds = [f.seed for f in found.runs]
    base, td = runs[0].pair()
    present = [c for c in CONTROLS if any(r.has(c) for r in runs)]
    cols = [base, td, *present]
    md = [f"{len(runs)} of {len(ds.seeds)} seed(s) finished: {', '.join(str(d) for d in dirs)}.", ""]
    md += [f"Training: {found.runs[0].recipe}.", ""]
    if (ctrl := controls_text(runs)) is not None:
        md += [f"{ctrl}.", ""]
    if found.stale:
        md += [
            f"Left out, trained with another recipe: {', '.join(str(d) for d in found.stale)} (delete a folder and "
            "run the experiment again to redo it with the current configs).",
            "",
        ]
    headers = []
    for k in cols:
        have = sum(r.has(k) for r in runs)
        name = "top-down" if k == td else CONTROLS.get(k, "baseline")
        headers.append(name if have == len(runs) else f"{name} ({have} of {len(runs)} seeds)")
    md += [_md_row("metric", headers), "|---" * (len(cols) + 1) + "|", *metric_table(runs, cols, dirs)]
    budgets = _autoattack_budgets(runs, cols)
    md += [
        "",
        TABLE_NOTE
        + (", AutoAttack's included at the budgets it ran at" if budgets else "")
        + ". On one scale only: the top-down net's pyramid level, the baseline's"
        + (" (and a control's)" if present else "")
        + " same frequency band of the image.",
    ]
    if budgets:
        md[-1] += (
            " AutoAttack runs on its own stratified part of the subset, only on the images every other attack "
            "left robust; its rows compare robust accuracy on those images with and without it."
        )
    md += ["", *(t for t in _targets(ds, runs, base, td) for t in (t, "")), "Conclusions (computed):", ""]
    md += [f"- {c}" for c in conclusions(runs)]
    for control, lines in control_conclusions(runs).items():
        md += ["", f"Top-down against the {CONTROLS[control]} (computed):", ""]
        md += [f"- {c}" for c in lines]
    if surv := survival(runs):
        md += ["", f"Which of the top-down net's advantages over the baseline survive (computed; {SURVIVAL_RULE}):", ""]
        md += [f"- {c}" for c in surv]
    md += _file_links(cfg, ds.dataset, seeds, page)
    if pngs:
        md += ["", f"Plots of seed{seeds[0]}:"]
    md += [line for png in pngs for line in ("", f"![{png}](figures/{ds.dataset}/{png})")]
    return md


def _file_links(cfg: ExperimentConfig, dataset: str, seeds: list[int], page: Path) -> list[str]:
    """The sentences naming the committed result files and the runs' reports behind a section."""
    md, files = [], []
    for seed in seeds:
        pub = published_dir(cfg, dataset, seed)
        links = [f"[{Path(rel).name}]({_link(pub / rel, page)})" for rel in PUBLISHED if (pub / rel).is_file()]
        if links:
            files.append(f"seed {seed}: {' · '.join(links)}")
    if files:
        md += ["", f"Every number above is computed from these committed result files: {'; '.join(files)}."]
    reports = [f"`{r}`" for s in seeds if (r := run_dir(cfg, dataset, s) / "report.html").is_file()]
    if reports:
        md += ["", f"Each run's full report (every section, all models side by side): {', '.join(reports)}."]
    return md


def publish_plots(cfg: ExperimentConfig, dataset: str, seed: int, page: Path) -> list[str]:
    """Copy the evaluation plots of a dataset's first seed beside the page (``figures/<dataset>/``); the ones
    the page can show."""
    figs = page.parent / "figures" / dataset
    src = run_dir(cfg, dataset, seed) / "eval"
    pngs = [p for p in PLOTS if (src / p).is_file() or (figs / p).is_file()]
    if pngs:
        figs.mkdir(parents=True, exist_ok=True)
    for png in pngs:
        if (src / png).is_file():
            shutil.copyfile(src / png, figs / png)
    return pngs


def check_page(cfg: ExperimentConfig) -> None:
    """A one-line error where ``results_md`` already holds a dataset's section that this experiment has no runs
    of: writing the page would drop it (an experiment over a few runs writes its own ``results_md``)."""
    page = Path(cfg.results_md)
    if not page.is_file():
        return
    held = {line[3:].strip() for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("## ")}
    dropped = sorted(held & set(get_args(JobDataset)) - {ds.dataset for ds in cfg.runs})
    if dropped:
        raise ConfigError(
            f"results_md: {cfg.results_md} holds {', '.join(dropped)}, which this experiment does not run; "
            "writing it would drop them (give this experiment a results_md of its own)"
        )


def aggregate(cfg: ExperimentConfig) -> str:
    """The results page over every finished run: collect each dataset's runs, write its section, publish the
    files it links; then the visual findings."""
    page = Path(cfg.results_md)
    md = [
        "# Results: top-down vs baseline on real and procedural flowers",
        "",
        "Generated by `python -m topdown.experiment --config configs/experiment/headline.yaml --data.root <data>` "
        "(resumable: run it again to continue; `--only aggregate` rewrites this page) from the runs in "
        f"`{cfg.out}`, or, where a run is not there, from its result files committed in "
        f"`{_published_root(cfg)}`; every number is mean ± std over the seeds that have finished.",
        "",
    ]
    any_run = False
    for ds in cfg.runs:
        for seed in ds.seeds:  # the page links the published copies: keep them current
            if find_run(cfg, ds.dataset, seed) == run_dir(cfg, ds.dataset, seed):
                publish(cfg, ds.dataset, seed)
        found = collect(cfg, ds)
        any_run = any_run or any(find_run(cfg, ds.dataset, s) is not None for s in ds.seeds)
        md += [f"## {ds.dataset}", ""]
        if found is None:
            md += [f"No finished run yet ({len(ds.seeds)} seed(s) planned).", ""]
            continue
        pngs = publish_plots(cfg, ds.dataset, found.runs[0].seed, page)
        md += [*dataset_section(cfg, found, page, pngs), ""]
    md += findings_markdown(cfg, page)
    text = "\n".join(md) + "\n"
    if not any_run and Path(cfg.results_md).is_file():
        # a fresh machine with neither the runs nor their published copies: keep the page that exists
        print(
            f"no finished run under {cfg.out} or {_published_root(cfg)}: {cfg.results_md} left as it is",
            file=sys.stderr,
        )
        return text
    atomic_write_text(cfg.results_md, text)
    return text


def parse_experiment(argv: list[str]) -> ExperimentConfig:
    """The experiment's config from ``argv`` (a config file and options), typed; a bad option or section is a
    one-line :class:`ConfigError`."""
    return parse_options(ExperimentConfig, argv, __doc__, __name__)


def run_experiment(argv: list[str]) -> None:
    """Parse ``argv``, run the experiment it configures (unless ``--only aggregate``) and aggregate."""
    cfg = parse_experiment(argv)
    if cfg.only == "carry":
        copies = carry_all(cfg)
        size = sum(p.stat().st_size for p in copies)
        where = f"{_published_root(cfg)}/<dataset>/seed<k>/{CARRY}"
        print(f"carried {len(copies)} file(s), {size / 1e3:.0f} kB, into {where}")
        return
    if cfg.only == "all":
        run(cfg)
    else:
        check_page(cfg)
    print(aggregate(cfg))


def main(args: list[str] | None = None) -> None:
    run_command(run_experiment, args)


if __name__ == "__main__":
    # The importable module's main, so that its config classes belong to `topdown.experiment` and their typed
    # fields resolve under any runner (`python -m cProfile -m ...` keeps its own `__main__` module).
    from topdown.experiment import main as _main

    _main()
