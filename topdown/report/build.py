"""The side-by-side HTML report of a pipeline run (``<out>/report.html``, one self-contained file).

It reads what the stages wrote: ``pipeline.json`` (training), the checkpoints (architecture, data,
hyper-parameters), ``eval/results.json`` with its plots, and ``vis/vis.json`` with its images. A missing
stage leaves its sections saying so; nothing is invented.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoint import CheckpointError, load_checkpoints, read_checkpoint
from ..findings.plots import FIGURES
from ..findings.report import ALPHA, comparison_rows, detector_table, swap_shares
from ..io import atomic_write_text, read_json_if_there
from ..models import count_macs, count_params
from ..results_view import AutoAttack, Check, ModelResults, Results, VisMethod, VisResults
from ..run_state import dataset_of
from . import metrics as M
from .conclusions import CONTROL_DESCRIPTIONS, CONTROLS, SURVIVAL_RULE, conclusions, control_conclusions, survival
from .html import badge, esc, figure, fmt, page, pct, table


def _models_info(out: Path, pipeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per trained model: checkpoint metadata, hyper-parameters, params and MACs."""
    info: dict[str, dict[str, Any]] = {}
    for key, stage in pipeline.get("stages", {}).items():
        if not key.startswith("train/"):
            continue
        name = key.split("/", 1)[1]
        try:
            # the one loader, one checkpoint at a time: a missing file leaves only its own row out
            loaded = load_checkpoints([stage["checkpoint"]], [name])[0][name]
            hparams = read_checkpoint(stage["checkpoint"]).get("hyper_parameters", {})
        except (CheckpointError, KeyError):
            continue
        size = int(loaded.data.get("image_size", 64))
        info[name] = {
            "stage": stage,
            "arch": loaded.arch,
            "data": loaded.data,
            "hparams": hparams,
            "params": count_params(loaded.net),
            "macs": count_macs(loaded.net, size),
            "epoch": loaded.epoch,
        }
    return info


def _setup_section(models: dict[str, dict[str, Any]]) -> str:
    if not models:
        return '<p class="muted">No trained models recorded in pipeline.json.</p>'
    first = next(iter(models.values()))
    d = first["data"]
    classes = d.get("classes", [])
    rows = [
        ("dataset", d.get("dataset")),
        ("image size", f"{d.get('image_size')} px"),
        ("training crops", f"{d.get('train_image_size', d.get('image_size'))} px"),
        ("classes", f"{len(classes)}: {', '.join(classes[:12])}{' …' if len(classes) > 12 else ''}"),
        ("split seed", d.get("seed")),
    ]
    body = table(["data", ""], rows)
    keys = ["lr", "momentum", "weight_decay", "label_smoothing", "schedule", "warmup_fraction"]
    hrows = [(k, *[fmt(m["hparams"].get(k)) for m in models.values()]) for k in keys]
    hrows.append(("epochs", *[fmt(m["stage"].get("epochs")) for m in models.values()]))
    hrows.append(("architecture", *[esc(m["arch"]["class_path"].rsplit(".", 1)[-1]) for m in models.values()]))
    arch_keys = sorted({k for m in models.values() for k in m["arch"]["init_args"]} - {"mean", "std", "num_classes"})
    hrows += [(k, *[esc(m["arch"]["init_args"].get(k, "–")) for m in models.values()]) for k in arch_keys]
    note = (
        '<p class="muted">Architecture options as each checkpoint records them (None: the option is off or left to its '
        "default); –: not an option of that architecture.</p>"
    )
    return body + table(["training", *models], hrows, raw=True) + note


def _cost_section(models: dict[str, dict[str, Any]]) -> str:
    if not models:
        return '<p class="muted">No trained models.</p>'
    names = list(models)
    ref = models[names[0]]
    rows = []
    for n, m in models.items():
        st = m["stage"]
        rows.append(
            (
                n,
                f"{m['params'] / 1e6:.3f}M",
                f"{m['params'] / ref['params']:.2f}×",
                f"{m['macs'] / 1e6:.1f}M",
                f"{m['macs'] / ref['macs']:.2f}×",
                fmt(st.get("train_images_per_s"), 1),
                fmt(st.get("train_seconds"), 0),
                # trained on train+val: its validation images are training images, so no validation figure
                "–" if (m.get("data") or {}).get("trainval") else pct(st.get("val_acc")),
            )
        )
    return table(
        [
            "model",
            "params",
            "vs " + names[0],
            "MACs / image",
            "vs " + names[0],
            "training img/s (wall clock)",
            "training time (s)",
            "final val top-1",
        ],
        rows,
    ) + (
        '<p class="muted">MACs from torch.utils.flop_counter at the training image size; training time and '
        "throughput are the wall clock of every training epoch (validation included) on the machine that trained "
        "it, as recorded in the checkpoint; – where the checkpoint holds no such record. A model trained on "
        "train+val has no validation accuracy (–): its validation images are training images.</p>"
    )


