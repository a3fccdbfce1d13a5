"""The headline experiment's aggregation: mean ± std across seeds, targets, and what has not run yet; one column
per model (the controls beside the baseline and the top-down net), AutoAttack, and pages rebuilt from the result
files committed under docs/runs."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from prose import about, numbers, says, sentences

from topdown.experiment import (
    DatasetRuns,
    ExperimentConfig,
    _broke,
    aggregate,
    main,
    parse_experiment,
    published_dir,
    run_dir,
)
from topdown.options import load_section
from topdown.pipeline import DEFAULT_STAGES
from topdown.results_view import AutoAttack
from topdown.robustness.config import SuiteConfig

ROOT = Path(__file__).resolve().parents[1]


def _results(base: float, td: float, crops: int = 64, epochs: int = 40) -> dict:
    def model(topdown: bool, acc: float) -> dict:
        return {
            "is_topdown": topdown,
            "clean": {"top1": acc, "macro_acc": acc - 0.01},
            "worst_case": {"linf": {"epsilons": [0.0, 2 / 255], "accuracy": [acc, acc / 2]}},
            "corruptions": {"mce": 1.0 if not topdown else 0.9},
            "perturbations": {"gaussian_noise": {"auc": acc / 2, "accuracy_per_level": [acc, acc / 2]}},
            "attacks": {"fmn": {"median_distance": acc / 100}},
            "scales": {
                "noise": {"factors": [2, 1], "sigmas": [0.1, 0.2], "accuracy": [[acc, acc / 2], [acc, acc / 4]]}
            },
            "sanity": {"eps0_equals_clean": {"passed": True}, "more_steps_do_not_help": {"passed": topdown}},
            "flagged": False,
            "checkpoint": {
                "arch": {"class_path": "topdown.models." + ("TopDownResNet" if topdown else "ResNet"), "init_args": {}},
                "epoch": epochs - 1,
            },
        }

    return {
        "data": {"description": {"image_size": 64, "train_image_size": crops}},
        "suite": {"perturbations": {"levels": {"gaussian_noise": [0.0, 0.1]}}},
        "models": {"baseline": model(False, base), "topdown": model(True, td)},
    }


EPS = 2 / 255


def _with_controls(res: dict, worst: dict[str, float], adds_little: bool = True) -> dict:
    """``res`` with the two controls (copies of its baseline) and AutoAttack at 2/255 on 100 images of 100 for
    every model; ``worst``: each model's worst-case L∞ accuracy at 2/255, AutoAttack included, which alone broke
    3 images of the baseline and 2 of every other model."""
    res = copy.deepcopy(res)
    models = res["models"]
    models["blur_control"] = copy.deepcopy(models["baseline"])
    models["blur_control"]["checkpoint"]["arch"]["class_path"] = "topdown.models.BlurResNet"
    models["accuracy_control"] = copy.deepcopy(models["baseline"])
    models["accuracy_control"]["checkpoint"]["epoch"] = 24
    for name, m in models.items():
        extra = 3 if name == "baseline" else 2
        aa = f"autoattack:linf:{EPS:.6g}:apgd-ce"
        m["subset"] = {"n": 100}
        m["worst_case"]["linf"]["accuracy"][1] = worst[name]
        m["worst_case"]["linf"].update(attacks=["linf_pgd", aa], first_broken_by=[{}, {"linf_pgd": 50, aa: extra}])
        m["autoattack"] = {
            f"linf:{EPS:.6g}": {
                **{"norm": "linf", "eps": EPS, "n": 100, "extra_broken": extra, "version": "standard"},
                **{"accuracy_without": worst[name] + extra / 100, "accuracy_with": worst[name]},
                "attacks": {"apgd-ce": {"n_broken": extra, "attacked": list(range(40))}},
            }
        }
        m["sanity"]["autoattack_adds_little"] = {"passed": adds_little or name != "baseline"}
    return res


def _write(cfg: ExperimentConfig, dataset: str, seed: int, res: dict, published: bool = False) -> Path:
    d = published_dir(cfg, dataset, seed) if published else run_dir(cfg, dataset, seed)
    p = d / "eval" / "results.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(res))
    return p


def _experiment(tmp_path: Path, dataset: str, seeds: list[int], out: str = "outputs") -> ExperimentConfig:
    """One dataset's runs under ``tmp_path/<out>``, their page at ``tmp_path/docs/results.md``."""
    return ExperimentConfig(
        out=str(tmp_path / out),
        runs=[DatasetRuns(dataset, seeds=seeds)],
        results_md=str(tmp_path / "docs" / "results.md"),
    )


