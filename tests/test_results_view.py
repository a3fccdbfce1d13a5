"""The typed views of results.json and vis.json: every field of a current document reads, an older document
(from before AutoAttack, the controls and first-broken-by) reads with ``None`` where it lacks a field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from topdown.results_view import Results, VisResults

GOLDEN = Path(__file__).parent / "golden" / "suite_small.json"
EPS = 2 / 255


def _current() -> dict:
    """The golden suite's results with what a current run adds: AutoAttack at 2/255, first-broken-by, a control."""
    doc = json.loads(GOLDEN.read_text())["results"]
    doc["created"] = "2026-01-01T00:00:00+00:00"
    for m in doc["models"].values():
        w = m["worst_case"]["linf"]
        w["first_broken_by"] = [{"clean": 14}, {"clean": 14, "linf_pgd": 3, f"autoattack:linf:{EPS:.6g}:apgd-ce": 1}]
        w["first_broken_by_image"] = [["clean"] * 14 + [None] * 10, ["clean"] * 14 + ["linf_pgd"] * 3 + [None] * 7]
        m["autoattack"] = {
            f"linf:{EPS:.6g}": {
                **{"norm": "linf", "eps": EPS, "n": 12, "pool": list(range(12)), "extra_broken": 1},
                **{"accuracy_without": 0.5, "accuracy_with": 5 / 12, "version": "standard"},
                "attacks": {"apgd-ce": {"n_broken": 1, "attacked": [0, 3, 5]}},
            }
        }
        m["sanity"]["autoattack_adds_little"] = {"passed": True, "value": 1, "threshold": 1, "direction": "<="}
    doc["models"]["blur_control"] = copy.deepcopy(doc["models"]["baseline"])
    return doc


def test_a_current_document_reads_every_field() -> None:
    doc = _current()
    res = Results(doc)
    assert res.schema_version == 1 and res.created.startswith("2026") and res.reference_model == "baseline"
    assert list(res.models) == ["baseline", "topdown", "blur_control"]
    assert res.pair() == ("baseline", "topdown") and res.controls() == ["blur_control"]
    assert res.has("baseline", "blur_control") and not res.has("accuracy_control")
    assert res.epsilons("linf") == doc["suite"]["attacks"]["linf_epsilons"]
    assert res.perturbation_levels == doc["suite"]["perturbations"]["levels"]
    assert res.sanity_tolerance == doc["suite"]["sanity"]["tolerance"]
    assert res.classes == doc["data"]["description"]["classes"]
    assert res.subset_size == doc["data"]["subset_size"] and res.autoattack_budgets == []
    doc["suite"]["autoattack"] = {"budgets": [{"norm": "linf", "eps": EPS}]}
    assert res.autoattack_budgets == [("linf", EPS)]

    raw = doc["models"]["topdown"]
    m = res.models["topdown"]
    assert m.name == "topdown" and m.is_topdown and not m.flagged and m.failed_checks == []
    assert m.architecture == raw["architecture"]
    assert m.clean_top1 == m.clean.top1 == raw["clean"]["top1"]
    for key in ("top5", "macro_acc", "confidence", "ece", "nll", "n"):
        assert getattr(m.clean, key) == m.clean.get(key) == raw["clean"][key]
    assert m.clean.per_class_acc == raw["clean"]["per_class_acc"]
    assert (m.subset.n, m.subset.accuracy) == (raw["subset"]["n"], raw["subset"]["accuracy"])

    fmn = m.attack("fmn")
    assert (
        fmn.kind == "minimal" and fmn.norm == "linf" and fmn.median_distance == raw["attacks"]["fmn"]["median_distance"]
    )
    assert fmn.epsilons == raw["attacks"]["fmn"]["epsilons"] and fmn.accuracy == raw["attacks"]["fmn"]["accuracy"]
    assert m.attack("fgsm").distances is None and m.attack("fgsm").median_distance is None
    assert m.decision.method == raw["decision"]["method"] and m.decision.n == raw["decision"]["n"]

    w = m.worst_case("linf")
    assert w.epsilons == raw["worst_case"]["linf"]["epsilons"] and w.accuracy_at(1) == w.accuracy[1]
    assert w.accuracy_at_eps(w.epsilons[1]) == m.worst_accuracy("linf", 1) == w.accuracy[1]
    assert w.accuracy_at_eps(0.5) is None and m.worst_accuracy("linf", 9) is None
    assert w.first_broken_by[1]["linf_pgd"] == 3 and len(w.first_broken_by_image[1]) == 24
    assert set(m.worst_cases) == {"linf", "l2"}

    aa = m.autoattack("linf", EPS)
    assert aa.raw is m.autoattacks[f"linf:{EPS:.6g}"].raw is raw["autoattack"][f"linf:{EPS:.6g}"]
    assert (aa.n, aa.extra_broken, aa.version, aa.accuracy_without) == (12, 1, "standard", 0.5)
    assert (
        aa.accuracy_with == 5 / 12
        and aa.attacks["apgd-ce"].n_broken == 1
        and aa.attacks["apgd-ce"].attacked == [0, 3, 5]
    )
    assert m.autoattack("linf", 8 / 255) is None and m.autoattack("l2", EPS) is None

    p = m.perturbation("gaussian_noise")
    raw_p = raw["perturbations"]["gaussian_noise"]
    assert m.perturbation_auc("gaussian_noise") == p.auc == raw_p["auc"]
    for key in ("levels", "accuracy_per_level", "mean_l2_per_level", "l2_grid", "accuracy_vs_l2", "median_min_l2"):
        assert getattr(p, key) == raw_p[key]

    s = m.scale("noise")
    raw_s = raw["scales"]["noise"]
    assert s.strength == "sigma" and s.strengths == s.sigmas == raw_s["sigmas"] and s.epsilons is None
    assert (s.mode, s.levels, s.factors, s.accuracy) == (
        raw_s["mode"],
        raw_s["levels"],
        raw_s["factors"],
        raw_s["accuracy"],
    )
    assert (s.most_harmful_level, s.most_harmful_factor) == (raw_s["most_harmful_level"], raw_s["most_harmful_factor"])
    assert m.scale("pgd").strengths == raw["scales"]["pgd"]["epsilons"]

    c = m.corruptions
    assert (c.mce, c.relative_mce, c.mean_accuracy) == tuple(
        raw["corruptions"][k] for k in ("mce", "relative_mce", "mean_accuracy")
    )
    assert c.ce == raw["corruptions"]["ce"]
    name, corr = next(iter(c.per_corruption.items()))
    assert corr.severities == raw["corruptions"]["per_corruption"][name]["severities"]
    assert corr.accuracy == raw["corruptions"]["per_corruption"][name]["accuracy"]

    check = m.check("autoattack_adds_little")
    assert (check.passed, check.value, check.threshold, check.direction) == (True, 1, 1, "<=")
    assert list(m.sanity) == list(raw["sanity"])
    assert m.arch == raw["checkpoint"].get("arch", {}) and m.epoch == raw["checkpoint"].get("epoch")


