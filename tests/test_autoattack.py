"""AutoAttack in the suite: it attacks at least as hard as PGD, eps = 0 changes nothing, Square catches a
gradient-masked model, a killed run resumes, bad budgets are one-line errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_robustness import RoundedInput

from topdown.robustness import (
    AttackSuite,
    AutoAttackBudget,
    AutoAttackConfig,
    ModelEntry,
    PGDConfig,
    SuiteConfig,
    evaluate_models,
    prepare_model,
)
from topdown.robustness.autoattack import AutoAttackRun, run_autoattack
from topdown.robustness.decode import bits

pytestmark = pytest.mark.usefixtures("one_thread")
EPS = 8 / 255


def aa_suite(autoattack: AutoAttackConfig | None, attacks: AttackSuite | None = None, **kw) -> SuiteConfig:
    """Only the parts under test: clean, the subset, the attacks given, AutoAttack."""
    return SuiteConfig(
        subset=24,
        batch_size=24,
        attacks=attacks,
        autoattack=autoattack,
        decision=None,
        perturbations=None,
        scales=None,
        corruptions=None,
        **kw,
    )


def fast_aa(attacks: list[str], **kw) -> AutoAttackConfig:
    settings = {"apgd_steps": 20, "fab_steps": 10, "square_queries": 150, **kw}
    return AutoAttackConfig(budgets=[AutoAttackBudget("linf", EPS, attacks)], **settings)


def run(models, flowers, cfg, out, **kw):
    return evaluate_models(models, flowers.subset("test"), flowers.classes, cfg, out, progress=False, plots=False, **kw)


def test_autoattack_breaks_at_least_what_pgd_breaks(trained_pair, small_flowers, tmp_path):
    net = trained_pair["baseline"]
    pgd = AttackSuite(
        linf_epsilons=[0.0, EPS], l2_epsilons=[0.0, 0.5], fgsm=False, l2_pgd=None, deepfool=None, fmn=None
    )
    pgd.linf_pgd = PGDConfig(steps=10)
    only_pgd = run([ModelEntry("m", net)], small_flowers, aa_suite(None, pgd), tmp_path / "pgd")
    alone = aa_suite(fast_aa(["apgd-ce", "apgd-t"], standalone=True))
    only_aa = run([ModelEntry("m", net)], small_flowers, alone, tmp_path / "aa")
    pgd_acc = only_pgd.results["models"]["m"]["attacks"]["linf_pgd"]["accuracy"][1]
    summary = only_aa.results["models"]["m"]["autoattack"][f"linf:{EPS:.6g}"]
    clean = only_aa.results["models"]["m"]["subset"]["accuracy"]
    assert summary["accuracy_with"] <= pgd_acc + 1e-9 and summary["accuracy_with"] < clean
    assert summary["version"] == "custom" and set(summary["attacks"]) == {"apgd-ce", "apgd-t"}
    for rec in summary["attacks"].values():
        assert rec["library"].startswith("pyautoattack") and rec["unverified"] == 0


def test_autoattack_joins_the_worst_case_and_runs_only_on_what_is_left(trained_pair, small_flowers, tmp_path):
    net = trained_pair["topdown"]
    pgd = AttackSuite(linf_epsilons=[0.0, EPS], l2_epsilons=[0.0, 0.5], fgsm=True, l2_pgd=None, deepfool=None, fmn=None)
    pgd.linf_pgd = PGDConfig(steps=2)  # weak on purpose: AutoAttack has images left to break
    rep = run([ModelEntry("m", net)], small_flowers, aa_suite(fast_aa(["apgd-ce", "apgd-t"]), pgd), tmp_path)
    m = rep.results["models"]["m"]
    wc = m["worst_case"]["linf"]
    clean = bits(m["subset"]["clean_correct"])
    pgd_robust = bits(m["attacks"]["linf_pgd"]["robust"][1]) & bits(m["attacks"]["fgsm"]["robust"][1])
    ce = m["autoattack"][f"linf:{EPS:.6g}"]["attacks"]["apgd-ce"]
    # AutoAttack ran only on the images FGSM and PGD left robust
    assert ce["attacked"] == np.flatnonzero(pgd_robust).tolist()
    assert any(k.startswith("autoattack:") for k in wc["attacks"])
    assert wc["accuracy"][1] <= m["attacks"]["linf_pgd"]["accuracy"][1]
    # each broken image is attributed to the first attack that broke it, the misclassified ones to "clean"
    counts = wc["first_broken_by"][1]
    assert counts.get("clean", 0) == int((~clean).sum())
    assert sum(counts.values()) == round((1 - wc["accuracy"][1]) * len(clean))
    assert wc["first_broken_by"][0] == ({"clean": int((~clean).sum())} if (~clean).any() else {})
    check = m["sanity"]["autoattack_adds_little"]
    extra = m["autoattack"][f"linf:{EPS:.6g}"]["extra_broken"]
    assert check["passed"] is (extra / len(clean) <= max(0.01, 1 / len(clean)))
    assert "AutoAttack broke" in check["detail"]


def test_eps_zero_changes_nothing(trained_pair, small_flowers):
    net = prepare_model(trained_pair["baseline"], "cpu")
    x, y = next(iter(torch.utils.data.DataLoader(small_flowers.subset("test"), batch_size=16)))
    correct = net(x).argmax(1) == y
    for attack in ("apgd-ce", "apgd-t", "square"):
        spec = AutoAttackRun(attack, "linf", 0.0, apgd_steps=5, square_queries=20)
        broken, unverified, _ = run_autoattack(net, x[correct], y[correct], spec, 0, torch.device("cpu"), 16, 6)
        assert not broken.any() and unverified == 0, attack


def test_square_catches_the_gradient_masked_model(trained_pair, small_flowers, tmp_path):
    masked = RoundedInput(copy.deepcopy(trained_pair["baseline"])).eval()
    cfg = aa_suite(fast_aa(["apgd-ce", "square"], square_queries=300))
    rep = run([ModelEntry("masked", masked)], small_flowers, cfg, tmp_path)
    s = rep.results["models"]["masked"]["autoattack"][f"linf:{EPS:.6g}"]
    ce, square = s["attacks"]["apgd-ce"], s["attacks"]["square"]
    ce_share = ce["n_broken"] / len(ce["attacked"])
    square_share = square["n_broken"] / len(square["attacked"])
    # Measured on the committed nets with AVX512, AVX2 and default kernels alike (scripts/kernels.sh): APGD-CE
    # breaks 2 of the 11 correct images (0.18; only its random start moves the rounded input), Square 6 of the
    # 9 left (0.67), and accuracy falls from 0.458 to 0.125 (0.27 of it). Each bound leaves 1-2 images of margin.
    assert ce_share <= 1 / 3  # no gradient to follow: the white-box attack looks defeated
    assert square_share - ce_share >= 0.3  # the black-box attack is not fooled
    assert s["accuracy_with"] < 0.5 * s["accuracy_without"]


def test_killed_autoattack_resumes_without_recomputing(trained_pair, small_flowers, tmp_path):
    cfg = aa_suite(fast_aa(["apgd-ce", "apgd-t", "square"]))
    models = [ModelEntry("m", trained_pair["baseline"])]
    seen = []

    def crash_at_square(model, part):
        seen.append(part)
        if part.endswith(":square"):
            raise KeyboardInterrupt  # killed while Square runs

    with pytest.raises(KeyboardInterrupt):
        run(models, small_flowers, cfg, tmp_path, on_part=crash_at_square)
    rep = run(models, small_flowers, cfg, tmp_path)
    assert [p for _, p in rep.computed] == [seen[-1]]
    assert [p for _, p in rep.reused] == seen[:-1]
    # a changed setting that an attack reads recomputes that attack and those after it
    cfg.autoattack.apgd_steps = 21
    rep = run(models, small_flowers, cfg, tmp_path)
    assert [p.split(":")[-1] for _, p in rep.computed] == ["apgd-ce", "apgd-t", "square"][: len(rep.computed)]
    assert rep.computed and ("m", "clean") in rep.reused


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (AutoAttackBudget("linf", EPS, ["apgd-ce", "pgd"]), "autoattack.budgets[0].attacks: unknown attack(s) ['pgd']"),
        (AutoAttackBudget("linf", 0.0, ["apgd-ce"]), "autoattack.budgets[0].eps must be > 0"),
        (AutoAttackBudget("l3", EPS, ["apgd-ce"]), "autoattack.budgets[0].norm must be 'linf' or 'l2'"),
        (AutoAttackBudget("linf", EPS, ["square", "apgd-ce"]), "must follow AutoAttack's order"),
        (AutoAttackBudget("linf", 3 / 255, ["apgd-ce"]), "is not in attacks.linf_epsilons"),
    ],
)
def test_bad_budgets_are_one_line_errors(budget, message):
    cfg = SuiteConfig(autoattack=AutoAttackConfig(budgets=[budget]))
    with pytest.raises(ValueError, match=None) as err:
        cfg.validate()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_autoattack_key_on_the_command_line(tmp_path, capsys):
    from topdown.cli import evaluate_main

    with pytest.raises(SystemExit):
        evaluate_main(
            ["--ckpt+", str(tmp_path / "none.ckpt"), "--out", str(tmp_path), "--autoattack.budgets", "[{eps: -1}]"]
        )
    err = capsys.readouterr().err
    assert "autoattack.budgets[0].eps must be > 0" in err and "Traceback" not in err