def test_aggregate_reports_mean_and_std_targets_and_missing_runs(tmp_path: Path) -> None:
    cfg = ExperimentConfig(
        out=str(tmp_path / "runs"),
        runs=[
            DatasetRuns("flower_photos", seeds=[0, 1, 2], target_top1=0.85),
            DatasetRuns("flowers102", seeds=[0], target_top1=0.55),
        ],
        results_md=str(tmp_path / "docs" / "results.md"),
    )
    for seed, (b, t) in zip((0, 1), ((0.86, 0.85), (0.88, 0.87))):
        p = run_dir(cfg, "flower_photos", seed) / "eval" / "results.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(_results(b, t)))
    # seed 0 was visualized: baseline 2 of 3 quality figures passed, top-down 1 of 1
    vis = {
        "models": {
            "baseline": {
                "methods": {
                    "classes": {"quality": {"a": {"passed": True}, "b": {"passed": False}}},
                    "dream": {"quality": {"c": {"passed": True}}},
                }
            },
            "topdown": {"methods": {"classes": {"quality": {"a": {"passed": True}}}}},
        }
    }
    (run_dir(cfg, "flower_photos", 0) / "vis").mkdir()
    (run_dir(cfg, "flower_photos", 0) / "vis" / "vis.json").write_text(json.dumps(vis))
    text = aggregate(cfg)
    assert (tmp_path / "docs" / "results.md").read_text() == text
    # a run of two models: two columns, no AutoAttack and no controls
    assert "| metric | baseline | top-down |\n|---|---|---|\n" in text
    assert "AutoAttack" not in text and "control" not in text
    assert "| visualization quality figures passed (each seed) | 2/3 · – | 1/1 · – |" in text
    assert "2 of 3 seed(s) finished" in text
    assert "| clean top-1 (%) | 87.0 ± 1.4 | 86.0 ± 1.4 |" in text
    assert "| worst-case L∞ accuracy at ε = 2/255 (%) | 43.5 ± 0.7 | 43.0 ± 0.7 |" in text
    assert "| clean top-1 of each seed (%) | 86.0 · 88.0 | 85.0 · 87.0 |" in text
    assert "| median minimal L∞ perturbation, FMN (/255) | 2.2 ± 0.0 | 2.2 ± 0.0 |" in text
    # the strongest noise on one scale at a time, coarse to fine
    assert "| Gaussian noise σ = 0.2 on the 1/2 resolution scale only (%) | 43.5 ± 0.7 | 43.0 ± 0.7 |" in text
    assert "| Gaussian noise σ = 0.2 on the full resolution scale only (%) | 21.8 ± 0.4 | 21.5 ± 0.4 |" in text
    assert "| sanity checks passed (each seed) | 1/2 · 1/2 | 2/2 · 2/2 |" in text
    assert "top-5" not in text and "DeepFool" not in text  # what no run recorded gets no row
    target = next(line for line in text.splitlines() if "baseline top-1 ≥" in line)
    baseline_target, topdown_target = target.split(";")[-2:]
    assert says(baseline_target, "not met", "met") == "met" and numbers(baseline_target)[-1] == 87.0
    assert says(topdown_target, "not met", "met") == "met" and numbers(topdown_target) == [1, -1.0, 2]  # 2 seeds
    assert "(2 seeds, ±0.0)" in text  # the conclusions speak of both seeds
    assert "## flowers102\n\nNo finished run yet (1 seed(s) planned)." in text
    # a third seed that misses the target changes the verdict
    p = run_dir(cfg, "flower_photos", 2) / "eval" / "results.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps(_results(0.70, 0.60)))
    text = aggregate(cfg)
    assert "3 of 3 seed(s) finished" in text and "not met" in text