def test_an_older_document_reads_none_where_it_lacks_a_field() -> None:
    """A schema-1 document from before AutoAttack, the controls and first-broken-by (and some earlier fields)."""
    doc = json.loads(GOLDEN.read_text())["results"]
    for m in doc["models"].values():
        m.pop("decision")
        for w in m["worst_case"].values():
            w.pop("first_broken_by", None)
            w.pop("first_broken_by_image", None)
        del m["clean"]["confidence"]
        m["sanity"].pop("autoattack_adds_little", None)  # the check came with AutoAttack
    del doc["reference_model"]
    res = Results(doc)
    m = res.models["baseline"]
    assert res.reference_model is None and res.controls() == [] and res.pair() == ("baseline", "topdown")
    assert m.autoattacks == {} and m.autoattack("linf", EPS) is None and m.check("autoattack_adds_little") is None
    assert m.decision is None and m.clean.confidence is None
    assert m.worst_case("linf").first_broken_by is None and m.worst_case("linf").first_broken_by_image is None
    assert res.model("blur_control") is None

    # a near-empty document: sections read empty, fields None, nothing raises
    bare = Results({"models": {"baseline": {"is_topdown": False}}})
    b = bare.models["baseline"]
    assert bare.pair() is None and bare.epsilons("linf") == [] and bare.perturbation_levels == {}
    assert bare.sanity_tolerance is None and bare.classes == [] and bare.created is None
    assert b.clean.top1 is None and not b.clean and b.clean.per_class_acc == {} and b.subset.n is None
    assert b.attacks == {} and b.worst_case("linf") is None and b.worst_cases == {} and b.scale("noise") is None
    assert b.perturbation_auc("gaussian_noise") is None and b.perturbation("gaussian_noise") is None
    assert b.corruptions.mce is None and b.corruptions.per_corruption == {} and b.sanity == {}
    assert b.arch == {} and b.epoch is None and b.failed_checks == []
    assert Results({}).models == {} and not Results({})


def test_a_view_reads_the_document_without_copying_or_changing_it() -> None:
    doc = _current()
    before = json.dumps(doc, sort_keys=True)
    res = Results(doc)
    m = res.models["topdown"]
    assert (
        m.raw is doc["models"]["topdown"] and m.worst_case("linf").raw is doc["models"]["topdown"]["worst_case"]["linf"]
    )
    _ = [m.clean.top1, m.autoattack("linf", EPS), m.scales, m.corruptions.per_corruption, res.pair()]
    assert json.dumps(doc, sort_keys=True) == before


