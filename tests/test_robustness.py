"""The robustness evaluation: attacks, perturbations, corruptions, sanity checks, resume, the CLI.

One module-scoped run of the whole suite on the two tiny trained nets (``normal_run``) feeds most tests;
the expensive checks assert on its stored results rather than attacking again.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from records import differences, machine
from torch import nn

from topdown.checkpoint import CheckpointError
from topdown.io import atomic_write_json
from topdown.lit import CHECKPOINT_KEY
from topdown.robustness import (
    CORRUPTIONS,
    PERTURBATIONS,
    SCHEMA_VERSION,
    AttackSpec,
    AttackSuite,
    CorruptionSuite,
    CWConfig,
    DecisionConfig,
    DeepFoolConfig,
    FMNConfig,
    ModelEntry,
    PartResults,
    PerturbationSuite,
    PGDConfig,
    ScaleSuite,
    SuiteConfig,
    apply_perturbation,
    band,
    corrupt_batch,
    corruption_errors,
    evaluate_models,
    prepare_model,
    run_attack,
    stratified_subset,
)
from topdown.robustness.perturbations import draws_for
from topdown.robustness.sanity import bits, run_checks
from topdown.robustness.scales import LevelInput, level_factors
from topdown.store import PartStore

ROOT = Path(__file__).resolve().parents[1]
EPS_LINF = [0.0, 2 / 255, 8 / 255]


def small_suite(**overrides) -> SuiteConfig:
    """A small suite that still runs every part (about a minute for both tiny nets on a quiet CPU)."""
    cfg = SuiteConfig(
        subset=24,
        batch_size=24,
        seed=0,
        attacks=AttackSuite(
            linf_epsilons=EPS_LINF,
            l2_epsilons=[0.0, 0.25, 1.0],
            linf_pgd=PGDConfig(steps=10, rel_stepsize=0.25),
            l2_pgd=PGDConfig(steps=5, rel_stepsize=0.25),
            deepfool=DeepFoolConfig(steps=20),
            fmn=FMNConfig(steps=20),
        ),
        decision=DecisionConfig(subset=8, steps=4, initial_gradient_eval_steps=20, max_gradient_eval_steps=40),
        perturbations=PerturbationSuite(),
        scales=ScaleSuite(noise_sigmas=[0.1, 0.3], pgd_epsilons=[8 / 255], pgd_steps=5),
        corruptions=CorruptionSuite(names=["gaussian_noise", "defocus_blur", "jpeg", "contrast"], severities=[1, 3, 5]),
        autoattack=None,  # its own tests below
    )
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def entries(nets: dict) -> list[ModelEntry]:
    return [ModelEntry(k, v) for k, v in nets.items()]


def run_suite(models: list[ModelEntry], data, cfg: SuiteConfig, out, **options):
    """The suite on ``data``'s test split, without progress bars."""
    return evaluate_models(models, data.subset("test"), data.classes, cfg, out, progress=False, **options)


@pytest.fixture(scope="module")
def normal_run(trained_pair, small_flowers, tmp_path_factory):
    out = tmp_path_factory.mktemp("normal_run")
    models = entries(trained_pair)
    report = run_suite(models, small_flowers, small_suite(), out, data_info=small_flowers.describe())
    return report


# -- the whole suite on normal models ----------------------------------------------------------------------
def test_every_sanity_check_passes_on_normal_models(normal_run):
    for name, m in normal_run.results["models"].items():
        off = {"autoattack_adds_little"}  # AutoAttack has runs of its own below
        failed = {k: c for k, c in m["sanity"].items() if c["passed"] is not True and k not in off}
        assert not failed, f"{name}: {failed}"
        assert m["sanity"]["autoattack_adds_little"]["passed"] is None
        assert not m["flagged"]


def test_every_attack_lowers_accuracy_or_leaves_it_and_eps0_is_clean(normal_run):
    for name, m in normal_run.results["models"].items():
        clean = m["subset"]["accuracy"]
        clean_bits = bits(m["subset"]["clean_correct"])
        attacks = dict(m["attacks"], decision=m["decision"])
        assert set(attacks) >= {"fgsm", "linf_pgd", "l2_pgd", "deepfool", "fmn", "linf_pgd_2x", "decision"}
        for a, r in attacks.items():
            pos = np.asarray(r.get("positions", range(len(clean_bits))))
            base = clean_bits[pos].mean()
            assert all(acc <= base + 1e-9 for acc in r["accuracy"]), (name, a, r["accuracy"], base)
            if r["epsilons"][0] == 0:
                assert np.array_equal(bits(r["robust"][0]), clean_bits[pos]), (name, a)  # image by image
        assert m["attacks"]["linf_pgd"]["accuracy"][-1] < clean  # 8/255 breaks the tiny nets
        for p, r in m["perturbations"].items():
            assert r["accuracy_vs_l2"][0] == pytest.approx(clean), p
            assert all(b <= a + 1e-12 for a, b in zip(r["accuracy_vs_l2"], r["accuracy_vs_l2"][1:])), p
            assert 0 <= r["auc"] <= clean + 1e-9
        for s in m["scales"].values():
            assert np.asarray(s["accuracy"]).max() <= 1 and s["most_harmful_level"] in s["levels"]