def test_seeds_trained_with_another_recipe_are_left_out_and_named(tmp_path: Path) -> None:
    cfg = ExperimentConfig(
        out=str(tmp_path / "runs"),
        runs=[DatasetRuns("flower_photos", seeds=[0, 1, 2], target_top1=0.85)],
        results_md=str(tmp_path / "results.md"),
    )
    for seed, res in enumerate([_results(0.80, 0.75), _results(0.88, 0.87, crops=48, epochs=70)]):
        p = run_dir(cfg, "flower_photos", seed) / "eval" / "results.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(res))
        os.utime(p, (1000.0 + seed, 1000.0 + seed))  # seed 1 is the newer run
    text = aggregate(cfg)
    assert "1 of 3 seed(s) finished" in text
    assert "| clean top-1 (%) | 88.0 | 87.0 |" in text  # seed 0's older recipe is not averaged in
    assert "Training: 48 px training crops, 64 px test images; baseline: ResNet(), 70 epochs" in text
    assert f"Left out, trained with another recipe: {run_dir(cfg, 'flower_photos', 0)}" in text
    # an option recorded as None (left off) is the same recipe as a checkpoint made before the option existed
    newer = _results(0.86, 0.85, crops=48, epochs=70)
    newer["models"]["topdown"]["checkpoint"]["arch"]["init_args"]["head_width"] = None
    p = run_dir(cfg, "flower_photos", 2) / "eval" / "results.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps(newer))
    assert "2 of 3 seed(s) finished" in aggregate(cfg)


def test_each_dataset_can_name_its_own_training_configs(tmp_path: Path, monkeypatch) -> None:
    import topdown.experiment as experiment

    seen = []

    class Recorder:
        def __init__(self, cfg) -> None:
            seen.append(cfg)

        def run(self) -> None:
            pass

    monkeypatch.setattr(experiment, "Pipeline", Recorder)
    wide = ["configs/baseline.yaml", "configs/topdown_wide_head.yaml"]
    cfg = ExperimentConfig(
        out=str(tmp_path),
        results_md=str(tmp_path / "results.md"),
        runs=[
            DatasetRuns("flower_photos", seeds=[0, 1], eval=str(ROOT / "configs/eval/full.yaml"), vis={"steps": 64}),
            DatasetRuns(
                "flowers102",
                models=wide,
                train_configs=["configs/trainval.yaml"],
                eval=str(ROOT / "configs/eval/quick.yaml"),
                vis={"steps": 8},
            ),
        ],
    )
    experiment.run(cfg)
    # every run is trained before any is evaluated; then each run's other stages, one run after another
    runs = [("flower_photos", 0), ("flower_photos", 1), ("flowers102", 0)]
    rest = [s for s in DEFAULT_STAGES if s != "train"]
    order = [(c.stages, c.data.dataset, c.seed) for c in seen]
    assert order == [(["train"], *r) for r in runs] + [(rest, *r) for r in runs]
    assert seen[0].models == ["configs/baseline.yaml", "configs/topdown.yaml"]  # the pipeline's default
    assert seen[2].models == wide and seen[2].out == str(run_dir(cfg, "flowers102", 0))
    assert not seen[0].controls and not seen[0].accuracy_control  # no controls unless asked for
    # each dataset's own suite, visualizations and training configs, typed, reach its runs
    assert seen[0].recipe().eval == load_section(SuiteConfig, ROOT / "configs/eval/full.yaml")
    assert seen[2].recipe().eval == load_section(SuiteConfig, ROOT / "configs/eval/quick.yaml")
    assert (seen[0].recipe().vis.steps, seen[2].recipe().vis.steps) == (64, 8)
    assert (seen[0].train_configs, seen[2].train_configs) == ([], ["configs/trainval.yaml"])
    seen.clear()
    experiment.run(replace(cfg, controls=["configs/baseline_blur.yaml"], accuracy_control=True))
    assert all(c.controls == ["configs/baseline_blur.yaml"] and c.accuracy_control for c in seen)


def test_an_unknown_stage_is_a_one_line_error_before_any_work(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "exp"), "--stages", "[train, evalute]"])
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "stages" in err and "'evalute'" in err
    assert not (tmp_path / "exp").exists()


