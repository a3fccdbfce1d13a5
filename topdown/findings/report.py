"""The findings in words and tables: what differs between the top-down net and each other model, and where a
paired test backs the difference."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from ..errors import ConfigError, run_command
from ..io import read_json
from .detectors import detector_rows, matched_stages

#: A difference is claimed where the paired test's two-sided p is below this (on every seed, where several).
ALPHA = 0.05


def verdict(row: Mapping[str, Any]) -> str:
    """``higher``, ``lower`` or ``no claim`` for the subject against the other model."""
    if row["p"] >= ALPHA or row["difference"] == 0:
        return "no claim"
    return "higher" if row["difference"] > 0 else "lower"


def comparison_rows(findings: Mapping[str, Any]) -> list[list[str]]:
    """One row per (other model, figure): figure, subject's mean, other's mean, difference, p, verdict."""
    subject = findings["subject"]
    rows = []
    for other, figs in findings["comparisons"].items():
        for row in figs.values():
            rows.append(
                [
                    other,
                    row["label"],
                    f"{row[subject]:.3f}",
                    f"{row[other]:.3f}",
                    f"{row['difference']:+.3f}",
                    f"{row['p']:.3g}",
                    verdict(row),
                ]
            )
    return rows


def detector_table(findings: Mapping[str, Any], other: str = "baseline") -> tuple[list[str], list[list[str]]] | None:
    """The subject's and ``other``'s dissections at every map side both have: header and rows (stage, detectors
    per part, mean best IoU and its shuffled-mask chance), or ``None`` without dissections."""
    subject, models = findings["subject"], findings["models"]
    if not all("detectors" in models.get(n, {}) for n in (subject, other)):
        return None
    header = [
        "map side",
        "model",
        "stage",
        "units",
        "detectors (background / petals / centre)",
        "mean best IoU",
        "shuffled",
    ]
    rows = []
    for r in detector_rows(models, [subject, other]):
        for name in (subject, other):
            d = r[name]
            counts = " / ".join(str(v) for v in d["detectors"].values())
            rows.append(
                [
                    f"{r['side']}×{r['side']}",
                    name,
                    d["stage"],
                    str(d["units"]),
                    counts,
                    f"{d['mean_best_iou']:.3f}",
                    f"{d['mean_best_iou_shuffled']:.3f}",
                ]
            )
    return header, rows


def print_comparisons(findings: Mapping[str, Any]) -> None:
    """The comparisons as a table on stdout (rich)."""
    subject = findings["subject"]
    table = Table(title=f"what {subject} learned, against each model ({findings['images']} test images, paired tests)")
    for col in ("against", "figure", subject, "other", "difference", "p", f"{subject} is"):
        table.add_column(col)
    for row in comparison_rows(findings):
        table.add_row(*row)
    Console(width=140).print(table)


def _seeds(values: list[float], fmt: str = "{:.2f}") -> str:
    """One value per seed: ``0.70 · 0.60``."""
    return " · ".join(fmt.format(v) for v in values)


def across_seeds(docs: list[Mapping[str, Any]], other: str = "baseline") -> list[dict[str, Any]]:
    """Each figure's comparison of the subject with ``other`` over several seeds' findings: the subject's and the
    other's means per seed, each seed's p, and the verdict by the project's rule: ``higher`` or ``lower`` only
    where every seed points the same way and every seed's paired test is below :data:`ALPHA`; ``in sign only``
    where every seed agrees but a test does not back it; ``no difference`` where no seed differs; else
    ``mixed``."""
    if not docs:
        raise ConfigError("findings: no seeds to aggregate")
    subject = docs[0]["subject"]
    tables = [d["comparisons"].get(other) for d in docs]
    if any(t is None for t in tables):
        raise ConfigError(f"findings: some seeds have no comparison with {other!r}")
    out = []
    for key in [k for k in tables[0] if all(k in t for t in tables)]:
        rows = [t[key] for t in tables]
        signs = {(r["difference"] > 0) - (r["difference"] < 0) for r in rows}
        if signs == {0}:
            verdict_ = "no difference"
        elif len(signs) == 1 and 0 not in signs:
            backed = all(r["p"] < ALPHA for r in rows)
            word = "higher" if signs == {1} else "lower"
            verdict_ = word if backed else f"{word} in sign only"
        else:
            verdict_ = "mixed"
        out.append(
            {
                "key": key,
                "label": rows[0]["label"],
                subject: [r[subject] for r in rows],
                other: [r[other] for r in rows],
                "p": [r["p"] for r in rows],
                "verdict": verdict_,
            }
        )
    return out


def _others(docs: list[Mapping[str, Any]]) -> list[str]:
    """The models every seed compares the subject with, baseline first."""
    common = [o for o in docs[0]["comparisons"] if all(o in d["comparisons"] for d in docs)]
    return sorted(common, key=lambda o: o != "baseline")


def markdown_across_seeds(docs: list[Mapping[str, Any]]) -> str:
    """:func:`across_seeds` as a Markdown table: each figure's means seed by seed and the paired tests' p against
    the baseline, then the verdict against the baseline and against every control every seed holds."""
    subject = docs[0]["subject"]
    others = _others(docs)
    if not others:
        raise ConfigError("findings: the seeds share no model to compare with")
    verdicts = {o: {r["key"]: r for r in across_seeds(docs, o)} for o in others}
    first = others[0]
    lines = [
        f"| figure | {subject} (seed by seed) | {first} | p (each seed) | "
        + " | ".join(f"{subject} vs {o}" for o in others)
        + " |",
        "|---|---|---|---|" + "---|" * len(others),
    ]
    for key, row in verdicts[first].items():
        cells = [verdicts[o][key]["verdict"] if key in verdicts[o] else "–" for o in others]
        lines.append(
            f"| {row['label']} | {_seeds(row[subject])} | {_seeds(row[first])} "
            f"| {_seeds(row['p'], '{:.2g}')} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


#: The findings that bear on the reference paper: figure key, what it says of the subject (``{more}``: "more" or
#: "less"), and the direction the paper's account predicts (+1: more, -1: less).
PAPER_CLAIMS = (
    ("loc.grad_cam_last.inside", "its last stage's Grad-CAM puts {more} of its energy on the flower", +1),
    (
        "loc.grad_cam_finest.inside",
        "its Grad-CAM at the stage of matched resolution puts {more} energy on the flower",
        +1,
    ),
    ("loc.integrated_gradients.inside", "its integrated gradients put {more} energy on the flower", +1),
    ("loc.guided_backprop.inside", "its guided backprop puts {more} energy on the flower", +1),
    ("cues.sigma=2.follows_form", "its decisions on hybrids follow the coarse image's form {more} often", +1),
    ("spectrum.gradient_high", "its class gradient carries {more} power above half the Nyquist frequency", -1),
    ("renders.class_high", "its class renders carry {more} power above half the Nyquist frequency", -1),
)


def paper_claims(docs: list[Mapping[str, Any]]) -> list[str]:
    """One sentence per finding of :data:`PAPER_CLAIMS` the seeds hold: the verdict against the baseline, whether
    it supports or contradicts the paper's account, and the verdict against every control."""
    others = _others(docs)
    if "baseline" not in others:
        return []
    verdicts = {o: {r["key"]: r["verdict"] for r in across_seeds(docs, o)} for o in others}
    subject = docs[0]["subject"]
    out = []
    for key, meaning, expected in PAPER_CLAIMS:
        if key not in verdicts["baseline"]:
            continue
        v = verdicts["baseline"][key]
        controls = [
            f"against the {o.replace('_', ' ')}: {verdicts[o].get(key, '–')}" for o in others if o != "baseline"
        ]
        tail = f" ({'; '.join(controls)})" if controls else ""
        if v in ("higher", "lower"):
            what = meaning.format(more="more" if v == "higher" else "less")
            agrees = (v == "higher") == (expected > 0)
            out.append(
                f"On every seed, {subject}: {what} than the baseline (p < {ALPHA} on each); this "
                f"{'supports' if agrees else 'contradicts'} the paper{tail}."
            )
        else:
            what = meaning.format(more="more" if expected > 0 else "less")
            out.append(f"Whether {subject}: {what} than the baseline is not settled ({v}){tail}.")
    return out


