"""The report: conclusions follow the numbers, every section is there, and it renders in a real browser."""

from __future__ import annotations

import copy
import html as html_lib
import json
import re
from pathlib import Path

import pytest
from prose import about, mentions, numbers, says, sentences

from topdown.report import conclusions, model_pair
from topdown.report.browser import check_page
from topdown.report.conclusions import comparisons, control_conclusions, paired_p_value, survival


def _results(
    base_acc: float, td_acc: float, base_noise: list[float], td_noise: list[float], td_mce: float = 0.9
) -> dict:
    """A minimal results.json with what the conclusions read."""

    def model(topdown: bool, acc: float, noise: list[float], mce: float | None) -> dict:
        return {
            "is_topdown": topdown,
            "clean": {"top1": acc},
            "perturbations": {"gaussian_noise": {"accuracy_per_level": noise, "auc": sum(noise) / len(noise)}},
            "worst_case": {
                "linf": {
                    "epsilons": [0.0, 1 / 255, 2 / 255, 4 / 255],
                    "accuracy": [acc, acc - 0.2, acc - 0.3, acc - 0.4],
                }
            },
            "corruptions": {"mce": mce},
            "scales": {"noise": {"most_harmful_factor": 2}} if topdown else {},
            "flagged": False,
        }

    return {
        "suite": {"perturbations": {"levels": {"gaussian_noise": [0.0, 0.04, 0.08, 0.16]}}},
        "models": {
            "baseline": model(False, base_acc, base_noise, 1.0),
            "topdown": model(True, td_acc, td_noise, td_mce),
        },
    }


#: The verdicts of one comparison, a tie first (a tie's sentence may still say "more" or "higher").
CLEAN = ("not consistently", "higher", "lower")
KEPT = ("neither", "more", "less")
DROP = ("not consistently", "smaller", "larger")
AUC = ("no consistent", "top-down", "baseline")
MCE = ("about as many", "fewer", "more")
ROBUST = ("neither", "higher", "lower")


def _lines(runs: list[dict]) -> dict[str, str]:
    """Each conclusion by its topic: clean accuracy, noise at the middle level, the curves' areas, the L∞
    worst case, the corruptions, the per-scale ablation, the sanity checks."""
    lines = conclusions(runs)
    return {
        "clean": about(lines, "clean", "top-1"),
        "noise": about(lines, "noise", "σ"),
        "auc": about(lines, "curve"),
        "linf": about(lines, "L∞"),
        "mce": about(lines, "corruption"),
        "sanity": about(lines, "sanity"),
        **({"scale": about(lines, "pyramid")} if any(mentions(c, "pyramid") for c in lines) else {}),
    }


def _noise(line: str) -> tuple[str, str]:
    """A noise conclusion's two verdicts: on the accuracy kept, and on the drop from clean accuracy."""
    kept, drop = line.split(";")
    return says(kept, *KEPT), says(drop, *DROP)


def test_conclusions_are_computed_from_the_numbers() -> None:
    r = _results(0.80, 0.83, [0.80, 0.70, 0.50, 0.30], [0.83, 0.80, 0.70, 0.40])
    c = _lines([r])
    # 3 points of clean accuracy; 20 points more kept under noise at σ = 0.08, a drop 17 points smaller; 1 seed
    assert says(c["clean"], *CLEAN) == "higher" and numbers(c["clean"]) == [3.0, 1]
    assert _noise(c["noise"]) == ("more", "smaller") and numbers(c["noise"]) == [20.0, 0.08, 1, 17.0, 1]
    assert says(c["mce"], *MCE) == "fewer" and numbers(c["mce"]) == [90.0]
    assert "1/2" in c["scale"]  # the most harmful pyramid level: factor 2
    assert says(c["sanity"], "failed", "passed") == "passed" and numbers(c["sanity"]) == []