def test_controls_get_their_columns_autoattack_its_rows_and_the_verdicts_their_words(tmp_path: Path) -> None:
    cfg = _experiment(tmp_path, "flower_photos", [0, 1], out="runs")
    # top-down ahead of the baseline and of the blur control on both seeds, of the accuracy control on one
    worst = [
        {"baseline": 0.30, "topdown": 0.40, "blur_control": 0.32, "accuracy_control": 0.33},
        {"baseline": 0.28, "topdown": 0.42, "blur_control": 0.36, "accuracy_control": 0.45},
    ]
    for seed, (b, w) in enumerate(zip((0.86, 0.88), worst)):
        res = _with_controls(_results(b, b - 0.01), w)
        res["models"]["accuracy_control"]["checkpoint"]["epoch"] += 5 * seed  # each seed's nearest epoch
        _write(cfg, "flower_photos", seed, res)
    text = aggregate(cfg)
    assert "| metric | baseline | top-down | blur control | accuracy control |\n|---|---|---|---|---|\n" in text
    assert "| clean top-1 (%) | 87.0 ± 1.4 | 86.0 ± 1.4 | 87.0 ± 1.4 | 87.0 ± 1.4 |" in text
    values = "| 29.0 ± 1.4 | 41.0 ± 1.4 | 34.0 ± 2.8 | 39.0 ± 8.5 |"
    assert f"| worst-case L∞ accuracy at ε = 2/255, AutoAttack included (%) {values}" in text
    aa = "AutoAttack at L∞ ε = 2/255: robust accuracy"
    assert f"| {aa} with it, on its 100 images (%) {values}" in text
    without = "| 32.0 ± 1.4 | 43.0 ± 1.4 | 36.0 ± 2.8 | 41.0 ± 8.5 |"
    assert f"| {aa} without it (every other attack), same 100 images (%) {without}" in text
    row = "| AutoAttack at L∞ ε = 2/255: images only it broke (each seed) |"
    # each seed's count, then each attack's summed over the seeds
    assert f"{row} 3 · 3 (standard, over the seeds: apgd-ce 6) | 2 · 2 (standard, over the seeds: apgd-ce 4) |" in text
    assert "| sanity check: AutoAttack adds little (each seed) | pass · pass | pass · pass | pass · pass |" in text
    assert "| sanity checks passed (each seed) | 2/3 · 2/3 | 3/3 · 3/3 | 2/3 · 2/3 | 2/3 · 2/3 |" in text
    assert "the blur control (`blur_control`, BlurResNet(), 40 epochs)" in text
    assert "the accuracy control (`accuracy_control`, ResNet(), 25 · 30 epochs (each seed))" in text
    # the comparisons with each control, and which advantages survive them, in words computed from the numbers
    blur = text.split("Top-down against the blur control (computed):")[1].split("\n\n")[1].splitlines()
    strongest = about(blur, "strongest", "attack")
    assert says(strongest, "higher", "lower") == "higher" and numbers(strongest) == [7.0, 2, 1.4]
    verdict = sentences(next(line for line in text.splitlines() if line.startswith("- Worst-case accuracy at L∞")))
    without = about(verdict, "without AutoAttack")
    assert says(without, "ahead", "behind") == "ahead" and numbers(without) == [11.0, 2.8, 2]
    survives = ("survives in sign only", "survives", "mixed", "does not survive")
    autoattack = about(verdict, "survives", "AutoAttack")
    assert says(autoattack, *survives) == "survives" and numbers(autoattack) == [
        12.0,
        2.8,
        2,
        100,
        11.0,
        2.8,
        12.0,
        2.8,
    ]
    assert says(about(verdict, "sanity check"), "passed", "failed") == "passed"
    blur_verdict, acc_verdict = about(verdict, "blur control"), about(verdict, "accuracy control")
    assert says(blur_verdict, *survives) == "survives" and numbers(blur_verdict) == [7.0, 1.4, 2]
    assert says(acc_verdict, *survives) == "mixed" and numbers(acc_verdict)[:3] == [2.0, 7.1, 2]
    # every number links the committed copy of the file it comes from
    for seed in (0, 1):
        copy_ = published_dir(cfg, "flower_photos", seed) / "eval" / "results.json"
        assert copy_.read_bytes() == (run_dir(cfg, "flower_photos", seed) / "eval" / "results.json").read_bytes()
        assert f"seed {seed}: [results.json](runs/flower_photos/seed{seed}/eval/results.json)" in text
    # a control that one seed lacks: its column says so, and its verdict speaks of the seeds that have it
    lacking = _with_controls(_results(0.86, 0.85), worst[1])
    del lacking["models"]["accuracy_control"]
    _write(cfg, "flower_photos", 1, lacking)
    text = aggregate(cfg)
    assert "| blur control | accuracy control (1 of 2 seeds) |" in text
    verdict = sentences(next(line for line in text.splitlines() if line.startswith("- Worst-case accuracy at L∞")))
    acc_verdict = about(verdict, "accuracy control")
    assert says(acc_verdict, "survives", "mixed") == "survives" and numbers(acc_verdict)[:3] == [1, 2, 7.0]


