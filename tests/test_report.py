"""The report: conclusions follow the numbers, every section is there, and it renders in a real browser."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from topdown.report import conclusions, model_pair
from topdown.report.browser import browser_available, check_page
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


def test_conclusions_are_computed_from_the_numbers() -> None:
    r = _results(0.80, 0.83, [0.80, 0.70, 0.50, 0.30], [0.83, 0.80, 0.70, 0.40])
    text = " ".join(conclusions([r]))
    assert "clean top-1 accuracy is 3.0 points higher" in text
    assert "keeps 20.0 points more accuracy than the baseline under Gaussian noise at σ=0.08 (1 seed)" in text
    assert "drop from clean accuracy is 17.0 points smaller" in text
    assert "mean corruption error is 90.0%" in text and "fewer errors" in text
    assert "1/2 resolution level" in text
    assert "Every robustness sanity check passed" in text


def test_conclusions_flip_when_the_models_swap_results() -> None:
    r = _results(0.80, 0.83, [0.80, 0.70, 0.50, 0.30], [0.83, 0.80, 0.70, 0.40])
    swapped = copy.deepcopy(r)
    m = swapped["models"]
    m["baseline"], m["topdown"] = m["topdown"], m["baseline"]
    m["baseline"]["is_topdown"], m["topdown"]["is_topdown"] = False, True
    before, after = " ".join(conclusions([r])), " ".join(conclusions([swapped]))
    assert "3.0 points higher" in before and "3.0 points lower" in after
    assert "20.0 points more accuracy" in before and "20.0 points less accuracy" in after
    assert model_pair(swapped) == ("baseline", "topdown")


def test_claims_need_every_seed_to_agree() -> None:
    seeds = [
        _results(0.80, 0.83, [0.8, 0.7, 0.5, 0.3], [0.83, 0.8, 0.7, 0.4]),
        _results(0.80, 0.78, [0.8, 0.7, 0.5, 0.3], [0.78, 0.7, 0.45, 0.3]),
        _results(0.80, 0.82, [0.8, 0.7, 0.5, 0.3], [0.82, 0.75, 0.6, 0.35]),
    ]
    text = " ".join(conclusions(seeds))
    assert "not consistently different" in text
    assert "neither model keeps consistently more accuracy" in text
    agree = [
        _results(0.80, 0.83, [0.8, 0.7, 0.5, 0.3], [0.83, 0.8, 0.7, 0.4]),
        _results(0.81, 0.83, [0.81, 0.7, 0.5, 0.3], [0.83, 0.8, 0.72, 0.4]),
    ]
    assert "(2 seeds, ±" in " ".join(conclusions(agree))


def test_differences_of_an_image_or_two_are_ties() -> None:
    # 0.3 points of accuracy, 0.001 of area under the curve, 1.6% more corruption errors: no winner
    r = _results(0.800, 0.803, [0.800, 0.700, 0.500, 0.300], [0.803, 0.703, 0.503, 0.303], td_mce=1.016)
    text = " ".join(conclusions([r]))
    assert "not consistently different" in text
    assert "neither model keeps consistently more accuracy" in text
    assert "No consistent winner in area under the accuracy-vs-L2 curve under: gaussian noise" in text
    assert "about as many errors as" in text
    # one image more than the band is a claim again
    r = _results(0.800, 0.810, [0.800, 0.700, 0.500, 0.300], [0.810, 0.710, 0.510, 0.310], td_mce=1.03)
    text = " ".join(conclusions([r]))
    assert "1.0 points higher" in text and "more errors than" in text
    # each sentence stands on its own, whichever model wins
    assert "The area under the accuracy-vs-L2 curve is higher for top-down on 1 seed under: gaussian noise" in text
    swapped = _results(0.810, 0.800, [0.810, 0.710, 0.510, 0.310], [0.800, 0.700, 0.500, 0.300])
    text = " ".join(conclusions([swapped]))
    assert "The area under the accuracy-vs-L2 curve is higher for the baseline on 1 seed under: gaussian" in text


def test_a_flagged_model_is_reported_not_hidden() -> None:
    r = _results(0.8, 0.8, [0.8] * 4, [0.8] * 4)
    r["models"]["topdown"].update(flagged=True, failed_checks=["input_gradients_nonzero"])
    assert any("FAILED" in c and "input_gradients_nonzero" in c for c in conclusions([r]))


def test_a_check_failed_on_some_seeds_says_on_how_many() -> None:
    runs = [_results(0.8, 0.8, [0.8] * 4, [0.8] * 4) for _ in range(2)]
    for r, failed in zip(runs, (["more_steps_do_not_help"], ["more_steps_do_not_help", "autoattack_adds_little"])):
        r["models"]["baseline"].update(flagged=True, failed_checks=failed)
    (line,) = [c for c in conclusions(runs) if "FAILED" in c]
    assert line.endswith(": baseline: more_steps_do_not_help (2 of 2 seeds), autoattack_adds_little (1 of 2 seeds).")


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


def _verdict(runs: list[dict], what: str) -> str:
    """The verdict's part about ``what`` (``AutoAttack``, ``The blur control``, ...) up to its first ``(``."""
    (line,) = survival(runs)
    return line.split(f". {what}: ", 1)[1].split(" (", 1)[0]


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
    assert line.startswith("Worst-case accuracy at L∞ ε = 2/255: top-down minus the baseline is +10.3 ± 2.5 points")
    assert "AutoAttack: not run at this budget, so not tested." in line
    assert _verdict(runs, "The blur control") == "survives"
    assert _verdict(runs, "The accuracy control") == "mixed"
    assert "top-down minus it: +2.0 ± 3.6 points over 3 seeds" in line
    # the blur control as robust as top-down on every seed: the advantage does not survive it
    for w in seeds:
        w["blur_control"] = w["topdown"] - 0.002
    assert _verdict([_controlled(w) for w in seeds], "The blur control") == "does not survive"
    # no advantage over the baseline on every seed: nothing to test
    seeds[0]["baseline"] = 0.45
    assert survival([_controlled(w) for w in seeds])[0].endswith("no advantage over the baseline to test.")