def test_conclusions_flip_when_the_models_swap_results() -> None:
    r = _results(0.80, 0.83, [0.80, 0.70, 0.50, 0.30], [0.83, 0.80, 0.70, 0.40])
    swapped = copy.deepcopy(r)
    m = swapped["models"]
    m["baseline"], m["topdown"] = m["topdown"], m["baseline"]
    m["baseline"]["is_topdown"], m["topdown"]["is_topdown"] = False, True
    before, after = _lines([r]), _lines([swapped])
    assert says(before["clean"], *CLEAN) == "higher" and says(after["clean"], *CLEAN) == "lower"
    assert numbers(before["clean"]) == numbers(after["clean"]) == [3.0, 1]
    assert _noise(before["noise"]) == ("more", "smaller") and _noise(after["noise"]) == ("less", "larger")
    assert numbers(before["noise"]) == numbers(after["noise"]) == [20.0, 0.08, 1, 17.0, 1]
    assert model_pair(swapped) == ("baseline", "topdown")


def test_claims_need_every_seed_to_agree() -> None:
    seeds = [
        _results(0.80, 0.83, [0.8, 0.7, 0.5, 0.3], [0.83, 0.8, 0.7, 0.4]),
        _results(0.80, 0.78, [0.8, 0.7, 0.5, 0.3], [0.78, 0.7, 0.45, 0.3]),
        _results(0.80, 0.82, [0.8, 0.7, 0.5, 0.3], [0.82, 0.75, 0.6, 0.35]),
    ]
    c = _lines(seeds)
    # clean: +3, -2, +2 points: a mean of +1.0 ± 2.6 over 3 seeds, and no claim
    assert says(c["clean"], *CLEAN) == "not consistently" and numbers(c["clean"]) == [1.0, 2.6, 3]
    assert _noise(c["noise"]) == ("neither", "not consistently")
    assert numbers(c["noise"]) == [0.08, 8.3, 12.6, 3, 7.3, 10.0, 3]
    assert says(c["linf"], *ROBUST) == "neither"
    agree = [
        _results(0.80, 0.83, [0.8, 0.7, 0.5, 0.3], [0.83, 0.8, 0.7, 0.4]),
        _results(0.81, 0.83, [0.81, 0.7, 0.5, 0.3], [0.83, 0.8, 0.72, 0.4]),
    ]
    # +3 and +2 points: a claim, with the mean, the number of seeds and the spread
    c = _lines(agree)
    assert says(c["clean"], *CLEAN) == "higher" and numbers(c["clean"]) == [2.5, 2, 0.7]


def test_differences_of_an_image_or_two_are_ties() -> None:
    # 0.3 points of accuracy, 0.001 of area under the curve, 1.6% more corruption errors: no winner
    r = _results(0.800, 0.803, [0.800, 0.700, 0.500, 0.300], [0.803, 0.703, 0.503, 0.303], td_mce=1.016)
    c = _lines([r])
    assert says(c["clean"], *CLEAN) == "not consistently" and numbers(c["clean"]) == [0.3]
    assert _noise(c["noise"]) == ("neither", "not consistently") and numbers(c["noise"]) == [0.08, 0.3, 0.0]
    assert says(c["auc"], *AUC) == "no consistent" and mentions(c["auc"], "gaussian noise")
    assert says(c["mce"], *MCE) == "about as many" and numbers(c["mce"]) == [101.6]
    # one image more than the band is a claim again
    r = _results(0.800, 0.810, [0.800, 0.700, 0.500, 0.300], [0.810, 0.710, 0.510, 0.310], td_mce=1.03)
    c = _lines([r])
    assert says(c["clean"], *CLEAN) == "higher" and numbers(c["clean"]) == [1.0, 1]
    assert says(c["mce"], *MCE) == "more" and numbers(c["mce"]) == [103.0]
    # each sentence names its winner, whichever model it is
    assert says(c["auc"], *AUC) == "top-down" and not mentions(c["auc"], "baseline")
    assert mentions(c["auc"], "gaussian noise") and numbers(c["auc"]) == [1]  # on 1 seed
    swapped = _results(0.810, 0.800, [0.810, 0.710, 0.510, 0.310], [0.800, 0.700, 0.500, 0.300])
    c = _lines([swapped])
    assert says(c["auc"], *AUC) == "baseline" and not mentions(c["auc"], "top-down")
    assert mentions(c["auc"], "gaussian noise") and numbers(c["auc"]) == [1]