def _headline_section(res: Results) -> str:
    """The headline figures, one row per :mod:`topdown.report.metrics` metric the run holds: named, computed and
    written as on the results page, in the suite's printed summary and in the main job's closing table."""
    models = res.models
    rows = M.metric_rows(M.headline_metrics(res), models)
    if any(m.sanity for m in models.values()):
        rows.append(("sanity checks passed", *[M.sanity_count(m.sanity) or "–" for m in models.values()]))
    return table(["", *models], rows) + (
        '<p class="muted">Attacks and perturbations use a seeded, stratified subset of the test images (the clean '
        "rows use all of them); worst case is per image over every attack of that norm. The sections below hold "
        "the figures behind each row.</p>"
    )


def _metric_columns(metrics: list[M.Metric], m: ModelResults) -> list[str]:
    return [metric.cell(m) for metric in metrics]


def _accuracy_section(res: Results) -> str:
    models = res.models
    has_top5 = any(m.clean.top5 is not None for m in models.values()) and len(res.classes) > 5
    clean = [m for m in M.CLEAN if m.key != "clean_top5" or has_top5]
    header = ["model", *(m.label for m in clean), "NLL", "test images"]
    rows = [(n, *_metric_columns(clean, m), fmt(m.clean.nll), fmt(m.clean.n)) for n, m in models.items()]
    body = table(header, rows) + (
        '<p class="muted">confidence: the mean top softmax probability; below top-1 the net is underconfident, '
        "above it overconfident (ECE measures the gap bin by bin).</p>"
    )
    classes = res.classes
    if classes and len(classes) <= 20:
        prow = [(c, *[pct(m.clean.per_class_acc.get(c)) for m in models.values()]) for c in classes]
        body += "<h3>Per-class accuracy</h3>" + table(["class", *models], prow)
    return body


def _attacks_section(res: Results, ev: Path) -> str:
    body = (
        '<div class="pair"><div>'
        + figure(ev / "attacks_linf.png", "L∞ attacks: robust accuracy vs ε")
        + "</div><div>"
        + figure(ev / "attacks_l2.png", "L2 attacks: robust accuracy vs ε")
        + "</div></div>"
    )
    models = res.models
    for norm in ("linf", "l2"):
        runs = [
            (a, n, r)
            for n, m in models.items()
            for a, r in m.attacks.items()
            if r.norm == norm and not a.endswith("_2x")
        ]
        runs.sort(key=lambda t: t[0])
        eps = sorted({float(e) for _, _, r in runs for e in r.epsilons})
        if not eps:
            continue
        rows = []
        for a, n, r in runs:
            acc = dict(zip(map(float, r.epsilons), r.accuracy))
            rows.append((esc(a), esc(n), *[pct(acc.get(e)) for e in eps], fmt(r.median_distance, 4)))
        for n, m in models.items():
            w = m.worst_case(norm)
            if w:
                acc = dict(zip(map(float, w.epsilons), w.accuracy))
                rows.append(("<b>worst case</b>", esc(n), *[pct(acc.get(e)) for e in eps], "–"))
        label = [f"ε={e * 255:g}/255" if norm == "linf" else f"ε={e:g}" for e in eps]
        body += f"<h3>{'L∞' if norm == 'linf' else 'L2'}</h3>" + table(
            ["attack", "model", *label, "median min. perturbation"], rows, raw=True
        )
    tolerance = res.sanity_tolerance
    body += _autoattack_tables(models, float(0.01 if tolerance is None else tolerance))
    dec = {n: d for n, m in models.items() if (d := m.decision)}
    if dec:
        rows = [(n, d.method, fmt(d.n), fmt(d.median_distance, 4)) for n, d in dec.items()]
        body += "<h3>Decision-based attack (sanity)</h3>" + table(
            ["model", "method", "images", "median L2 distance"], rows
        )
    return body