def test_a_verdict_on_autoattack_compares_the_worst_case_without_and_with_it() -> None:
    worst = {"baseline": 0.30, "topdown": 0.40, "blur_control": 0.30, "accuracy_control": 0.30}
    # AutoAttack breaks 1 more baseline image and 11 more top-down images: the 10-point lead is gone
    gone = {"baseline": 0.29, "topdown": 0.29, "blur_control": 0.30, "accuracy_control": 0.30}
    runs = [_controlled(worst, gone, adds_little=False) for _ in range(2)]
    (line,) = survival(runs)
    assert "at L∞ ε = 2/255 without AutoAttack: top-down minus the baseline is +10.0 ± 0.0 points" in line
    assert _verdict(runs, "AutoAttack") == "does not survive"
    assert "on its 100 images, +10.0 ± 0.0 points without it and +0.0 ± 0.0 with it" in line
    assert "(AutoAttack adds little) failed for the baseline on 2 of 2 seed(s)" in line
    # failing for both nets: each is named
    both = survival([_controlled(worst, gone, adds_little=False, failing=("baseline", "topdown"))])[0]
    assert "failed for the baseline on 1 of 1 seed(s) and failed for the top-down net on 1 of 1 seed(s)" in both
    # it survives where it holds on every seed, and is mixed where it holds on one
    held = dict(gone, topdown=0.38)
    assert _verdict([_controlled(worst, held) for _ in range(2)], "AutoAttack") == "survives"
    assert _verdict([_controlled(worst, held), _controlled(worst, gone)], "AutoAttack") == "mixed"
    assert "passed for both nets on every seed" in survival([_controlled(worst, held)])[0]


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
    assert _verdict(runs, "The blur control") == "survives"
    assert _verdict(runs, "The accuracy control") == "survives"
    assert "p = 0.031 · 0.002, below 0.05 on 2 of 2 seeds" in line
    # 4 images of 300 ahead on one seed: ahead in sign on every seed, not beyond chance on that one
    runs[0] = _per_image(_controlled(worst), dict(close, accuracy_control=116))
    assert _verdict(runs, "The accuracy control") == "survives in sign only"
    assert "below 0.05 on 1 of 2 seeds" in survival(runs)[0]
    # models attacked on other images: no paired test, and the verdict rests on the signs alone
    runs[0]["models"]["accuracy_control"]["subset"]["indices"] = list(range(1, 301))
    assert _verdict(runs, "The accuracy control") == "survives"
    assert "below 0.05 on 1 of 1 seed (not run on 1: other images, or no per-image records)" in survival(runs)[0]
    runs[1]["models"]["accuracy_control"]["subset"]["indices"] = list(range(1, 301))
    assert _verdict(runs, "The accuracy control") == "survives"
    no_test = "The accuracy control: survives (worst case, top-down minus it: +2.3 ± 1.4 points over 2 seeds, at a"
    assert survival(runs)[0].endswith(f"{no_test} clean top-1 accuracy -2.0 ± 0.0 points from it).")


def test_comparisons_take_their_pair_and_the_baseline_is_never_a_control() -> None:
    runs = [_controlled({"baseline": 0.30, "topdown": 0.40, "blur_control": 0.45, "accuracy_control": 0.30})]
    m = runs[0]["models"]
    runs[0]["models"] = {k: m[k] for k in ("blur_control", "accuracy_control", "baseline", "topdown")}
    assert model_pair(runs[0]) == ("baseline", "topdown")
    blur = " ".join(comparisons(runs, ("blur_control", "topdown")))
    assert "robust accuracy is 5.0 points lower than the blur control's (1 seed)" in blur
    assert "than the blur control's" in blur and "baseline's" not in blur.replace("of the baseline's", "")
    assert list(control_conclusions(runs)) == ["blur_control", "accuracy_control"]
    assert "robust accuracy is 10.0 points higher than the baseline's" in " ".join(conclusions(runs))
    assert "Every robustness sanity check passed for all 4 models." in conclusions(runs)


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
    assert "Against the blur control" in html and "Against the accuracy control" in html
    assert "The accuracy control: survives" in html and "(and the blur control and the accuracy control)" in html


def require_browser() -> None:
    if not browser_available():
        if os.environ.get("TOPDOWN_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromedriver are required here (TOPDOWN_REQUIRE_BROWSER is set)")
        pytest.skip("chromium/chromedriver not installed")


def test_a_page_with_a_broken_image_and_a_script_error_is_caught(tmp_path: Path) -> None:
    require_browser()
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
    assert "99.7%" not in html and "its validation images are training images" in html
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
    assert "salient drop 0.370, least salient drop 0.300, random drop 0.440" in html
    assert "per image" not in html  # lists stay in vis.json