def test_a_flagged_model_is_reported_not_hidden() -> None:
    r = _results(0.8, 0.8, [0.8] * 4, [0.8] * 4)
    r["models"]["topdown"].update(flagged=True, failed_checks=["input_gradients_nonzero"])
    assert any("FAILED" in c and "input_gradients_nonzero" in c for c in conclusions([r]))


def test_a_check_failed_on_some_seeds_says_on_how_many() -> None:
    runs = [_results(0.8, 0.8, [0.8] * 4, [0.8] * 4) for _ in range(2)]
    for r, failed in zip(runs, (["more_steps_do_not_help"], ["more_steps_do_not_help", "autoattack_adds_little"])):
        r["models"]["baseline"].update(flagged=True, failed_checks=failed)
    line = _lines(runs)["sanity"]
    assert says(line, "failed", "passed") == "failed"
    assert mentions(line, "baseline") and not mentions(line, "topdown")
    # each failed check with on how many of the baseline's seeds it failed
    steps, aa = line.split("more_steps_do_not_help")[1].split("autoattack_adds_little")
    assert numbers(steps) == [2, 2] and numbers(aa) == [1, 2]


EPS = 2 / 255


def _controlled(
    worst: dict[str, float],
    with_aa: dict[str, float] | None = None,
    adds_little: bool = True,
    failing: tuple[str, ...] = ("baseline",),
) -> dict:
    """A run with both controls; ``worst``: each model's worst-case L∞ accuracy at 2/255 over every attack but
    AutoAttack; ``with_aa``: AutoAttack ran there on 100 images of 100 and left each model this much; without
    ``adds_little``, its sanity check fails for the ``failing`` models."""
    r = _results(0.80, 0.78, [0.8] * 4, [0.8] * 4)
    r["models"]["blur_control"] = copy.deepcopy(r["models"]["baseline"])
    r["models"]["accuracy_control"] = copy.deepcopy(r["models"]["baseline"])
    for name, m in r["models"].items():
        w = m["worst_case"]["linf"]
        w["accuracy"][2] = worst[name]
        if with_aa is not None:
            aa = f"autoattack:linf:{EPS:.6g}:apgd-ce"
            only_aa = round((worst[name] - with_aa[name]) * 100)
            w["accuracy"][2] = with_aa[name]
            w.update(attacks=["linf_pgd", aa], first_broken_by=[{}, {}, {"linf_pgd": 40, aa: only_aa}, {}])
            m["subset"] = {"n": 100}
            m["autoattack"] = {
                f"linf:{EPS:.6g}": {
                    **{"norm": "linf", "eps": EPS, "n": 100, "extra_broken": only_aa, "version": "standard"},
                    **{"accuracy_without": worst[name], "accuracy_with": with_aa[name], "attacks": {}},
                }
            }
            m["sanity"] = {"autoattack_adds_little": {"passed": adds_little or name not in failing}}
    return r


#: How an advantage fares against AutoAttack or a control (one that contains another first).
SURVIVAL = ("does not survive", "survives in sign only", "survives", "mixed", "not tested")


def _part(line: str, what: str) -> str:
    """The sentence of a survival verdict on ``what`` (``AutoAttack``, ``blur control``, ...)."""
    (part,) = [s for s in sentences(line) if mentions(s, what) and any(mentions(s, v) for v in SURVIVAL)]
    return part


def _head(line: str) -> str:
    """The survival verdict's first sentence: top-down's worst-case advantage over the baseline."""
    return sentences(line)[0]


def _verdict(runs: list[dict], what: str) -> str:
    """The verdict on ``what`` (``AutoAttack``, ``blur control``, ...): one of :data:`SURVIVAL`."""
    (line,) = survival(runs)
    return says(_part(line, what), *SURVIVAL)