def test_results_files_schema_and_plots(normal_run):
    out = normal_run.out
    res = json.loads((out / "results.json").read_text())
    assert res["schema_version"] == SCHEMA_VERSION
    assert res["reference_model"] == "baseline"
    assert res["data"]["subset_size"] == 24
    m = res["models"]["topdown"]
    assert m["is_topdown"] and not res["models"]["baseline"]["is_topdown"]
    assert {"top1", "top5", "macro_acc", "per_class_acc", "ece", "confidence", "nll", "confusion"} <= set(m["clean"])
    for c in (m["clean"], res["models"]["baseline"]["clean"]):
        # the mean confidence misses top-1 by at most the calibration error (ECE weighs |acc - conf| per bin)
        assert 1 / 6 <= c["confidence"] <= 1 and abs(c["confidence"] - c["top1"]) <= c["ece"] + 1e-6
    assert len(m["clean"]["confusion"]) == 6 and sum(map(sum, m["clean"]["confusion"])) == m["clean"]["n"]
    for r in m["attacks"].values():  # every attack documents its settings and seed
        assert {"method", "kind", "norm", "settings", "seed", "epsilons", "accuracy", "time_s"} <= set(r)
    assert m["scales"]["noise"]["mode"] == "pyramid_level"
    assert res["models"]["baseline"]["scales"]["noise"]["mode"] == "image_band"
    assert res["models"]["baseline"]["corruptions"]["mce"] == pytest.approx(1.0)  # the reference
    assert m["corruptions"]["mce"] > 0
    assert set(m["worst_case"]) == {"linf", "l2"}
    for norm, w in m["worst_case"].items():  # the worst case is at least as strong as each attack
        for a in m["attacks"].values():
            if a["norm"] == norm and a["kind"] == "fixed":
                for e, acc in zip(a["epsilons"], a["accuracy"]):
                    if e in w["epsilons"]:
                        assert w["accuracy"][w["epsilons"].index(e)] <= acc + 1e-9
    header = (out / "results.csv").read_text().splitlines()[0]
    assert header == "model,section,name,x_name,x,metric,value"
    for png in ("attacks_linf.png", "attacks_l2.png", "perturbations.png", "corruptions.png", "scales.png"):
        assert (out / png).stat().st_size > 10_000, png
    assert not list(out.rglob("*.tmp")), "temporary files left behind"