def cka_markdown(docs: list[Mapping[str, Any]]) -> list[str]:
    """Linear CKA with the baseline: each model's stage against the baseline's stage of the same depth, seed by
    seed, and, for each of the subject's stages, the baseline stage it resembles most (mean over seeds); empty
    where the seeds hold no CKA with the baseline."""
    others = [
        o for o in docs[0]["models"] if o != "baseline" and all(f"baseline|{o}" in d.get("cka", {}) for d in docs)
    ]
    if not others:
        return []
    stages = list(docs[0]["cka"][f"baseline|{others[0]}"])
    lines = [
        "| stage (same depth) | " + " | ".join(f"{o} vs baseline" for o in others) + " |",
        "|---|" + "---|" * len(others),
    ]
    for st in stages:
        cells = [_seeds([d["cka"][f"baseline|{o}"][st].get(st, float("nan")) for d in docs]) for o in others]
        lines.append(f"| {st} | " + " | ".join(cells) + " |")
    md = ["Linear CKA between stages (1 = the same representation up to rotation and scale), seed by seed:", ""]
    md += [*lines, ""]
    subject = docs[0]["subject"]
    if subject in others:
        md += _cka_matches(docs, subject, stages)
    diag = {
        o: sum(d["cka"][f"baseline|{o}"][st][st] for d in docs for st in stages) / (len(docs) * len(stages))
        for o in others
    }
    md += [
        "Mean same-depth CKA with the baseline: "
        + ", ".join(f"{o} {v:.2f}" for o, v in sorted(diag.items(), key=lambda kv: -kv[1]))
        + ".",
        "",
    ]
    return md