def test_a_verdict_claims_survival_only_where_every_seed_agrees() -> None:
    # top-down ahead of the baseline on every seed; of the blur control on every seed; of the accuracy control
    # on two of three
    seeds = [
        {"baseline": 0.30, "topdown": 0.40, "blur_control": 0.33, "accuracy_control": 0.35},
        {"baseline": 0.28, "topdown": 0.41, "blur_control": 0.34, "accuracy_control": 0.38},
        {"baseline": 0.31, "topdown": 0.39, "blur_control": 0.30, "accuracy_control": 0.41},
    ]
    runs = [_controlled(w) for w in seeds]
    (line,) = survival(runs)
    head = _head(line)  # at L∞ ε = 2/255: +10, +13 and +8 points
    assert "2/255" in head and says(head, "not ahead", "ahead") == "ahead" and numbers(head) == [10.3, 2.5, 3]
    assert _verdict(runs, "AutoAttack") == "not tested"
    assert _verdict(runs, "blur control") == "survives"
    assert _verdict(runs, "accuracy control") == "mixed"
    # worst case +5, +3, -2 points; clean accuracy 2 points below the accuracy control's on each seed
    assert numbers(_part(line, "accuracy control")) == [2.0, 3.6, 3, -2.0, 0.0]
    # the blur control as robust as top-down on every seed: the advantage does not survive it
    for w in seeds:
        w["blur_control"] = w["topdown"] - 0.002
    assert _verdict([_controlled(w) for w in seeds], "blur control") == "does not survive"
    # no advantage over the baseline on every seed: nothing to test
    seeds[0]["baseline"] = 0.45
    (line,) = survival([_controlled(w) for w in seeds])
    assert says(line, "not ahead", "ahead") == "not ahead" and numbers(line) == [5.3, 9.3, 3]
    assert not any(mentions(line, v) for v in SURVIVAL)


def test_a_verdict_on_autoattack_compares_the_worst_case_without_and_with_it() -> None:
    worst = {"baseline": 0.30, "topdown": 0.40, "blur_control": 0.30, "accuracy_control": 0.30}
    # AutoAttack breaks 1 more baseline image and 11 more top-down images: the 10-point lead is gone
    gone = {"baseline": 0.29, "topdown": 0.29, "blur_control": 0.30, "accuracy_control": 0.30}
    runs = [_controlled(worst, gone, adds_little=False) for _ in range(2)]
    (line,) = survival(runs)
    head = _head(line)  # the advantage measured without AutoAttack
    assert "2/255" in head and mentions(head, "without AutoAttack") and numbers(head) == [10.0, 0.0, 2]
    assert _verdict(runs, "AutoAttack") == "does not survive"
    aa = _part(line, "AutoAttack")
    # with it +0.0 ± 0.0 over 2 seeds; on its 100 images +10.0 ± 0.0 without it, +0.0 ± 0.0 with it; then its check
    assert numbers(aa)[:8] == [0.0, 0.0, 2, 100, 10.0, 0.0, 0.0, 0.0]
    # its sanity check failed for the baseline alone, on 2 of 2 seeds
    after = aa.split("failed", 1)[1]
    assert mentions(after, "baseline") and not mentions(after, "top-down") and numbers(after) == [2, 2]
    # failing for both nets: each is named
    (both,) = survival([_controlled(worst, gone, adds_little=False, failing=("baseline", "topdown"))])
    first, second = _part(both, "AutoAttack").split("failed")[1:]
    assert mentions(first, "baseline") and numbers(first) == [1, 1]
    assert mentions(second, "top-down") and numbers(second) == [1, 1]
    # it survives where it holds on every seed, and is mixed where it holds on one
    held = dict(gone, topdown=0.38)
    assert _verdict([_controlled(worst, held) for _ in range(2)], "AutoAttack") == "survives"
    assert _verdict([_controlled(worst, held), _controlled(worst, gone)], "AutoAttack") == "mixed"
    aa = _part(survival([_controlled(worst, held)])[0], "AutoAttack")
    assert says(aa, "failed", "passed") == "passed" and numbers(aa) == [9.0, 100, 10.0, 9.0]


def test_the_paired_test_is_exact_mcnemar_over_the_images_robust_for_one_model_only() -> None:
    # 10 images robust for top-down only, none for the reference only: p = 2 * 0.5**10
    ref, td = [False] * 10 + [True] * 5 + [False] * 5, [True] * 15 + [False] * 5
    assert paired_p_value(ref, td) == pytest.approx(2 * 0.5**10)
    assert paired_p_value(td, ref) == pytest.approx(2 * 0.5**10)  # two-sided
    assert paired_p_value(ref, ref) == 1.0  # no discordant image: no evidence either way
    with pytest.raises(ValueError, match="20 against 19 images"):
        paired_p_value(ref, td[:-1])