# -- gradient masking is caught ----------------------------------------------------------------------------
class RoundedInput(nn.Module):
    """A deliberately masked model: the input is quantised to 8 levels, so every input gradient is zero."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * 7) / 7)


def test_gradient_masking_is_flagged(trained_pair, small_flowers, tmp_path):
    masked = RoundedInput(copy.deepcopy(trained_pair["baseline"])).eval()
    cfg = small_suite(
        attacks=AttackSuite(
            linf_epsilons=EPS_LINF,
            l2_epsilons=[0.0, 0.5, 2.0],
            l2_pgd=None,
            fmn=None,
            linf_pgd=PGDConfig(steps=5),
            deepfool=DeepFoolConfig(steps=10),
        ),
        decision=DecisionConfig(subset=8, steps=3, initial_gradient_eval_steps=20, max_gradient_eval_steps=40),
        perturbations=None,
        scales=None,
        corruptions=None,
    )
    cfg.sanity.double_steps = False
    rep = run_suite([ModelEntry("masked", masked)], small_flowers, cfg, tmp_path, plots=False)
    m = rep.results["models"]["masked"]
    checks = m["sanity"]
    assert checks["input_gradients_nonzero"]["passed"] is False and checks["input_gradients_nonzero"]["value"] == 0
    assert checks["unbounded_attack_reaches_zero"]["passed"] is False  # DeepFool finds no gradient to follow
    assert checks["decision_not_better"]["passed"] is False  # HopSkipJump, needing no gradient, does better
    assert m["flagged"] and "input_gradients_nonzero" in m["failed_checks"]


def _pgd_part(robust_at_eps: int, n: int, steps: int) -> dict:
    eps = [2 / 255, 4 / 255]
    rows = ["1" * robust_at_eps + "0" * (n - robust_at_eps), "0" * n]
    return {
        "kind": "fixed",
        "method": "linf_pgd",
        "norm": "linf",
        "epsilons": eps,
        "robust": rows,
        "accuracy": [robust_at_eps / n, 0.0],
        "settings": {"steps": steps},
        "unverified": 0,
    }


@pytest.mark.parametrize("robust_30, robust_60", [(45, 42), (42, 39), (42, 45), (45, 41)])
def test_a_change_of_exactly_one_point_passes_whatever_the_float_rounding(robust_30, robust_60):
    # 45/300 - 42/300 is 0.009999999999999981 and 42/300 - 39/300 is 0.010000000000000009: both are 3 images
    # of 300, one point, and the check's limit is one point (45 -> 41 is 4 images and must fail)
    parts = PartResults()
    parts.add("subset", "subset", {"clean_correct": "1" * 300})
    parts.add("attack", "linf_pgd", _pgd_part(robust_30, 300, 30))
    parts.add("attack", "linf_pgd_2x", _pgd_part(robust_60, 300, 60))
    check = run_checks(parts, tolerance=0.01)["more_steps_do_not_help"]
    assert check["passed"] is (abs(robust_30 - robust_60) <= 3), check


# -- resuming ----------------------------------------------------------------------------------------------
def test_killed_run_resumes_without_recomputing(normal_run, trained_pair, small_flowers, tmp_path):
    """Copy a finished run, remove what a crash would have kept from happening, and run again."""
    out = tmp_path / "run"
    shutil.copytree(normal_run.out, out)
    store = PartStore(out)
    lost = [("topdown", "l2_pgd"), ("topdown", "scale_pgd"), ("topdown", "corruption:jpeg")]
    for model, part in lost:
        store.path(model, part).unlink()
    # a write interrupted half-way leaves only its temporary file, never a torn part
    (store.path("topdown", "l2_pgd").parent / ".l2_pgd.json.123.tmp").write_text('{"trunc')
    before = {p: p.stat().st_mtime_ns for p in (out / "parts").rglob("*.json")}
    started = []
    models = entries(trained_pair)
    rep = run_suite(
        models,
        small_flowers,
        small_suite(),
        out,
        data_info=small_flowers.describe(),
        plots=False,
        on_part=lambda model, part: started.append((model, part)),
    )
    assert sorted(started) == sorted(lost) == sorted(rep.computed)
    assert {p: p.stat().st_mtime_ns for p in before} == before  # finished parts untouched
    # seeded: recomputed parts equal the originals
    old = normal_run.results["models"]["topdown"]
    new = rep.results["models"]["topdown"]
    assert new["attacks"]["l2_pgd"]["robust"] == old["attacks"]["l2_pgd"]["robust"]
    assert new["scales"]["pgd"]["accuracy"] == old["scales"]["pgd"]["accuracy"]
    assert (
        new["corruptions"]["per_corruption"]["jpeg"]["accuracy"]
        == old["corruptions"]["per_corruption"]["jpeg"]["accuracy"]
    )


def test_interrupted_run_resumes_where_it_stopped(trained_pair, small_flowers, tmp_path):
    cfg = small_suite(
        attacks=None,
        decision=None,
        scales=None,
        perturbations=PerturbationSuite(levels={"gaussian_noise": [0, 0.1, 0.2], "contrast": [0, 0.5]}),
        corruptions=CorruptionSuite(names=["jpeg", "pixelate"], severities=[1, 5]),
    )
    models = [ModelEntry("baseline", trained_pair["baseline"])]
    seen = []

    def crash_at_fourth(model, part):
        seen.append(part)
        if len(seen) == 4:
            raise KeyboardInterrupt  # as if killed while computing the 4th part

    with pytest.raises(KeyboardInterrupt):
        run_suite(models, small_flowers, cfg, tmp_path, plots=False, on_part=crash_at_fourth)
    assert not (tmp_path / "results.json").exists()
    rep = run_suite(models, small_flowers, cfg, tmp_path, plots=False)
    assert [p for _, p in rep.reused] == seen[:3]
    assert [p for _, p in rep.computed] == ["perturbation:contrast", "corruption:jpeg", "corruption:pixelate"]
    # changed settings invalidate exactly the parts they touch
    cfg.corruptions.severities = [1, 4]
    rep = run_suite(models, small_flowers, cfg, tmp_path, plots=False)
    assert [p for _, p in rep.computed] == ["corruption:jpeg", "corruption:pixelate"]


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "part.json"
    atomic_write_json(path, {"a": 1})

    class Boom:
        pass

    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": Boom()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["part.json"]
    atomic_write_json(path, {"inf": float("inf"), "arr": np.arange(2)})
    assert json.loads(path.read_text()) == {"inf": None, "arr": [0, 1]}


# -- the pieces --------------------------------------------------------------------------------------------
def test_optional_cw_and_boundary_attacks(trained_pair, small_flowers):
    ds = small_flowers.subset("test")
    x = torch.stack([ds[i][0] for i in range(6)])
    y = torch.tensor([ds[i][1] for i in range(6)])
    net = prepare_model(trained_pair["topdown"], "cpu")
    cw = run_attack(
        net, x, y, AttackSpec("cw", "cw", [0.0, 0.5, 2.0], vars(CWConfig(binary_search_steps=2, steps=10))), "cpu"
    )
    clean = (net(x).argmax(1) == y).numpy()
    assert np.array_equal(cw.robust[0], clean)
    assert all(b <= a for a, b in zip(cw.accuracy, cw.accuracy[1:]))
    # Boundary from real images of other classes (its random start fails whole batches)
    starts = torch.stack(
        [
            x[(i + 1 + int(torch.nonzero(y[i + 1 :] != y[i])[0])) % 6]
            if (y[i + 1 :] != y[i]).any()
            else x[int(torch.nonzero(y != y[i])[0])]
            for i in range(6)
        ]
    )
    ok = net(starts).argmax(1) != y
    b = run_attack(
        net,
        x[ok],
        y[ok],
        AttackSpec("boundary", "boundary", [0.0, 1.0, 4.0], {"steps": 20}),
        "cpu",
        starting_points=starts[ok],
    )
    assert np.array_equal(b.robust[0], clean[ok.numpy()])
    assert np.isfinite(b.distances[clean[ok.numpy()]]).all()  # started adversarial: always broken
    with pytest.raises(ValueError, match="starting_points"):
        run_attack(net, x, y, AttackSpec("hsj", "hsj", [0.0], {"steps": 1}), "cpu")


class CountingNet(nn.Module):
    """Counts the images each forward pass sees."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.seen = net, 0
        self.train(net.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        return self.net(x)


def test_pgd_restarts_only_attack_what_earlier_restarts_left_robust(trained_pair, small_flowers):
    ds = small_flowers.subset("test")
    x = torch.stack([ds[i][0] for i in range(24)])
    y = torch.tensor([ds[i][1] for i in range(24)])
    net = CountingNet(prepare_model(trained_pair["baseline"], "cpu"))
    eps = EPS_LINF

    def attack(restarts: int):
        net.seen = 0
        spec = AttackSpec("linf_pgd", "linf_pgd", eps, vars(PGDConfig(steps=5, restarts=restarts, rel_stepsize=0.25)))
        return run_attack(net, x, y, spec, "cpu"), net.seen

    (one, seen1), (three, seen3) = attack(1), attack(3)
    # restart 0 is the single-start run itself; later ones can only break more
    assert np.array_equal(one.robust[0], three.robust[0])
    assert (three.robust <= one.robust).all()
    assert three.accuracy[2] < one.accuracy[0]
    # extra work is proportional to what survived, never a full rerun: eps = 0 gets one start, and restarts
    # 1 and 2 run only on the examples still robust
    survivors = one.robust[1:].sum()
    assert seen1 < seen3 <= seen1 + 2 * survivors * (5 + 3)
    assert survivors < one.robust[0].sum() * 2  # the attack broke something, so the bound above is a saving


def test_attacks_leave_model_and_rng_untouched(trained_pair, small_flowers):
    net = trained_pair["baseline"]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    prepared = prepare_model(net, "cpu")
    assert prepared is not net and not any(p.requires_grad for p in prepared.parameters())
    ds = small_flowers.subset("test")
    x, y = torch.stack([ds[i][0] for i in range(4)]), torch.tensor([ds[i][1] for i in range(4)])
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    run_attack(prepared, x, y, AttackSpec("linf_pgd", "linf_pgd", [0.0, 0.03], vars(PGDConfig(steps=2))), "cpu")
    assert torch.equal(torch.rand(1), expected)  # the caller's RNG stream is restored
    assert all(p.grad is None for p in prepared.parameters())
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    with torch.inference_mode():  # as inside Lightning's test loop
        r = run_attack(prepared, x, y, AttackSpec("fgsm", "fgsm", [0.0, 0.03], {}), "cpu")
    assert r.robust.shape == (2, 4)


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_perturbations_are_seeded_nested_and_grow(name):
    x = torch.rand(3, 3, 32, 32) * 0.8 + 0.1
    idx = np.array([5, 7, 9])
    d = draws_for(name, x, idx, seed=0)
    assert torch.equal(apply_perturbation(name, x, 0.0, d), x)
    levels = {
        "gaussian_noise": [0.05, 0.2],
        "uniform_noise": [0.05, 0.2],
        "salt_and_pepper": [0.02, 0.2],
        "gaussian_blur": [0.5, 2.0],
        "contrast": [0.2, 0.8],
        "shift": [1, 4],
        "rotation": [2, 5],
    }[name]
    small, large = (apply_perturbation(name, x, lv, d) for lv in levels)
    assert small.min() >= 0 and large.max() <= 1
    assert 0 < (small - x).norm() < (large - x).norm()
    # the same image index gives the same draw whatever the batch
    d1 = draws_for(name, x[1:2], idx[1:2], seed=0)
    assert torch.allclose(apply_perturbation(name, x[1:2], levels[1], d1), large[1:2], atol=1e-6)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruptions_are_seeded_and_grow_with_severity(name, small_flowers):
    ds = small_flowers.subset("test")
    x = torch.stack([ds[i][0] for i in range(4)])
    idx = np.arange(4)
    c1, c5 = corrupt_batch(x, idx, name, 1, seed=0), corrupt_batch(x, idx, name, 5, seed=0)
    assert c1.shape == x.shape and c1.min() >= 0 and c1.max() <= 1
    assert torch.equal(corrupt_batch(x[2:], idx[2:], name, 5, seed=0), c5[2:])  # per-image seeding
    assert (c1 - x).abs().mean() > 0 and (c5 - x).abs().mean() > 0
    if name != "pixelate":  # nearest-neighbour upscaling from 30 of 32 px moves pixels more than from 21 px
        assert (c5 - x).abs().mean() > (c1 - x).abs().mean()


def test_mce_is_relative_to_the_baseline():
    errors = {"baseline": {"a": [0.2, 0.4], "b": [0.5, 0.5]}, "topdown": {"a": [0.1, 0.2], "b": [0.5, 1.0]}}
    out = corruption_errors(errors, {"baseline": 0.1, "topdown": 0.1}, "baseline")
    assert out["baseline"]["mce"] == pytest.approx(1.0)
    assert out["topdown"]["ce"] == pytest.approx({"a": 0.5, "b": 1.5})
    assert out["topdown"]["mce"] == pytest.approx(1.0)
    assert out["topdown"]["relative_ce"]["a"] == pytest.approx((0.0 + 0.1) / (0.1 + 0.3))


def test_band_operator_isolates_one_scale():
    from topdown.models import downscale

    torch.manual_seed(0)
    num = 3
    rms = lambda t: t.pow(2).mean().sqrt()  # noqa: E731
    for level, f in enumerate(level_factors(num)):
        delta = torch.randn(2, 3, 32 // f, 32 // f)
        img = band(delta, level, num)
        assert img.shape == (2, 3, 32, 32)
        assert torch.allclose(band(2 * delta, level, num), 2 * img, atol=1e-5)  # linear: PGD through it is exact
        seen = downscale(img, f, "gaussian")  # what the level itself sees: most of what plain upsampling gives
        assert rms(seen) > 0.5 * rms(downscale(band(delta, level, num, iterations=0), f, "gaussian"))
        if level > 0:  # the next coarser level sees little of it
            assert rms(downscale(img, 2 * f, "gaussian")) < 0.3 * rms(seen)


def test_level_input_perturbs_one_pyramid_level(trained_pair):
    net = prepare_model(trained_pair["topdown"], "cpu")
    x = torch.rand(2, 3, 32, 32)
    for level in range(net.num_stages):
        m = LevelInput(net, level, net.num_stages)
        assert not m.training
        z = m.set_context(x)
        assert torch.allclose(m(z), net(x), atol=1e-5)
        pyr = [t.clone() for t in net.pyramid(x)]
        pyr[level] = (z + 0.1).clamp(0, 1)
        assert torch.allclose(m(pyr[level]), net(pyr), atol=1e-5)


def test_stratified_subset_is_seeded_and_balanced():
    targets = np.repeat(np.arange(4), [50, 30, 15, 5])
    a = stratified_subset(targets, 20, 0)
    assert len(a) == 20 and np.array_equal(a, stratified_subset(targets, 20, 0))
    assert np.bincount(targets[a]).tolist() == [10, 6, 3, 1]
    assert not np.array_equal(a, stratified_subset(targets, 20, 1))
    assert len(stratified_subset(targets, None, 0)) == 100


# -- the command line and checkpoints ----------------------------------------------------------------------
def write_checkpoint(path: Path, net: nn.Module, data_desc: dict, **extra) -> Path:
    """A checkpoint in the layout ``ImageClassifier`` saves (Lightning state dict + topdown record)."""
    ckpt = {
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        CHECKPOINT_KEY: {"schema": 1, "net": net.arch_config, "data": data_desc},
        "epoch": 1,
        "global_step": 10,
        **extra,
    }
    torch.save(ckpt, path)
    return path


CLI_SUITE = """
subset: 12
batch_size: 12
attacks:
  linf_epsilons: [0.0, 0.03]
  l2_epsilons: [0.0, 1.0]
  linf_pgd: {steps: 2}
  l2_pgd: null
  deepfool: {steps: 5}
  fmn: null
autoattack: {budgets: [{norm: linf, eps: 0.03, attacks: [apgd-ce, square]}], apgd_steps: 3, square_queries: 20}
decision: null
perturbations: {levels: {gaussian_noise: [0.0, 0.2]}}
scales: {noise_sigmas: [0.2], pgd_epsilons: []}
corruptions: {names: [jpeg], severities: [5]}
"""


def cli_args(checkpoints: dict[str, Path], tmp_path: Path, out: Path) -> list[str]:
    """evaluate.py's arguments for both tiny checkpoints with the small CLI suite, no progress bars."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(CLI_SUITE)
    ckpts = ["--ckpt+", str(checkpoints["baseline"]), "--ckpt+", str(checkpoints["topdown"])]
    return [*ckpts, "--config", str(suite), "--out", str(out), "--progress", "false"]


def test_cli_end_to_end_and_resume(tiny_checkpoints, tmp_path, capsys):
    """Real Lightning checkpoints in, results.json/csv/plots out; the same command again recomputes nothing."""
    from topdown.robustness.cli import main

    out = tmp_path / "eval"
    args = cli_args(tiny_checkpoints, tmp_path, out) + ["--sanity.double_steps", "false"]
    rep = main(args)
    res = json.loads((out / "results.json").read_text())
    assert list(res["models"]) == ["baseline", "topdown"]
    assert res["models"]["topdown"]["checkpoint"]["sha256"] and res["suite"]["subset"] == 12
    assert "sanity: input_gradients_nonzero" in capsys.readouterr().out
    assert (out / "config.yaml").exists() and (out / "scales.png").exists()
    assert rep.computed and not rep.reused
    rep2 = main(args)
    assert not rep2.computed and len(rep2.reused) == len(rep.computed)


def test_a_bitwise_retrain_reuses_every_stored_part_and_other_weights_recompute(tiny_checkpoints, tmp_path):
    """The store knows a model by its weights, not its file: a retrained checkpoint with the same weights (its
    file differs: the training clock, the folder) reuses every stored part, so a run resumes on another machine;
    a net whose weights moved has its parts computed again, and only its own."""
    from topdown.robustness.cli import main

    out = tmp_path / "eval"
    first = main(cli_args(tiny_checkpoints, tmp_path, out) + ["--sanity.double_steps", "false"])
    retrained = {}
    for name, path in tiny_checkpoints.items():
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        clock = next(k for k in ckpt["callbacks"] if "TrainingClock" in k)
        ckpt["callbacks"][clock]["seconds"] += 1.5
        retrained[name] = tmp_path / "elsewhere" / name / "last.ckpt"
        retrained[name].parent.mkdir(parents=True)
        torch.save(ckpt, retrained[name])
        assert retrained[name].read_bytes() != path.read_bytes()
    again = main(cli_args(retrained, tmp_path, out) + ["--sanity.double_steps", "false"])
    assert not again.computed and sorted(again.reused) == sorted(first.computed)
    res = json.loads((out / "results.json").read_text())
    assert res["models"]["topdown"]["checkpoint"]["path"] == str(retrained["topdown"])

    ckpt = torch.load(retrained["topdown"], map_location="cpu", weights_only=False)
    last = [k for k in ckpt["state_dict"] if k.endswith(".weight")][-1]
    ckpt["state_dict"][last] = ckpt["state_dict"][last] * 1.05
    torch.save(ckpt, retrained["topdown"])
    moved = main(cli_args(retrained, tmp_path, out) + ["--sanity.double_steps", "false"])
    assert {m for m, _ in moved.computed} == {"topdown"} and {m for m, _ in moved.reused} == {"baseline"}


def test_a_published_result_is_adopted_only_for_nets_that_score_as_recorded(tiny_checkpoints, tmp_path):
    """A published results.json whose checkpoints are gone stands for retrained nets that score every test image
    as recorded (here copies of the measured files); a net whose weights moved is named, and nothing is written."""
    from topdown.robustness.adopt import adopt_results
    from topdown.robustness.cli import main

    published = tmp_path / "published"
    main(cli_args(tiny_checkpoints, tmp_path, published) + ["--sanity.double_steps", "false"])
    retrained = []
    for name in ("baseline", "topdown"):
        retrained.append(tmp_path / "retrained" / f"{name}.ckpt")
        retrained[-1].parent.mkdir(exist_ok=True)
        shutil.copyfile(tiny_checkpoints[name], retrained[-1])
    names = ["baseline", "topdown"]

    out = tmp_path / "adopted"
    assert adopt_results(published / "results.json", [str(p) for p in retrained], names, out) == []
    doc, pub = (json.loads((d / "results.json").read_text()) for d in (out, published))
    for name, path in zip(names, retrained):
        assert doc["models"][name]["worst_case"] == pub["models"][name]["worst_case"]
        assert doc["models"][name]["sanity"] == pub["models"][name]["sanity"]
        assert doc["models"][name]["checkpoint"]["path"] == str(path)
        assert doc["models"][name]["checkpoint"]["adopted_from"] == pub["models"][name]["checkpoint"]
    assert doc["adopted"]["from"] == str(published / "results.json") and (out / "scales.png").is_file()

    # The top-down net's last layer nudged: its NLL (if not its predictions) moves, so nothing is adopted.
    ckpt = torch.load(retrained[1], map_location="cpu", weights_only=False)
    last = [k for k in ckpt["state_dict"] if k.endswith(".weight")][-1]
    ckpt["state_dict"][last] = ckpt["state_dict"][last] * 1.05
    torch.save(ckpt, retrained[1])
    refused = adopt_results(published / "results.json", [str(p) for p in retrained], names, tmp_path / "no")
    assert len(refused) == 1 and refused[0].startswith("topdown: test ")
    assert not (tmp_path / "no" / "results.json").exists()
    # Measured on other CPU kernels: that is said too, as the likely reason.
    pub["environment"]["cpu_capability"] = "OTHER"
    (published / "results.json").write_text(json.dumps(pub))
    refused = adopt_results(published / "results.json", [str(p) for p in retrained], names, tmp_path / "no")
    assert refused[-1].startswith("measured on OTHER kernels, retrained on ")


def test_quick_and_full_suites_parse():
    from topdown.robustness.cli import build_parser

    for name in ("quick", "full"):
        parser = build_parser()
        config = str(ROOT / "configs" / "eval" / f"{name}.yaml")
        ns = parser.parse_args(["--config", config, "--out", "x", "--ckpt+", "a", "--ckpt+", "b"])
        init = parser.instantiate(ns)
        cfg = SuiteConfig(**{k: getattr(init, k) for k in SuiteConfig.__dataclass_fields__})
        cfg.validate()
        assert ns.ckpt == ["a", "b"]
    # --ckpt as a list or appended one by one, the same thing
    assert build_parser().parse_args(["--ckpt", "[a, b]", "--out", "x"]).ckpt == ["a", "b"]
    assert build_parser().parse_args(["--ckpt+", "a", "--ckpt+=b", "--out", "x"]).ckpt == ["a", "b"]
    with pytest.raises(ValueError, match="start at 0"):
        SuiteConfig(attacks=AttackSuite(linf_epsilons=[0.01, 0.02])).validate()


class Payload:
    """Unpickling this runs ``os.mkdir(marker)``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_malicious_pickle_in_checkpoint_is_refused(trained_pair, small_flowers, tmp_path, capsys):
    from topdown.cli import evaluate_main

    marker = tmp_path / "pwned"
    bad = write_checkpoint(
        tmp_path / "bad.ckpt", trained_pair["topdown"], small_flowers.describe(), callbacks=Payload(marker)
    )
    with pytest.raises(SystemExit) as exc:
        evaluate_main(["--ckpt+", str(bad), "--out", str(tmp_path / "out")])
    assert exc.value.code == 1
    assert "refused" in capsys.readouterr().err
    assert not marker.exists()


def test_unknown_architecture_and_mismatched_data_are_clear_errors(trained_pair, small_flowers, tmp_path):
    from topdown.robustness.cli import load_models

    desc = small_flowers.describe()
    good = write_checkpoint(tmp_path / "good.ckpt", trained_pair["baseline"], desc)
    alien = tmp_path / "alien.ckpt"
    torch.save(
        {
            "state_dict": {},
            CHECKPOINT_KEY: {"net": {"class_path": "evil.VisionTransformer", "init_args": {}}, "data": desc},
        },
        alien,
    )
    with pytest.raises(CheckpointError, match="alien.ckpt.*unknown architecture"):
        load_models([str(good), str(alien)])
    other = write_checkpoint(tmp_path / "other.ckpt", trained_pair["topdown"], {**desc, "image_size": 64})
    with pytest.raises(CheckpointError, match="other.ckpt was trained on different data.*image_size"):
        load_models([str(good), str(other)])
    wrong = write_checkpoint(
        tmp_path / "wrong.ckpt",
        trained_pair["topdown"],
        {**desc, "num_classes": 10, "classes": [str(i) for i in range(10)]},
    )
    with pytest.raises(CheckpointError, match="wrong.ckpt.*6 classes.*10"):
        load_models([str(wrong)])
    from topdown.robustness.cli import load_test_split

    with pytest.raises(CheckpointError, match="classes"):
        load_test_split({**desc, "classes": ["a", "b", "c", "d", "e", "f"]}, None)


@pytest.mark.slow
def test_sigkilled_cli_run_resumes(tiny_checkpoints, tmp_path):
    """A real ``kill -9`` of ``evaluate.py`` mid-run; the rerun reuses every part written before."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "eval"
    cmd = [sys.executable, str(ROOT / "evaluate.py"), *cli_args(tiny_checkpoints, tmp_path, out)]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "parts").rglob("*.json"))) < 4:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p: p.stat().st_mtime_ns for p in (out / "parts").rglob("*.json")}
    assert done and not (out / "results.json").exists()
    for p in done:
        json.loads(p.read_text())  # no torn files
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    assert {p: p.stat().st_mtime_ns for p in done} == done
    assert (out / "results.json").exists()


# -- the suite's numbers do not drift ----------------------------------------------------------------------
GOLDEN = ROOT / "tests" / "golden" / "suite_small.json"
VOLATILE = {"created", "environment", "time_s", "parts_dir"}


def _stable(obj):
    """results.json without what legitimately changes from run to run (timestamps, timings, paths)."""
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


#: The tolerance off the recording machine, ``(rel, abs)``. The nets' weights are committed, so only kernel
#: rounding differs. Measured against the AVX512 record (``pytest --write-golden`` under
#: ``scripts/kernels.sh avx2`` and ``default``, compared with ``records.largest_relative_differences``): AVX2
#: kernels reproduced every number bitwise; torch's default kernels changed 612, every per-image bit and
#: accuracy alike, the gradient attacks' distances by at most 1e-3 relative (7e-7 absolute), HopSkipJump's (a
#: random walk on the decision boundary) by at most 3.1% (2.95 against 2.86). So: bits and shares exactly,
#: distances within ten times the largest measured, HopSkipJump's within three times. One torch thread instead of
#: the record's two (a one-core machine) changed HopSkipJump's distances alone, by at most 1.1%.
SUITE_TOLERANCE = (1e-2, 1e-5)
DECISION_TOLERANCE = (0.1, 1e-3)


def suite_tolerance(path: str) -> tuple[float, float]:
    return DECISION_TOLERANCE if ".decision." in path else SUITE_TOLERANCE


def test_suite_reproduces_its_golden_results(normal_run, write_golden):
    """The seeded small suite on the two tiny nets gives, number for number, the results recorded in
    tests/golden/suite_small.json: bitwise on the torch build and CPU kernels it was recorded with, within
    :func:`suite_tolerance` elsewhere (``--write-golden`` rewrites it after a deliberate change)."""
    results = _stable(json.loads(json.dumps(normal_run.results)))
    if write_golden:
        GOLDEN.write_text(json.dumps({"machine": machine(), "results": results}, indent=1, sort_keys=True) + "\n")
    _assert_reproduces_the_record(results)


def _assert_reproduces_the_record(results: dict) -> None:
    golden = json.loads(GOLDEN.read_text())
    exact = golden["machine"] == machine()
    # results.json may gain fields the record lacks (optional=None); each recorded one must be reproduced
    diffs = differences(golden["results"], results, None if exact else suite_tolerance, "results", None)
    assert not diffs, f"{len(diffs)} differences, e.g.\n" + "\n".join(diffs[:20])


def test_on_one_thread_the_suite_reproduces_the_record_within_the_tolerance(trained_pair, small_flowers, tmp_path):
    """A one-core machine runs the tests on one torch thread, which sums in another order than the record's
    two: that is not bitwise the record (HopSkipJump's random walk moves), and must pass within the tolerance."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        report = run_suite(
            entries(trained_pair), small_flowers, small_suite(), tmp_path, data_info=small_flowers.describe()
        )
        assert machine()["threads"] == "1"
        _assert_reproduces_the_record(_stable(json.loads(json.dumps(report.results))))
    finally:
        torch.set_num_threads(before)


def test_the_suite_tolerance_still_catches_a_changed_setting(trained_pair, small_flowers, tmp_path):
    """Off the recording machine the comparison allows :func:`suite_tolerance`; a real change must still fail
    it: FMN with 19 steps instead of the record's 20 moves its minimal distances past it on both nets."""
    golden = json.loads(GOLDEN.read_text())["results"]
    attacks = small_suite().attacks
    attacks.fmn = FMNConfig(steps=19)
    cfg = small_suite(attacks=attacks, decision=None, perturbations=None, scales=None, corruptions=None)
    models = entries(trained_pair)
    rep = run_suite(models, small_flowers, cfg, tmp_path)
    for name, m in rep.results["models"].items():
        recorded = golden["models"][name]["attacks"]["fmn"]["distances"]
        now = m["attacks"]["fmn"]["distances"]
        assert differences(recorded, now, suite_tolerance, f"{name}.fmn.distances"), name
