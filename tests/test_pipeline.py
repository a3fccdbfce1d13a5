"""The main job end to end on a tiny schedule: train both nets, evaluate, visualize, report; then resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, TINY_TRAIN_ARGS

from topdown.pipeline import main
from topdown.report.browser import browser_available, check_page

TINY_SUITE = {
    "subset": 12,
    "batch_size": 12,
    "attacks": {
        "linf_epsilons": [0.0, 0.03],
        "l2_epsilons": [0.0, 1.0],
        "linf_pgd": {"steps": 2},
        "l2_pgd": None,
        "deepfool": {"steps": 5},
        "fmn": None,
    },
    "decision": None,
    "perturbations": {"levels": {"gaussian_noise": [0.0, 0.2]}},
    "scales": {"noise_sigmas": [0.2], "pgd_epsilons": []},
    "corruptions": {"names": ["jpeg"], "severities": [5]},
    "sanity": {"double_steps": False},
}
TINY_VIS = [
    "--steps",
    "6",
    "--channels",
    "3",
    "--images",
    "4",
    "--reference",
    "32",
    "--progress",
    "false",
    "--methods",
    "[classes, channels, dictionary, attribution, pyramid_attribution]",
]
SECTIONS = (
    "conclusions",
    "setup",
    "cost",
    "accuracy",
    "attacks",
    "perturbations",
    "corruptions",
    "scales",
    "sanity",
    "vis",
)


def _config(tmp_path: Path) -> Path:
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(TINY_SUITE))
    cfg = yaml.safe_load((ROOT / "configs" / "pipeline.yaml").read_text())
    cfg.update(
        out=str(tmp_path / "run"), epochs=1, train_args=TINY_TRAIN_ARGS, eval_config=str(suite), vis_args=TINY_VIS
    )
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_main_job_runs_end_to_end_and_resumes_without_redoing_stages(tmp_path: Path, capsys) -> None:
    cfg = _config(tmp_path)
    report = main(["--config", str(cfg)])
    out = tmp_path / "run"
    assert report == out / "report.html" and report.is_file()
    assert str(report.resolve()) in capsys.readouterr().out  # the path is printed for the user

    state = json.loads((out / "pipeline.json").read_text())
    assert all(state["stages"][k]["done"] for k in ("train/baseline", "train/topdown", "evaluate", "visualize"))
    results = json.loads((out / "eval" / "results.json").read_text())
    assert list(results["models"]) == ["baseline", "topdown"]
    html = report.read_text()
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    # Both models stand side by side in the tables, and the conclusions are sentences, not placeholders.
    assert html.count(">baseline<") >= 3 and html.count(">topdown<") >= 3
    assert '<ul class="conclusions">' in html and "No evaluation" not in html and "No visualizations" not in html

    # A real browser opens it offline: every image loads, no console error, every section is there.
    if browser_available():
        page = check_page(report, screenshot=tmp_path / "report.png")
        assert page.ok, (page.broken_images, page.console_errors)
        assert page.images >= 10 and set(SECTIONS) <= set(page.sections)
        assert page.screenshot.stat().st_size > 10_000
    elif os.environ.get("TOPDOWN_REQUIRE_BROWSER"):
        pytest.fail("chromium and chromedriver are required here (TOPDOWN_REQUIRE_BROWSER is set)")

    # Running the same command again skips every finished stage: nothing is retrained or re-evaluated.
    stamps = {
        p: p.stat().st_mtime_ns
        for p in [*out.glob("train/*/checkpoints/last.ckpt"), out / "eval" / "results.json", out / "vis" / "vis.json"]
    }
    assert len(stamps) == 4
    main(["--config", str(cfg)])
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert "train baseline: done" in capsys.readouterr().err

    # A finished training run that pipeline.json does not know of (copied in, or interrupted just after
    # training) is picked up without training again; its validation accuracy, training time and throughput
    # come from the checkpoint, not from the call that found it finished.
    first = state["stages"]["train/topdown"]
    state["stages"] = {k: v for k, v in state["stages"].items() if k != "train/topdown"}
    (out / "pipeline.json").write_text(json.dumps(state))
    main(["--config", str(cfg), "--stages", "[train]"])
    again = json.loads((out / "pipeline.json").read_text())["stages"]["train/topdown"]
    assert again["epochs"] == first["epochs"] == 1
    assert first["train_seconds"] > 0 and first["train_images_per_s"] > 0
    assert (again["train_seconds"], again["train_images_per_s"]) == (
        first["train_seconds"],
        first["train_images_per_s"],
    )
    assert again["val_acc"] == pytest.approx(first["val_acc"])
    assert (out / "train" / "topdown" / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamps[
        out / "train" / "topdown" / "checkpoints" / "last.ckpt"
    ]

    # --redo reruns a finished stage and every later one, and nothing before it.
    report_stamp = report.stat().st_mtime_ns
    main(["--config", str(cfg), "--redo", "[visualize]"])
    assert "redo: visualize, report will run again" in capsys.readouterr().err
    after = {p: p.stat().st_mtime_ns for p in stamps}
    assert after[out / "vis" / "vis.json"] != stamps[out / "vis" / "vis.json"]
    assert report.stat().st_mtime_ns != report_stamp
    assert {p: t for p, t in after.items() if p.parent.name != "vis"} == {
        p: t for p, t in stamps.items() if p.parent.name != "vis"
    }
    with pytest.raises(SystemExit):
        main(["--config", str(cfg), "--redo", "[train]"])
    assert "redo: train cannot be redone in place" in capsys.readouterr().err


def test_main_job_refuses_a_folder_of_another_dataset(tmp_path: Path, capsys) -> None:
    cfg = _config(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "pipeline.json").write_text(json.dumps({"config": {"dataset": "flower_photos"}, "stages": {}}))
    try:
        main(["--config", str(cfg)])
    except SystemExit as err:
        assert err.code == 1
    else:
        raise AssertionError("expected the pipeline to refuse the folder")
    assert "flower_photos" in capsys.readouterr().err