def _per_image(run: dict, robust: dict[str, int], n: int = 300) -> dict:
    """``run`` with per-image worst-case records at 2/255 on the same ``n`` images: the first ``robust[name]``
    images robust for each model."""
    for name, m in run["models"].items():
        m["subset"] = {"n": n, "indices": list(range(n))}
        w = m["worst_case"]["linf"]
        w["accuracy"][2] = robust[name] / n
        w["first_broken_by_image"] = [[None] * n for _ in w["accuracy"]]
        w["first_broken_by_image"][2] = [None] * robust[name] + ["linf_pgd"] * (n - robust[name])
    return run


def test_an_advantage_survives_only_where_the_paired_test_agrees_on_every_seed() -> None:
    worst = {"baseline": 0.30, "topdown": 0.40, "blur_control": 0.30, "accuracy_control": 0.38}
    # top-down 120 robust of 300; the baseline and blur control 90 (30 discordant images, p ~ 2e-9), the accuracy
    # control 114 (6 discordant images, p = 0.03) on one seed and 110 (10, p = 0.002) on the other
    close = {"baseline": 90, "topdown": 120, "blur_control": 90, "accuracy_control": 114}
    runs = [_per_image(_controlled(worst), close), _per_image(_controlled(worst), dict(close, accuracy_control=110))]
    (line,) = survival(runs)
    assert _verdict(runs, "blur control") == "survives"
    assert _verdict(runs, "accuracy control") == "survives"
    # +2.0 and +3.3 points, 2 below in clean accuracy; p = 0.031 and 0.002, below 0.05 on 2 of 2 seeds
    assert numbers(_part(line, "accuracy control")) == [2.7, 0.9, 2, -2.0, 0.0, 0.031, 0.002, 0.05, 2, 2]
    # 4 images of 300 ahead on one seed: ahead in sign on every seed, not beyond chance on that one
    runs[0] = _per_image(_controlled(worst), dict(close, accuracy_control=116))
    assert _verdict(runs, "accuracy control") == "survives in sign only"
    assert numbers(_part(survival(runs)[0], "accuracy control"))[-5:] == [0.12, 0.002, 0.05, 1, 2]
    # models attacked on other images: no paired test, and the verdict rests on the signs alone
    runs[0]["models"]["accuracy_control"]["subset"]["indices"] = list(range(1, 301))
    assert _verdict(runs, "accuracy control") == "survives"
    # p = 0.002 below 0.05 on 1 of 1 seed, not run on 1
    assert numbers(_part(survival(runs)[0], "accuracy control"))[-5:] == [0.002, 0.05, 1, 1, 1]
    runs[1]["models"]["accuracy_control"]["subset"]["indices"] = list(range(1, 301))
    assert _verdict(runs, "accuracy control") == "survives"
    # no paired test at all: the worst case and the clean accuracy gap, nothing more
    no_test = _part(survival(runs)[0], "accuracy control")
    assert numbers(no_test) == [2.3, 1.4, 2, -2.0, 0.0] and not mentions(no_test, "p")


def test_comparisons_take_their_pair_and_the_baseline_is_never_a_control() -> None:
    runs = [_controlled({"baseline": 0.30, "topdown": 0.40, "blur_control": 0.45, "accuracy_control": 0.30})]
    m = runs[0]["models"]
    runs[0]["models"] = {k: m[k] for k in ("blur_control", "accuracy_control", "baseline", "topdown")}
    assert model_pair(runs[0]) == ("baseline", "topdown")
    blur = comparisons(runs, ("blur_control", "topdown"))
    linf = about(blur, "L∞")
    assert says(linf, *ROBUST) == "lower" and numbers(linf) == [5.0, 1] and mentions(linf, "blur control")
    # against the blur control, only the mCE (relative to the baseline's errors) names the baseline
    assert not [c for c in blur if mentions(c, "baseline") and not mentions(c, "corruption")]
    assert list(control_conclusions(runs)) == ["blur_control", "accuracy_control"]
    c = _lines(runs)
    assert says(c["linf"], *ROBUST) == "higher" and numbers(c["linf"]) == [10.0, 1] and mentions(c["linf"], "baseline")
    assert says(c["sanity"], "failed", "passed") == "passed" and numbers(c["sanity"]) == [4]  # all 4 models