def test_a_run_only_committed_under_docs_runs_is_aggregated(tmp_path: Path) -> None:
    cfg = _experiment(tmp_path, "flower_photos", [0, 1], out="outputs")
    assert published_dir(cfg, "flower_photos", 0) == tmp_path / "docs" / "runs" / "flower_photos" / "seed0"
    _write(cfg, "flower_photos", 0, _results(0.86, 0.85), published=True)  # a fresh clone: no outputs/
    _write(cfg, "flower_photos", 1, _results(0.88, 0.87))  # the other still in outputs/
    text = aggregate(cfg)
    assert "2 of 2 seed(s) finished" in text and str(published_dir(cfg, "flower_photos", 0)) in text
    assert "| clean top-1 (%) | 87.0 ± 1.4 | 86.0 ± 1.4 |" in text
    assert not run_dir(cfg, "flower_photos", 0).exists()
    assert (published_dir(cfg, "flower_photos", 1) / "eval" / "results.json").is_file()  # copied when read
    assert "seed 0: [results.json](runs/flower_photos/seed0/eval/results.json)" in text
    # a run in outputs/ is read from there, not from an older copy
    _write(cfg, "flower_photos", 0, _results(0.90, 0.89))
    assert "| clean top-1 (%) | 89.0 ± 1.4 | 88.0 ± 1.4 |" in aggregate(cfg)
    assert json.loads((published_dir(cfg, "flower_photos", 0) / "eval" / "results.json").read_text())["models"]


def test_each_finished_run_publishes_its_result_files_and_nothing_else(tmp_path: Path, monkeypatch) -> None:
    import topdown.experiment as experiment

    class Writer:
        def __init__(self, cfg) -> None:
            self.out, self.stages = Path(cfg.out), cfg.stages

        def run(self) -> None:
            (self.out / "train" / "baseline" / "checkpoints").mkdir(parents=True, exist_ok=True)
            (self.out / "train" / "baseline" / "checkpoints" / "last.ckpt").write_bytes(b"weights")
            if self.stages != ["train"]:
                rels = ("eval/results.json", "vis/vis.json", "findings/findings.json", "pipeline.json")
                for rel in (*rels, "eval/attacks_linf.png", "findings/cka.png"):
                    (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
                    (self.out / rel).write_text(json.dumps({"file": rel}))

    monkeypatch.setattr(experiment, "Pipeline", Writer)
    cfg = _experiment(tmp_path, "flower_photos", [0, 1], out="outputs")
    experiment.run(replace(cfg, stages=["train"]))
    assert not (tmp_path / "docs").exists()  # nothing evaluated, nothing to publish
    experiment.run(cfg)
    for seed in (0, 1):
        d = published_dir(cfg, "flower_photos", seed)
        files = sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())
        assert files == ["eval/results.json", "findings/findings.json", "pipeline.json", "vis/vis.json"]
        assert json.loads((d / "vis" / "vis.json").read_text()) == {"file": "vis/vis.json"}
    # seed 1 redone: evaluated, not yet visualized; its old nets' visualizations and findings are not left beside
    # the new suite result
    for rel in ("vis/vis.json", "findings/findings.json"):
        (run_dir(cfg, "flower_photos", 1) / rel).unlink()
    experiment.publish(cfg, "flower_photos", 1)
    d = published_dir(cfg, "flower_photos", 1)
    assert sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()) == [
        "eval/results.json",
        "pipeline.json",
    ]