def _side(doc: Mapping[str, Any], model: str, stage: str) -> str:
    """`` (32×32)``: a stage's map side where the dissection recorded it, else nothing."""
    side = doc["models"].get(model, {}).get("detectors", {}).get(stage, {}).get("side")
    return f" ({side}×{side})" if side else ""


def _cka_matches(docs: list[Mapping[str, Any]], subject: str, stages: list[str]) -> list[str]:
    """For each of the subject's stages, the baseline stage it resembles most, and the CKA at matched map size."""
    table = [d["cka"][f"baseline|{subject}"] for d in docs]
    best = []
    for st in stages:
        means = {b: sum(t[b][st] for t in table) / len(table) for b in table[0]}
        b = max(means, key=means.__getitem__)
        best.append(f"{st}{_side(docs[0], subject, st)} → {b}{_side(docs[0], 'baseline', b)} ({means[b]:.2f})")
    md = [f"The baseline stage each {subject} stage resembles most (mean over seeds): {'; '.join(best)}.", ""]
    models = docs[0]["models"]
    if not all("detectors" in models.get(n, {}) for n in (subject, "baseline")):
        return md
    pairs = matched_stages(models[subject]["detectors"], models["baseline"]["detectors"])
    cells = [
        f"{side}×{side} {_seeds([t[sb][sa] for t in table])}"
        for side, sa, sb in pairs
        if all(sa in t.get(sb, {}) for t in table)  # CKA of other layers than the dissected stages: none matched
    ]
    if cells:
        md += [
            f"CKA at matched map size ({subject} stage against the baseline's of the same side): {'; '.join(cells)}.",
            "",
        ]
    return md


#: What a pyramid-level swap records per image: the decision took the first flower's form, the second's pattern.
SWAP_FIGURES = ("follows_form", "follows_pattern")


def swap_shares(swaps: Mapping[str, Mapping[str, list[bool]]]) -> dict[str, dict[str, float]]:
    """Per split (``coarse_levels=k``) of one run's pyramid-level swaps: the share of decisions that follow the
    first flower's form and the second's pattern."""
    return {key: {f: sum(r[f]) / len(r[f]) for f in SWAP_FIGURES} for key, r in swaps.items()}