def test_the_report_shows_every_model_side_by_side(tmp_path: Path) -> None:
    from topdown.report import build_report

    worst = {"baseline": 0.30, "topdown": 0.40, "blur_control": 0.33, "accuracy_control": 0.35}
    res = _controlled(worst, dict(worst, topdown=0.39))
    res["data"] = {"description": {"classes": ["a", "b"]}}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "results.json").write_text(json.dumps(res))
    html = build_report(tmp_path).read_text()
    header = "<th>baseline</th><th>topdown</th><th>blur_control</th><th>accuracy_control</th>"
    assert f"<th>check</th>{header}" in html and f"<th>class</th>{header}" in html  # sanity, per-class accuracy
    # a section for each control, the survival verdicts, and the page's subtitle names both controls
    headings = re.findall(r"<h3>(.*?)</h3>", html)
    assert [c for c in ("blur control", "accuracy control") if any(mentions(h, c) for h in headings)] == [
        "blur control",
        "accuracy control",
    ]
    items = [html_lib.unescape(i) for i in re.findall(r"<li>(.*?)</li>", html)]
    (verdicts,) = [i for i in items if any(mentions(i, v) for v in SURVIVAL)]
    assert says(_part(verdicts, "accuracy control"), *SURVIVAL) == "survives"
    (subtitle,) = re.findall(r'<p class="lede">(.*?)</p>', html)
    assert mentions(subtitle, "blur control") and mentions(subtitle, "accuracy control")


def test_a_page_with_a_broken_image_and_a_script_error_is_caught(tmp_path: Path, browser: None) -> None:
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="missing.png" alt="gone"><script>undefinedFn()</script></body></html>')
    check = check_page(page)
    assert check.broken_images == ["gone"]
    assert any("undefinedFn" in e for e in check.console_errors)
    assert not check.ok


def test_small_numbers_keep_their_significant_figures() -> None:
    from topdown.report.html import fmt

    assert fmt(5e-4) == "0.0005" and fmt(0.00201) == "0.00201"  # a weight decay is not rounded to 0.001
    assert fmt(0.1) == "0.100" and fmt(0.0) == "0.000" and fmt(None) == "–" and fmt(float("nan")) == "–"


def test_a_model_trained_on_train_and_val_shows_no_validation_accuracy() -> None:
    from topdown.report.build import _cost_section

    def model(trainval: bool) -> dict:
        stage = {"val_acc": 0.997, "train_seconds": 120.0, "train_images_per_s": 50.0}
        return {"params": 1e6, "macs": 1e8, "stage": stage, "data": {"trainval": trainval}}

    assert "99.7%" in _cost_section({"baseline": model(False)})
    html = _cost_section({"baseline": model(True)})
    cells = re.findall(r"<td>(.*?)</td>", html)
    assert "99.7%" not in html and cells[0] == "baseline" and cells[-1] == "–"  # no final validation accuracy
    assert ">120<" in html and ">50.0<" in html  # training time and throughput from the checkpoint's clock


def test_a_quality_figure_shows_what_it_is_computed_from() -> None:
    from topdown.report.build import _quality_table
    from topdown.results_view import Check

    deletion = {
        "value": 0.07,
        "threshold": 0.0,
        "direction": ">",
        "passed": True,
        "detail": {"salient_drop": 0.37, "least_salient_drop": 0.30, "random_drop": 0.44, "per_image": [0.1, 0.2]},
    }
    html = _quality_table({"deletion_saliency": Check(deletion)})
    source = re.findall(r"<td>(.*?)</td>", html)[-1]  # what the figure is computed from
    assert numbers(source) == [0.37, 0.3, 0.44]
    assert all(mentions(source, w) for w in ("salient drop", "least salient drop", "random drop"))
    assert "per image" not in html  # lists stay in vis.json