def _autoattack_tables(models: dict[str, ModelResults], tolerance: float) -> str:
    """AutoAttack per budget: robust accuracy without and with it on its images, the sanity verdict beside the
    numbers, and which attack broke each image first (at every eps of the worst case)."""
    rows = []
    for n, m in models.items():
        for s in m.autoattacks.values():
            rows.append(_autoattack_row(n, s, tolerance))
    if not rows:
        return ""
    header = [
        "model",
        "budget",
        "version",
        "images",
        "robust: rest of the suite",
        "robust: with AutoAttack",
        "attacks (broke / attacked)",
        "sanity",
    ]
    body = "<h3>AutoAttack (Croce &amp; Hein 2020)</h3>" + table(header, rows)
    first = [
        (n, _budget(norm, e), ", ".join(f"{a}: {c}" for a, c in counts.items()))
        for n, m in models.items()
        for norm, w in m.worst_cases.items()
        for e, counts in zip(w.epsilons, w.first_broken_by or [])
        if e > 0 and counts
    ]
    if first:
        body += "<h4>Which attack broke each image first (in running order; clean: misclassified already)</h4>"
        body += table(["model", "budget", "images first broken by"], first)
    return body


def _autoattack_row(name: str, s: AutoAttack, tolerance: float) -> tuple[Any, ...]:
    held = s.extra_broken <= max(tolerance * s.n, 1)
    verdict = (
        "✓ the rest of the suite held"
        if held
        else f"✗ AutoAttack broke {s.extra_broken} more: the rest of the suite overstated robustness"
    )
    attacks = ", ".join(f"{a} ({r.n_broken}/{len(r.attacked)})" for a, r in s.attacks.items())
    budget = _budget(s.norm, s.eps)
    return name, budget, s.version, fmt(s.n), pct(s.accuracy_without), pct(s.accuracy_with), attacks, verdict


def _budget(norm: str, eps: float) -> str:
    return f"L∞ {eps * 255:.3g}/255" if norm == "linf" else f"L2 {eps:g}"


def _perturbation_section(res: Results, ev: Path) -> str:
    body = figure(
        ev / "perturbations.png", "The reference paper's perturbations: accuracy vs the perturbation's L2 size"
    )
    models = res.models
    metrics = [M.perturbation_metric(p) for p in M.perturbation_names(res)]
    body += table(["perturbation", *models], M.metric_rows(metrics, models, skip_empty=False))
    body += (
        '<p class="muted">AUC: area under accuracy vs L2 distance, normalised by the largest L2 of the sweep '
        "(×100: 100 = full accuracy everywhere).</p>"
    )
    return body


def _corruption_section(res: Results, ev: Path) -> str:
    body = figure(ev / "corruptions.png", "Accuracy per corruption and severity")
    models = res.models
    names = list(dict.fromkeys(c for m in models.values() for c in m.corruptions.per_corruption))
    rows = []
    for c in names:
        cells = []
        for m in models.values():
            pc = m.corruptions.per_corruption.get(c)
            accs = (pc.accuracy if pc else None) or []
            cells.append(" / ".join(pct(a, 0) for a in accs) if accs else "–")
        ce = [fmt(m.corruptions.ce.get(c), 2) for m in models.values()]
        rows.append((c.replace("_", " "), *cells, *ce))
    body += table(["corruption", *[f"{n} accuracy by severity" for n in models], *[f"CE {n}" for n in models]], rows)
    figures = [M.MCE, M.CORRUPTION_ACCURACY]
    mce = [(n, *_metric_columns(figures, m)) for n, m in models.items()]
    body += table(["model", *(f.label for f in figures)], mce)
    return body


def _scales_section(res: Results, ev: Path) -> str:
    body = figure(ev / "scales.png", "One pyramid level (top-down) or one image band (baseline) perturbed at a time")
    rows = []
    for n, m in res.models.items():
        for kind, s in m.scales.items():
            for lvl, f, accs in zip(s.levels or [], s.factors or [], s.accuracy or []):
                res_txt = "full" if f == 1 else f"1/{f}"
                rows.append(
                    (
                        n,
                        kind,
                        (s.mode or "").replace("_", " "),
                        res_txt,
                        " / ".join(pct(a, 0) for a in accs),
                        "◀ most harmful" if lvl == s.most_harmful_level else "",
                    )
                )
    return body + table(["model", "perturbation", "applied to", "resolution", "accuracy by strength", ""], rows)