def swaps_markdown(docs: list[Mapping[str, Any]]) -> list[str]:
    """The subject's pyramid-level swaps (the coarsest ``k`` levels from one flower, the finer ones from another):
    the share of decisions that take the first flower's form and the second's pattern, seed by seed."""
    subject = docs[0]["subject"]
    swaps = [d["models"].get(subject, {}).get("pyramid_swaps") for d in docs]
    if not all(swaps):
        return []
    md = [
        f"{subject}'s pyramid levels swapped between two flowers that differ in form and pattern (the coarsest k "
        "levels from the first, the finer ones from the second), seed by seed:",
        "",
        "| coarse levels from the first flower | follows the first's form | follows the second's pattern |",
        "|---|---|---|",
    ]
    shares = [swap_shares(s) for s in swaps]
    for key in shares[0]:
        form, pattern = ([sh[key][f] for sh in shares] for f in SWAP_FIGURES)
        md.append(f"| {key.split('=')[-1]} | {_seeds(form)} | {_seeds(pattern)} |")
    return [*md, ""]


def detectors_markdown(docs: list[Mapping[str, Any]], other: str = "baseline") -> list[str]:
    """Dissection at resolution-matched stages: the subject's and ``other``'s part detectors and mean best IoU
    against the chance of shuffled masks, seed by seed."""
    subject = docs[0]["subject"]
    if not all("detectors" in d["models"].get(n, {}) for d in docs for n in (subject, other)):
        return []
    per_seed = [detector_rows(d["models"], [subject, other]) for d in docs]
    md = [
        f"Dissection at stages of matched map size ({subject} against {other}): units whose top-activation mask "
        "overlaps a part's mask (IoU over the threshold), and the mean best IoU against its chance with shuffled "
        "masks, seed by seed:",
        "",
        "| map side | model (stage) | detectors: background / petals / centre | mean best IoU | shuffled masks |",
        "|---|---|---|---|---|",
    ]
    for i, row in enumerate(per_seed[0]):
        for name in (subject, other):
            recs = [rows[i][name] for rows in per_seed if i < len(rows)]
            counts = " · ".join("/".join(str(v) for v in r["detectors"].values()) for r in recs)
            md.append(
                f"| {row['side']}×{row['side']} | {name} ({row[name]['stage']}) | {counts} | "
                f"{_seeds([r['mean_best_iou'] for r in recs], '{:.3f}')} | "
                f"{_seeds([r['mean_best_iou_shuffled'] for r in recs], '{:.3f}')} |"
            )
    return [*md, ""]


def markdown_section(per_dataset: Mapping[str, list[Mapping[str, Any]]]) -> list[str]:
    """The results page's "What the visualizations found": per dataset, the across-seeds table and the claims."""
    md = [
        "## What the visualizations found",
        "",
        "Computed by each run's `findings` stage (`python -m topdown.findings`) on the same test images for every "
        "model, each figure per image and compared by a paired test (McNemar for outcomes, Wilcoxon signed-rank for "
        "shares). The rule is the robustness verdicts' rule: *higher* or *lower* only where every seed agrees and "
        f"every seed's paired test is below {ALPHA}; *in sign only* where the seeds agree but a test does not back "
        "it; else *mixed*. Each figure is stated against the baseline and against each control the runs hold.",
        "",
    ]
    for dataset, docs in per_dataset.items():
        if not docs:
            continue
        models = ", ".join(docs[0]["models"])
        md += [f"### {dataset}: {len(docs)} seed(s), {docs[0]['images']} test images each ({models})", ""]
        md += [markdown_across_seeds(docs), ""]
        if claims := paper_claims(docs):
            md += ["Against the reference paper (computed):", "", *(f"- {c}" for c in claims), ""]
        md += [*cka_markdown(docs), *swaps_markdown(docs), *detectors_markdown(docs)]
    return md


def main(argv: list[str] | None = None) -> None:
    """``python -m topdown.findings.report <findings.json> ...`` (one a seed): the across-seeds table."""

    def run(paths: list[str]) -> None:
        if not paths:
            raise ConfigError("usage: python -m topdown.findings.report <findings.json> ...")
        print(markdown_across_seeds([read_json(p) for p in paths]))

    run_command(run, argv)


if __name__ == "__main__":
    main()
