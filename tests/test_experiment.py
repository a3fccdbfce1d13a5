"""The headline experiment's aggregation: mean ± std across seeds, targets, and what has not run yet."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from topdown.experiment import DatasetRuns, ExperimentConfig, aggregate, main, run_dir
from topdown.pipeline import STAGES


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
    assert "baseline top-1 ≥ 85%: 87.0%, met; top-down within 1 point(s) of it: -1.0 points, met" in text
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
        runs=[DatasetRuns("flower_photos", seeds=[0, 1]), DatasetRuns("flowers102", models=wide)],
    )
    experiment.run(cfg)
    # every run is trained before any is evaluated; then each run's other stages, one run after another
    runs = [("flower_photos", 0), ("flower_photos", 1), ("flowers102", 0)]
    rest = [s for s in STAGES if s != "train"]
    assert [(c.stages, c.dataset, c.seed) for c in seen] == [(["train"], *r) for r in runs] + [(rest, *r) for r in runs]
    assert seen[0].models == ["configs/baseline.yaml", "configs/topdown.yaml"]  # the pipeline's default
    assert seen[2].models == wide and seen[2].out == str(run_dir(cfg, "flowers102", 0))


def test_an_unknown_stage_is_a_one_line_error_before_any_work(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "exp"), "--stages", "[train, evalute]"])
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "stages" in err and "'evalute'" in err
    assert not (tmp_path / "exp").exists()