def _sanity_section(res: Results) -> str:
    models = res.models
    checks = list(dict.fromkeys(c for m in models.values() for c in m.sanity))
    rows = []
    for c in checks:
        cells = []
        for m in models.values():
            s = m.check(c)
            cells.append(
                "–"
                if s is None
                else f'{badge(s.passed)} <span class="muted">'
                f"{fmt(s.value)} {esc(s.direction or '')} {fmt(s.threshold)}</span>"
            )
        rows.append((esc(c.replace("_", " ")), *cells))
    return table(["check", *models], rows, raw=True) + (
        '<p class="muted">Carlini et al. 2019: a failed check flags possible gradient masking or a weak attack; '
        "the numbers above are kept, not hidden.</p>"
    )


def _figure_detail(detail: Any, most: int = 4) -> str:
    """A quality figure's scalar components in words (e.g. the deletion test's three drops)."""
    if not isinstance(detail, dict):
        return ""
    items = [(k, v) for k, v in detail.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return esc(", ".join(f"{k.replace('_', ' ')} {fmt(v)}" for k, v in items[:most]))


def _quality_table(quality: dict[str, Check]) -> str:
    if not quality:
        return ""
    rows = [
        (
            esc(k.replace("_", " ")),
            f"{fmt(q.value)}",
            f"{esc(q.direction or '')} {fmt(q.threshold)}",
            badge(q.passed),
            _figure_detail(q.detail),
        )
        for k, q in quality.items()
    ]
    return table(["quality figure", "value", "target", "", "from"], rows, raw=True)


def _measure_tables(details: dict[str, Any]) -> str:
    """A method's side-by-side tables (``details["tables"]``: the priors method's, one per judging net)."""
    out = ""
    for t in details.get("tables", []):
        judge = t.get("judge")
        out += f'<p class="muted">Judged by {esc(judge) if judge else "this net"}:</p>'
        out += table(t["header"], [[str(v) for v in r] for r in t["rows"]])
    return out


def _vis_section(vis: VisResults | None, vdir: Path) -> str:
    if not vis:
        return '<p class="muted">No visualizations (vis/vis.json missing).</p>'
    models = vis.models
    methods = list(dict.fromkeys(k for m in models.values() for k in m.methods))
    body = ""
    # one column per model (two by default)
    columns = f' style="grid-template-columns: repeat({len(models)}, 1fr)"' if len(models) > 2 else ""
    for method in methods:
        body += f'<h3>{esc(method.replace("_", " "))}</h3><div class="pair"{columns}>'
        for name, m in models.items():
            entry = m.methods.get(method) or VisMethod({})
            imgs = "".join(figure(vdir / p, "", pixelated=True) for p in entry.images)
            desc = esc(entry.description or "")
            quality = _quality_table(entry.quality) + _measure_tables(entry.details)
            body += f'<div><h3>{esc(name)}</h3><p class="muted">{desc}</p>{imgs}{quality}</div>'
        body += "</div>"
    return body


def _findings_section(doc: dict[str, Any] | None, fdir: Path) -> str:
    """The findings stage's paired comparisons of the top-down net with every other model (one run: a
    difference is stated where that run's paired test is below 0.05; verdicts across seeds need every seed)."""
    if not doc:
        return '<p class="muted">No findings (findings/findings.json missing).</p>'

    subject = doc["subject"]
    intro = (
        f"<p>On the same {doc['images']} test images for every model: which cue a decision follows, where its "
        "evidence lies against the part masks, what frequencies its class gradient carries. Each figure is per image; "
        f"{esc(subject)} is compared with each model by a paired test (McNemar for outcomes, Wilcoxon signed-rank "
        f"for shares), and a difference is stated where p &lt; {ALPHA}. One run: a claim about the nets needs every "
        "seed to agree (<code>python -m topdown.findings.report</code>).</p>"
    )
    header = ["against", "figure", subject, "other", "difference", "p", f"{subject} is"]
    body = intro
    body += "".join(figure(fdir / name, caption) for name, caption in FIGURES.items() if (fdir / name).is_file())
    body += table(header, comparison_rows(doc))
    for pair, matrix in doc.get("cka", {}).items():
        a, b = pair.split("|")
        rows = [[stage, *(f"{v:.2f}" for v in row.values())] for stage, row in matrix.items()]
        cols = list(next(iter(matrix.values())))
        body += f"<h3>Linear CKA, {esc(a)} (rows) against {esc(b)} (columns)</h3>" + table([a, *cols], rows)
    if swaps := doc["models"].get(subject, {}).get("pyramid_swaps"):
        body += (
            f"<h3>{esc(subject)}'s pyramid levels swapped between two flowers (the coarsest k levels from the "
            "first, the finer ones from the second)</h3>"
        )
        rows = [[key.split("=")[-1], *(f"{v:.2f}" for v in sh.values())] for key, sh in swap_shares(swaps).items()]
        body += table(
            ["coarse levels from the first", "follows the first's form", "follows the second's pattern"], rows
        )
    if detectors := detector_table(doc):
        body += "<h3>Dissection at matched resolution: part detectors and IoU against shuffled masks</h3>"
        body += table(*detectors)
    return body


def _items(lines: list[str]) -> str:
    return '<ul class="conclusions">' + "".join(f"<li>{esc(c)}</li>" for c in lines) + "</ul>"


def _conclusions_section(res: Results) -> str:
    """Top-down against the baseline, against each control the run holds, and which of its advantages
    survive AutoAttack and the controls."""
    body = _items(conclusions([res]))
    for control, lines in control_conclusions([res]).items():
        body += f"<h3>Against the {esc(CONTROLS[control])}</h3>"
        what = CONTROL_DESCRIPTIONS[control]
        body += f'<p class="muted">{esc(what[0].upper() + what[1:])}.</p>' + _items(lines)
    if surv := survival([res]):
        body += "<h3>Which advantages over the baseline survive</h3>"
        body += f'<p class="muted">{esc(SURVIVAL_RULE[0].upper() + SURVIVAL_RULE[1:])}.</p>' + _items(surv)
    return body


def build_report(out: str | Path) -> Path:
    """Write ``<out>/report.html`` from what the pipeline's stages left in ``out``; return its path."""
    out = Path(out)
    pipeline = read_json_if_there(out / "pipeline.json") or {"stages": {}, "config": {}}
    doc, vis_doc = read_json_if_there(out / "eval" / "results.json"), read_json_if_there(out / "vis" / "vis.json")
    res = Results(doc) if doc else None
    vis = VisResults(vis_doc) if vis_doc else None
    models = _models_info(out, pipeline)
    dataset = next(iter(models.values()))["data"].get("dataset") if models else dataset_of(pipeline["config"])

    if res and res.pair():
        summary = _conclusions_section(res)
    else:
        summary = '<p class="muted">No evaluation of a baseline and a top-down model: no conclusions.</p>'
    sections = [
        ("conclusions", "Conclusions", summary),
        ("setup", "Data and training", _setup_section(models)),
        ("cost", "Cost and speed", _cost_section(models)),
    ]
    if res:
        ev = out / "eval"
        sections += [
            ("headline", "Headline figures", _headline_section(res)),
            ("accuracy", "Clean accuracy", _accuracy_section(res)),
            ("attacks", "Adversarial attacks", _attacks_section(res, ev)),
            ("perturbations", "The paper's perturbations", _perturbation_section(res, ev)),
            ("corruptions", "Common corruptions", _corruption_section(res, ev)),
            ("scales", "Per-scale ablation", _scales_section(res, ev)),
            ("sanity", "Sanity checks", _sanity_section(res)),
        ]
    else:
        sections.append(("accuracy", "Evaluation", '<p class="muted">No evaluation results (eval/results.json).</p>'))
    # The visualizations open with what they found: the computed comparisons, then the images.
    findings = _findings_section(read_json_if_there(out / "findings" / "findings.json"), out / "findings")
    sections.append(("findings", "What each net learned", findings))
    sections.append(("vis", "Visualizations", _vis_section(vis, out / "vis")))
    controls = [CONTROLS[c] for c in CONTROLS if res is not None and res.has(c)]
    against = f" (and the {' and the '.join(controls)})" if controls else ""
    subtitle = (
        f"Top-down vs baseline{esc(against)} on <b>{esc(dataset)}</b>. Every number and sentence here is "
        f"computed from the files in <code>{esc(out)}</code>."
    )
    path = out / "report.html"
    atomic_write_text(path, page("topdown report", subtitle, sections))
    return path