def test_a_sweep_or_budget_the_suite_lacks_reads_empty() -> None:
    """A suite that swept only L2 has no L∞ epsilons; an AutoAttack budget without its norm or eps is left out."""
    res = Results({"suite": {"attacks": {"l2_epsilons": [0.0, 0.5]}, "autoattack": {"budgets": [{"eps": 0.5}]}}})
    assert res.epsilons("linf") == [] and res.epsilons("l2") == [0.0, 0.5] and res.autoattack_budgets == []
    res = Results({"suite": {"attacks": {"linf_epsilons": None}, "autoattack": {"budgets": [{"norm": "l2"}]}}})
    assert res.epsilons("linf") == [] and res.autoattack_budgets == []


def test_the_closing_table_reads_both_documents_through_the_views(tmp_path: Path) -> None:
    from topdown.report import metrics as M
    from topdown.report.metrics import headline_eps
    from topdown.report.summary import job_summary

    doc = json.loads(GOLDEN.read_text())["results"]
    assert headline_eps(Results(doc)) == headline_eps(doc) == EPS
    vis = {
        "models": {
            "baseline": {"methods": {"classes": {"quality": {"a": {"passed": True}, "b": {"passed": False}}}}},
            "topdown": {"methods": {"classes": {"quality": {"a": {"passed": None}}}}},
            "blur_control": {"methods": {}},
        }
    }
    for folder, d in (("eval/results.json", doc), ("vis/vis.json", vis)):
        (tmp_path / folder).parent.mkdir()
        (tmp_path / folder).write_text(json.dumps(d))
    rows = {r.label: r for r in job_summary(tmp_path)}
    base = doc["models"]["baseline"]
    top1 = M.CLEAN[0]
    assert rows[top1.label].values["baseline"] == f"{100 * base['clean']['top1']:.1f}"
    assert str(base["clean"]["n"]) in rows[top1.label].note
    weakest = min(base["clean"]["per_class_acc"], key=base["clean"]["per_class_acc"].get)
    assert rows["weakest class"].values["baseline"].endswith(f"({weakest})")
    worst = Results(doc).models["topdown"].worst_case("linf").accuracy_at_eps(EPS)
    (label,) = [k for k in rows if k.startswith("worst-case L∞ accuracy at ε = 2/255")]
    assert rows[label].values["topdown"] == f"{100 * worst:.1f}"
    assert str(doc["data"]["subset_size"]) in rows[label].note
    assert doc["reference_model"] in rows["mCE (% of baseline)"].note
    n_checks = sum(c.get("passed") is not None for c in base["sanity"].values())
    assert rows["sanity checks passed"].values["baseline"] == f"{n_checks}/{n_checks}"
    assert rows["quality figures"].values == {"baseline": "1/2", "topdown": "0/1", "blur_control": "–"}


def test_a_corruption_from_the_earliest_documents_reads_its_accuracy_per_severity() -> None:
    res = Results({"models": {"b": {"corruptions": {"per_corruption": {"fog": {"accuracy_per_severity": [0.5]}}}}}})
    assert res.models["b"].corruptions.per_corruption["fog"].accuracy == [0.5]


def test_vis_results_read_methods_and_quality_figures() -> None:
    doc = {
        "models": {
            "baseline": {
                "methods": {
                    "classes": {
                        **{"description": "every class", "layer": None, "seconds": 1.5, "images": ["b/c.png"]},
                        "quality": {
                            "class_confidence": {"value": 0.9, "threshold": 0.8, "direction": ">=", "passed": True}
                        },
                        "details": {"values": [1]},
                    },
                    "naive": {"quality": {}},
                }
            },
            "topdown": {"methods": {"classes": {"quality": {"class_confidence": {"value": 0.1, "passed": False}}}}},
        }
    }
    vis = VisResults(doc)
    entry = vis.models["baseline"].methods["classes"]
    assert (entry.description, entry.layer, entry.seconds, entry.images) == ("every class", None, 1.5, ["b/c.png"])
    assert entry.details == {"values": [1]} and vis.models["baseline"].methods["naive"].images == []
    q = entry.quality["class_confidence"]
    assert (q.value, q.threshold, q.direction, q.passed) == (0.9, 0.8, ">=", True)
    figures = vis.quality_figures()
    assert [k for k, _ in figures] == ["baseline/classes/class_confidence", "topdown/classes/class_confidence"]
    assert [f.passed for _, f in vis.quality_figures("topdown")] == [False]
    assert VisResults({}).models == {} and VisResults({}).quality_figures() == []

    from topdown.vis.runner import quality_figures, summary

    assert [(k, f["passed"]) for k, f in quality_figures(doc)] == [(k, f.passed) for k, f in figures]
    assert summary(doc) == {"figures": 2, "passed": 1, "failed": ["topdown/classes/class_confidence"]}