def test_the_report_tables_are_the_metric_table(tmp_path: Path) -> None:
    """Every headline metric the run holds stands in the report under its label, each model's cell written by
    the metric itself; the clean and corruption tables take their columns from the same metrics, and the main
    job's closing table quotes the same labels with the same cells."""
    from html import escape

    from topdown.report import build_report
    from topdown.report import metrics as M
    from topdown.report.summary import job_summary
    from topdown.results_view import Results

    doc = json.loads((Path(__file__).parent / "golden" / "suite_small.json").read_text())["results"]
    for m in doc["models"].values():
        m["autoattack"] = {
            "linf:0.00784314": {
                **{"norm": "linf", "eps": 2 / 255, "n": 12, "extra_broken": 1, "version": "standard"},
                **{"accuracy_without": 0.5, "accuracy_with": 5 / 12, "attacks": {}},
            }
        }
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "results.json").write_text(json.dumps(doc))
    html = build_report(tmp_path).read_text()
    res = Results(doc)
    models = list(res.models.values())
    metrics = M.headline_metrics(res)
    keys = {m.key for m in metrics}
    assert {m.key for m in (*M.CLEAN, *M.MINIMAL)} <= keys
    assert {"worst_linf@2/255", "autoattack_with_linf@2/255", "auc_gaussian_noise", "scale_pgd@4"} <= keys
    for metric in metrics:
        cells = "".join(f"<td>{metric.cell(m)}</td>" for m in models)
        assert f"<tr><td>{escape(metric.label)}</td>{cells}</tr>" in html, metric.key
    assert "AutoAttack at L∞ ε = 2/255: robust accuracy with it, on its 12 images (%)" in html
    for name, m in res.models.items():  # the clean and corruption tables: a row per model, a column per metric
        clean = "".join(f"<td>{metric.cell(m)}</td>" for metric in M.CLEAN)
        corruption = "".join(f"<td>{metric.cell(m)}</td>" for metric in (M.MCE, M.CORRUPTION_ACCURACY))
        assert f"<tr><td>{name}</td>{clean}" in html and f"<tr><td>{name}</td>{corruption}</tr>" in html
    summary = {row.label: row for row in job_summary(tmp_path)}
    assert {M.CLEAN[0].label, M.MCE.label, M.headline_worst_case(res).label} <= set(summary)
    for label, row in summary.items():
        if any(label == m.label for m in metrics):
            cells = "".join(f"<td>{row.values[n]}</td>" for n in res.models)
            assert f"<tr><td>{escape(label)}</td>{cells}</tr>" in html


def test_the_report_shows_what_each_net_learned(tmp_path: Path) -> None:
    from topdown.report import build_report

    doc = {
        "subject": "topdown",
        "images": 4,
        "models": {
            "baseline": {},
            "topdown": {"pyramid_swaps": {"coarse_levels=1": {"follows_form": [True, False, False, False]}}},
        },
        "comparisons": {
            "baseline": {
                "f": {
                    "label": "follows form",
                    "kind": "outcome",
                    "topdown": 0.9,
                    "baseline": 0.4,
                    "difference": 0.5,
                    "p": 0.01,
                }
            }
        },
        "cka": {
            "baseline|topdown": {"layer1": {"layer1": 0.25, "layer2": 0.5}, "layer2": {"layer1": 0.75, "layer2": 1.0}}
        },
    }
    doc["models"]["topdown"]["pyramid_swaps"]["coarse_levels=1"]["follows_pattern"] = [True, True, True, False]
    (tmp_path / "findings").mkdir()
    (tmp_path / "findings" / "findings.json").write_text(json.dumps(doc))
    html = build_report(tmp_path).read_text()
    tables = {
        h: [
            [html_lib.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", t)
        ]
        for h, t in re.findall(r"<h3>(.*?)</h3>\s*(<table.*?</table>)", html, re.S)
    }
    (cka,) = [rows for h, rows in tables.items() if "CKA" in h]
    assert [r for r in cka if r] == [["layer1", "0.25", "0.50"], ["layer2", "0.75", "1.00"]]
    (swaps,) = [rows for h, rows in tables.items() if "swapped" in h]
    assert [r for r in swaps if r] == [["1", "0.25", "0.75"]]
    row = next(r for r in re.findall(r"<tr>(.*?)</tr>", html) if "follows form" in r)
    assert re.findall(r"<td>(.*?)</td>", row)[-1] == "higher"