def test_an_unfinished_run_carries_its_parts_to_another_machine_and_resumes_from_them(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """``--only carry`` copies an unfinished run's stored parts (never its checkpoints) beside its published files;
    on a machine without ``out`` the run gets them back before it starts (never over a part it has); once the run
    finishes and is published, the carried copy goes."""
    import topdown.experiment as experiment

    parts = ("eval/parts/baseline/clean.json", "eval/parts/topdown/clean.json", "vis/parts/baseline/classes.json")
    seen: list[dict[str, str]] = []

    class Writer:
        """Finds what a restarted run finds, then stores its parts; ``finish`` also writes the results."""

        finish = False

        def __init__(self, cfg) -> None:
            self.out, self.stages = Path(cfg.out), cfg.stages

        def run(self) -> None:
            seen.append({rel: (self.out / rel).read_text() for rel in parts if (self.out / rel).is_file()})
            (self.out / "train" / "last.ckpt").parent.mkdir(parents=True, exist_ok=True)
            (self.out / "train" / "last.ckpt").write_bytes(b"weights")
            if self.stages == ["train"]:
                return
            for rel in parts[:2] + ("pipeline.json",):
                (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
                (self.out / rel).write_text(json.dumps({"file": rel, "machine": str(self.out)}))
            if Writer.finish:
                for rel in experiment.PUBLISHED:
                    (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
                    (self.out / rel).write_text(json.dumps({"file": rel}))

    monkeypatch.setattr(experiment, "Pipeline", Writer)
    cfg = _experiment(tmp_path, "flower_photos", [0], out="first")
    experiment.run(cfg)
    cfg_file = tmp_path / "exp.yaml"
    cfg_file.write_text(
        json.dumps({"out": cfg.out, "runs": [{"dataset": "flower_photos"}], "results_md": cfg.results_md})
    )
    main(["--config", str(cfg_file), "--only", "carry"])
    assert "carried 3 file(s)" in capsys.readouterr().out
    carried = published_dir(cfg, "flower_photos", 0) / experiment.CARRY
    files = sorted(p.relative_to(carried).as_posix() for p in carried.rglob("*") if p.is_file())
    assert files == ["eval/parts/baseline/clean.json", "eval/parts/topdown/clean.json", "pipeline.json"]
    assert not (published_dir(cfg, "flower_photos", 0) / "eval" / "results.json").exists()  # nothing published

    # another machine: out is gone; one part it already holds is its own and stays
    second = replace(cfg, out=str(tmp_path / "second"))
    mine = run_dir(second, "flower_photos", 0) / parts[1]
    mine.parent.mkdir(parents=True)
    mine.write_text("its own")
    seen.clear()
    Writer.finish = True
    # trained on kernels this machine does not use: the restart says its parts will not match unless retrained so
    trained = {"stages": {"train/baseline": {"done": True, "cpu_capability": "OTHER"}}}
    (carried / "pipeline.json").write_text(json.dumps(trained))
    experiment.run(second)
    first_part = json.dumps({"file": parts[0], "machine": str(run_dir(cfg, "flower_photos", 0))})
    assert seen[0] == {parts[0]: first_part, parts[1]: "its own"}  # restored before training
    err = capsys.readouterr().err
    assert "1 carried part(s) restored" in err
    assert "trained on OTHER kernels and this process trains on " in err
    assert not carried.exists()  # finished and published: the carried copy is gone
    assert (published_dir(cfg, "flower_photos", 0) / "findings" / "findings.json").is_file()


def test_an_experiment_over_fewer_datasets_refuses_to_overwrite_the_page_before_any_work(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """A page holding flowers102 and synthetic is not rewritten by an experiment over flower_photos alone (it would
    drop them): one line naming them, before anything trains; a page of its own datasets is rewritten."""
    import topdown.experiment as experiment

    monkeypatch.setattr(experiment, "Pipeline", lambda cfg: pytest.fail("work started"))
    page = tmp_path / "results.md"
    page.write_text("# Results\n\n## flowers102\n\n## synthetic\n\n## What the visualizations found\n")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"out: {tmp_path / 'out'}\nresults_md: {page}\nruns:\n  - dataset: flower_photos\n")
    with pytest.raises(SystemExit):
        experiment.main(["--config", str(cfg)])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: results_md:") and "flowers102, synthetic" in line
    assert "## flowers102" in page.read_text()
    page.write_text("# Results\n\n## flower_photos\n")
    experiment.main(["--config", str(cfg), "--only", "aggregate"])  # no run finished: the page is kept
    assert "left as it is" in capsys.readouterr().err


def test_adopt_published_hands_a_run_its_published_suite_result(tmp_path: Path, monkeypatch) -> None:
    """With ``adopt_published`` each run whose suite result is published is told to adopt it (the pipeline checks
    that its nets score as recorded); a run with none, or without the option, runs the suite."""
    import topdown.experiment as experiment

    seen: dict[tuple[int, bool], str | None] = {}

    class Recorder:
        def __init__(self, cfg) -> None:
            seen[(cfg.seed, adopting)] = cfg.adopt_eval

        def run(self) -> None:
            pass

    monkeypatch.setattr(experiment, "Pipeline", Recorder)
    cfg = _experiment(tmp_path, "flower_photos", [0, 1])
    published = published_dir(cfg, "flower_photos", 0) / "eval" / "results.json"
    published.parent.mkdir(parents=True)
    published.write_text("{}")
    for adopting in (True, False):
        experiment.run(replace(cfg, adopt_published=adopting))
    assert seen == {(0, True): str(published), (1, True): None, (0, False): None, (1, False): None}


def _findings(rows: dict[str, dict[str, tuple[float, float]]]) -> dict:
    """A findings.json whose comparisons are ``{other: {figure key: (difference, p)}}``."""
    comparisons = {
        other: {
            key: {"label": key, "kind": "share", "topdown": 0.5 + d, other: 0.5, "difference": d, "p": p}
            for key, (d, p) in figs.items()
        }
        for other, figs in rows.items()
    }
    models = {"baseline": {}, "topdown": {}, **{o: {} for o in rows}}
    return {"subject": "topdown", "images": 64, "models": models, "comparisons": comparisons}


def test_what_the_visualizations_found_takes_every_seed_and_every_control(tmp_path: Path) -> None:
    cfg = _experiment(tmp_path, "synthetic", [0, 1], out="outputs")
    seeds = [
        {
            "baseline": {"loc.grad_cam_last.inside": (0.2, 1e-4), "loc.guided_backprop.inside": (-0.1, 1e-3)},
            "blur_control": {"loc.grad_cam_last.inside": (0.1, 0.01), "loc.guided_backprop.inside": (0.1, 0.2)},
        },
        {
            "baseline": {"loc.grad_cam_last.inside": (0.1, 1e-3), "loc.guided_backprop.inside": (-0.2, 1e-4)},
            "blur_control": {"loc.grad_cam_last.inside": (0.2, 0.01), "loc.guided_backprop.inside": (-0.1, 0.2)},
        },
    ]
    for seed, rows in enumerate(seeds):
        _write(cfg, "synthetic", seed, _results(0.9, 0.9), published=True)
        path = published_dir(cfg, "synthetic", seed) / "findings" / "findings.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(_findings(rows)))
    text = aggregate(cfg)
    section = text[text.index("## What the visualizations found") :]
    assert "### synthetic: 2 seed(s), 64 test images each" in section
    assert "| topdown vs baseline | topdown vs blur_control |" in section
    assert "| loc.grad_cam_last.inside | 0.70 · 0.60 | 0.50 · 0.50 | 0.0001 · 0.001 | higher | higher |" in section
    assert "| loc.guided_backprop.inside | 0.40 · 0.30 | 0.50 · 0.50 | 0.001 · 0.0001 | lower | mixed |" in section
    claims = [line for line in section.splitlines() if line.startswith("- ")]
    assert "supports the paper" in claims[0] and "against the blur control: higher" in claims[0]
    assert "contradicts the paper" in claims[1] and "against the blur control: mixed" in claims[1]


def test_a_rebuilt_report_alone_does_not_rewrite_the_published_pipeline_json(tmp_path: Path) -> None:
    """Every pass rebuilds the report of finished runs; the committed copy changes only when a result did."""
    cfg = _experiment(tmp_path, "flower_photos", [0], out="outputs")
    _write(cfg, "flower_photos", 0, _results(0.86, 0.85))
    state = {"stages": {"evaluate": {"done": True, "seconds": 100.0}, "report": {"done": True, "seconds": 0.4}}}
    src = run_dir(cfg, "flower_photos", 0) / "pipeline.json"
    copy_ = published_dir(cfg, "flower_photos", 0) / "pipeline.json"
    src.write_text(json.dumps(state))
    aggregate(cfg)
    assert json.loads(copy_.read_text()) == state
    state["stages"]["report"]["seconds"] = 0.3
    src.write_text(json.dumps(state))
    aggregate(cfg)
    assert json.loads(copy_.read_text())["stages"]["report"]["seconds"] == 0.4  # left as it was
    state["stages"]["evaluate"]["seconds"] = 120.0
    src.write_text(json.dumps(state))
    aggregate(cfg)
    assert json.loads(copy_.read_text()) == state  # a real change is published, the new report time with it


def test_aggregate_keeps_an_existing_page_when_no_run_is_found(tmp_path):
    """On a fresh machine with neither the runs nor their published copies, the page stays as it is."""
    from topdown.experiment import DatasetRuns, ExperimentConfig, aggregate

    page = tmp_path / "results.md"
    page.write_text("# measured before\n")
    cfg = ExperimentConfig(out=str(tmp_path / "none"), runs=[DatasetRuns("flower_photos")], results_md=str(page))
    aggregate(cfg)
    assert page.read_text() == "# measured before\n"


def test_autoattack_extra_breaks_read_per_seed_and_per_attack_over_the_seeds() -> None:
    def aa(extra: int, ce: int, t: int) -> AutoAttack:
        attacks = {"apgd-ce": {"n_broken": ce}, "apgd-t": {"n_broken": t}}
        return AutoAttack({"extra_broken": extra, "version": "custom", "attacks": attacks})

    assert _broke([aa(9, 6, 3)]) == "9 (custom: apgd-ce 6, apgd-t 3)"
    assert _broke([aa(9, 6, 3), None, aa(4, 2, 2)]) == "9 · – · 4 (custom, over the seeds: apgd-ce 8, apgd-t 5)"
    assert _broke([None, None]) == "– · –"


def test_the_headline_config_types_every_runs_sections() -> None:
    cfg = parse_experiment(["--config", str(ROOT / "configs/experiment/headline.yaml")])
    runs = {r.dataset: r for r in cfg.runs}
    assert runs["flower_photos"].eval == load_section(SuiteConfig, ROOT / "configs/eval/full.yaml")
    assert runs["synthetic"].eval == load_section(SuiteConfig, ROOT / "configs/eval/demo.yaml")
    syn = runs["synthetic"].vis
    assert (syn.steps, syn.channels, syn.dissection.images, runs["flower_photos"].vis.steps) == (48, 8, 300, 128)
    assert runs["flowers102"].train_configs == ["configs/trainval.yaml"]


def test_the_redo_config_reruns_headline_runs_with_their_own_recipe_and_publishes_beside_them() -> None:
    """configs/experiment/headline_redo.yaml reruns some of the headline's runs: each with the headline's settings
    for its dataset (suite, visualizations, training) and controls, published where the headline page reads them,
    while writing a page of its own (the headline's holds every dataset)."""
    head = parse_experiment(["--config", str(ROOT / "configs/experiment/headline.yaml")])
    redo = parse_experiment(["--config", str(ROOT / "configs/experiment/headline_redo.yaml")])
    recipes = {r.dataset: replace(r, seeds=[]) for r in head.runs}
    assert redo.runs and all(replace(r, seeds=[]) == recipes[r.dataset] for r in redo.runs)
    seeds = {r.dataset: set(r.seeds) for r in head.runs}
    assert all(set(r.seeds) <= seeds[r.dataset] for r in redo.runs)
    assert (redo.out, redo.controls, redo.accuracy_control) == (head.out, head.controls, head.accuracy_control)
    assert Path(redo.published) == Path(head.results_md).parent / "runs" and redo.results_md != head.results_md


def test_a_bad_run_stops_the_experiment_before_any_training(tmp_path: Path, monkeypatch, capsys) -> None:
    """The last run's typo is found before the first run trains (hours earlier than its own turn)."""
    from topdown import experiment

    started = []
    monkeypatch.setattr(experiment.Pipeline, "run", lambda self: started.append(self))
    config = tmp_path / "exp.yaml"
    config.write_text(
        f"out: {tmp_path / 'out'}\n"
        "runs:\n"
        "  - {dataset: synthetic, seeds: [0]}\n"
        "  - {dataset: flower_photos, seeds: [0], train_configs: [configs/no_such.yaml]}\n"
    )
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(config)])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 1 and line.startswith("error:") and "configs/no_such.yaml" in line
    assert not started
    config.write_text(f"out: {tmp_path / 'out'}\nruns:\n  - {{dataset: synthetic, vis: {{methods: [nope]}}}}\n")
    with pytest.raises(SystemExit):
        main(["--config", str(config)])
    assert "nope" in capsys.readouterr().err.strip().splitlines()[-1] and not started
