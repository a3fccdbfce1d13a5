"""The main job end to end on a tiny schedule: train both nets, evaluate, visualize, report; then resume."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, tiny_train_config

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
    "autoattack": {
        "budgets": [{"norm": "linf", "eps": 0.03, "attacks": ["apgd-ce", "square"]}],
        "apgd_steps": 3,
        "square_queries": 20,
    },
    "decision": None,
    "perturbations": {"levels": {"gaussian_noise": [0.0, 0.2]}},
    "scales": {"noise_sigmas": [0.2], "pgd_epsilons": []},
    "corruptions": {"names": ["jpeg"], "severities": [5]},
    "sanity": {"double_steps": False},
}
TINY_VIS = {
    "steps": 6,
    "channels": 3,
    "images": 4,
    "reference": 32,
    "methods": ["classes", "channels", "dictionary", "attribution", "pyramid_attribution"],
}
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
    "findings",
)


def _config(tmp_path: Path, epochs: int = 1, vis: dict | None = None, **data: object) -> Path:
    """configs/pipeline.yaml with tiny nets (a training config of its own), the tiny suite and visualizations."""
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(TINY_SUITE))
    cfg = yaml.safe_load((ROOT / "configs" / "pipeline.yaml").read_text())
    for recipe in cfg["per_dataset"].values():  # paths relative to configs/, where the copy is not
        recipe["eval"] = str(ROOT / "configs" / recipe["eval"])
    cfg["per_dataset"]["synthetic"].update(eval=str(tmp_path / "suite.yaml"), vis=vis or TINY_VIS)
    train = tiny_train_config(tmp_path / "tiny.yaml", **data)
    cfg.update(out=str(tmp_path / "run"), epochs=epochs, train_configs=[str(train)])
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_main_job_runs_end_to_end_and_resumes_without_redoing_stages(
    tmp_path: Path, capsys, browser_required: bool
) -> None:
    cfg = _config(tmp_path)
    report = main(["--config", str(cfg)])
    out = tmp_path / "run"
    assert report == out / "report.html" and report.is_file()
    assert str(report.resolve()) in capsys.readouterr().out  # the path is printed for the user

    state = json.loads((out / "pipeline.json").read_text())
    stages = ("train/baseline", "train/topdown", "evaluate", "visualize", "findings")
    assert all(state["stages"][k]["done"] for k in stages)
    findings = json.loads((out / "findings" / "findings.json").read_text())
    assert set(findings["models"]) == {"baseline", "topdown"} and findings["comparisons"]["baseline"]
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
    elif browser_required:
        pytest.fail("chromium and chromedriver are required here (--require-browser)")

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
    assert first["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # the kernels it trained on
    assert results["environment"]["cpu_capability"] == first["cpu_capability"]
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
    assert "redo: visualize, findings, report will run again" in capsys.readouterr().err
    after = {p: p.stat().st_mtime_ns for p in stamps}
    assert after[out / "vis" / "vis.json"] != stamps[out / "vis" / "vis.json"]
    assert report.stat().st_mtime_ns != report_stamp
    assert {p: t for p, t in after.items() if p.parent.name != "vis"} == {
        p: t for p, t in stamps.items() if p.parent.name != "vis"
    }
    with pytest.raises(SystemExit):
        main(["--config", str(cfg), "--redo", "[train]"])
    assert "redo: train cannot be redone in place" in capsys.readouterr().err

    # The checkpoints lost, the published suite result stands for the same recipe retrained: the retrained nets
    # score every test image as it records (training is reproducible on one machine), so it is adopted as is.
    retrained = tmp_path / "retrained"
    args = ["--config", str(cfg), "--out", str(retrained), "--stages", "[train, evaluate]"]
    main([*args, "--adopt_eval", str(out / "eval" / "results.json")])
    assert "its results adopted" in capsys.readouterr().err
    adopted = json.loads((retrained / "eval" / "results.json").read_text())
    assert adopted["adopted"]["from"] == str(out / "eval" / "results.json")
    for name, model in results["models"].items():
        assert adopted["models"][name]["worst_case"] == model["worst_case"]
        assert adopted["models"][name]["checkpoint"]["adopted_from"] == model["checkpoint"]
    assert not (retrained / "eval" / "parts").exists()  # no part of the suite ran


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


def test_a_cut_down_main_job_learns_and_ends_with_what_it_found(tmp_path: Path, capsys) -> None:
    """The default main job cut down to tiny nets on 1200 procedural flowers at 32 px (about a minute).

    At 32 px the fine patterns are nearly gone (see ``topdown.data.synthetic``), so the nets can tell the
    3 coarse forms apart and little more: 50% is the ceiling of this size, chance is 1/6. Both nets must
    reach 30% (the tiny nets reach 43% and 47% here). The full-sized job's ≥ 95% is measured by
    ``benchmarks/bench_main_job.py``.
    """
    path = _config(tmp_path, epochs=8, vis={**TINY_VIS, "methods": ["classes"]}, synthetic_size=1200)
    report = main(["--config", str(path)])
    printed = capsys.readouterr()

    results = json.loads((tmp_path / "run" / "eval" / "results.json").read_text())["models"]
    for name in ("baseline", "topdown"):
        assert results[name]["clean"]["n"] == 180
        assert results[name]["clean"]["top1"] >= 0.30, (name, results[name]["clean"])

    # A stage bar line as each of the 6 units starts, with the time elapsed and, from the estimates, left.
    lines = printed.err.splitlines()
    units = ["train baseline", "train topdown", "evaluate", "visualize", "findings", "report"]
    for k, unit in enumerate(units, start=1):
        line = next(x for x in lines if f"[{k}/6] {unit}" in x)
        assert "elapsed, about" in line and "left" in line, line
    # The closing table: what results.json and vis.json hold, per net, then the report's path.
    table = printed.err[printed.err.index("what the job found") :]
    row = next(x for x in table.splitlines() if "clean top-1 (%)" in x)
    assert all(f"{100 * results[n]['clean']['top1']:.1f}" in row for n in ("baseline", "topdown")), row
    for label in ("weakest class", "worst-case L∞", "mCE", "sanity checks passed", "quality figures", "180 test"):
        assert label in table, label
    assert printed.out.strip().splitlines()[-1] == str(report.resolve())
    assert "report:" in printed.err.splitlines()[-1]


def test_controls_are_trained_alike_and_evaluated_beside_the_two(tmp_path: Path) -> None:
    """The blur control is trained with the same recipe; the accuracy control is the baseline's epoch whose
    validation accuracy is nearest the top-down net's final one; both are evaluated with the same suite."""
    from topdown.accuracy_control import epoch_val_acc
    from topdown.checkpoint import load_model

    cfg = yaml.safe_load(_config(tmp_path).read_text())
    cfg.update(epochs=3, stages=["train", "evaluate"], controls=["configs/baseline_blur.yaml"], accuracy_control=True)
    path = tmp_path / "controls.yaml"
    path.write_text(yaml.safe_dump(cfg))
    main(["--config", str(path)])
    out = tmp_path / "run"
    results = json.loads((out / "eval" / "results.json").read_text())
    assert list(results["models"]) == ["baseline", "topdown", "blur_control", "accuracy_control"]
    blur = results["models"]["blur_control"]["checkpoint"]["arch"]["init_args"]
    assert blur["input_lowpass"] == 2 and blur["widths"] == [8, 16, 32]  # the tiny recipe, like the others

    chosen = json.loads((out / "pipeline.json").read_text())["accuracy_control"]
    curve = epoch_val_acc(out / "train" / "baseline")
    target = epoch_val_acc(out / "train" / "topdown")[2]
    assert sorted(curve) == [0, 1, 2] and chosen["target_val_acc"] == pytest.approx(target)
    assert abs(chosen["val_acc"] - target) == pytest.approx(min(abs(v - target) for v in curve.values()))
    kept = sorted(p.name for p in (out / "train" / "baseline" / "checkpoints" / "epochs").glob("*.ckpt"))
    assert kept == ["epoch000.ckpt", "epoch001.ckpt", "epoch002.ckpt"]
    assert not (out / "train" / "topdown" / "checkpoints" / "epochs").exists()  # only the baseline keeps them
    control = load_model(chosen["checkpoint"])
    assert control.epoch == chosen["epoch"]
    assert results["models"]["accuracy_control"]["checkpoint"]["epoch"] == chosen["epoch"]
    assert chosen["chosen_on"] == "val"

    # Nets trained on the validation images too (Flowers102's trainval): the epoch is chosen on test top-1, each
    # measured once and kept in pipeline.json.
    import torch

    from topdown.checkpoint import rebuild_data
    from topdown.metrics import clean_metrics
    from topdown.pipeline import Pipeline, PipelineConfig
    from topdown.snapshots import snapshot_name

    fields = {k: v for k, v in cfg.items() if k in PipelineConfig.__dataclass_fields__}
    pipe = Pipeline(PipelineConfig(**fields))
    del pipe.state["accuracy_control"]
    pipe._trained_on_validation = lambda name: True  # type: ignore[method-assign]
    on_test = pipe.accuracy_control()
    data = rebuild_data(control.data)

    def top1(path: Path | str) -> float:
        return clean_metrics(load_model(path).net, data.subset("test"), data.classes, 64, torch.device("cpu"))["top1"]

    goal = top1(out / "train" / "topdown" / "checkpoints" / "last.ckpt")
    accs = {e: top1(out / "train" / "baseline" / "checkpoints" / "epochs" / snapshot_name(e)) for e in range(3)}
    assert on_test["chosen_on"] == "test" and on_test["target_test_top1"] == pytest.approx(goal)
    assert on_test["epoch"] == min(accs, key=lambda e: (abs(accs[e] - goal), -e))
    assert on_test["test_top1"] == pytest.approx(accs[on_test["epoch"]])
    saved = json.loads((out / "pipeline.json").read_text())
    assert saved["accuracy_control"] == on_test and len(saved["accuracy_control_test_top1"]) == 4


def test_the_accuracy_control_search_finds_the_nearest_epoch_measuring_few() -> None:
    from topdown.accuracy_control import nearest_epoch

    rising = {e: 0.3 + 0.5 * (1 - 0.97**e) for e in range(90)}  # a one-cycle run's accuracy, rising
    for goal in (0.2, 0.45, 0.5537, 0.71, 0.79, 0.9):
        calls: list[int] = []
        got = nearest_epoch(list(rising), goal, lambda e, calls=calls: calls.append(e) or rising[e])
        assert got == min(rising, key=lambda e: (abs(rising[e] - goal), -e)), goal
        assert len(calls) == len(set(calls)) <= 19 + 8  # each once: every 5th and the last, then 8 beside
    # on a tie, the later epoch; a single epoch; none is an error
    assert nearest_epoch([0, 1, 2, 3], 0.5, {0: 0.4, 1: 0.55, 2: 0.55, 3: 0.3}.__getitem__, stride=1) == 2
    assert nearest_epoch([7], 0.5, lambda e: 0.1) == 7
    with pytest.raises(ValueError, match="no epochs"):
        nearest_epoch([], 0.5, lambda e: 0.1)


def test_the_stage_bar_scales_its_estimates_by_how_fast_the_finished_stages_went() -> None:
    from rich.console import Console

    from topdown.stages import StageBar

    bar = StageBar(
        ["train/baseline", "train/topdown", "evaluate", "report"],
        {"train": 100.0, "evaluate": 50.0, "report": 10.0},
        Console(width=120, file=io.StringIO()),
    )
    assert bar.left() == pytest.approx(260.0) and bar.fraction() == 0.0
    bar.finish("train/baseline", 200.0)  # twice as slow as estimated: the rest will be too
    assert bar.left() == pytest.approx(2 * 160.0)
    assert bar.fraction() == pytest.approx(100 / 260)
    bar.skip("train/topdown")  # finished by an earlier run: neither work left nor work done
    assert bar.left() == pytest.approx(2 * 60.0)
    assert bar.fraction() == pytest.approx(100 / 160)
    # A stage without an estimate makes the time left unknown, not wrong; the bar then counts stages.
    unknown = StageBar(["train/baseline", "evaluate"], {"train": 100.0}, Console(file=io.StringIO()))
    assert unknown.left() is None
    unknown.finish("train/baseline", 80.0)
    assert unknown.fraction() == 0.5


def test_the_closing_table_quotes_the_suites_headline_epsilon() -> None:
    from topdown.report.metrics import headline_eps

    sweep = {"linf_epsilons": [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255]}
    assert headline_eps({"suite": {"attacks": sweep}}) == pytest.approx(2 / 255)
    budgets = {"budgets": [{"norm": "l2", "eps": 0.5}, {"norm": "linf", "eps": 4 / 255}]}
    assert headline_eps({"suite": {"attacks": sweep, "autoattack": budgets}}) == pytest.approx(4 / 255)
    assert headline_eps({"suite": {"attacks": {"linf_epsilons": [0.0, 0.01, 0.03, 0.05]}}}) == 0.03
    assert headline_eps({"suite": {"attacks": None}}) is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"per_dataset": {"synthetic": {"eval": {"subsett": 3}}}}, "subsett"),
        ({"per_dataset": {"synthetic": {"vis": {"methods": ["classes", "nope"]}}}}, "nope"),
        ({"per_dataset": {"synthetic": {"eval": "missing_suite.yaml"}}}, "missing_suite.yaml"),
        ({"per_dataset": {"flowers102": {}}}, "synthetic"),
        ({"train_configs": ["configs/no_such.yaml"]}, "configs/no_such.yaml"),
        ({"adopt_eval": "no/results.json"}, "no/results.json"),
    ],
    ids=["suite key", "vis method", "suite file", "no entry", "train config", "adopted results"],
)
def test_a_bad_setting_stops_the_job_before_any_work(tmp_path: Path, capsys, change: dict, named: str) -> None:
    """Every section is typed and checked before training starts: a typo costs a second, not an hour."""
    cfg = yaml.safe_load(_config(tmp_path).read_text())
    if "per_dataset" in change and "synthetic" in change["per_dataset"]:
        cfg["per_dataset"]["synthetic"] = {**cfg["per_dataset"]["synthetic"], **change["per_dataset"]["synthetic"]}
    elif "per_dataset" in change:
        cfg["per_dataset"] = change["per_dataset"]
    else:
        cfg.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error:") and named in line, line
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written


def test_data_options_are_spelled_as_everywhere_else(tmp_path: Path, capsys) -> None:
    """``--data.dataset`` / ``--data.root`` as in train.py and evaluate.py (``data: {dataset, root}`` in YAML), and
    no second spelling; a wrong dataset is one line naming it."""
    from topdown.pipeline import parse_pipeline

    cfg = parse_pipeline(["--config", "configs/pipeline.yaml", "--data.dataset", "flower_photos", "--data.root", "/im"])
    assert (cfg.data.dataset, cfg.data.root, cfg.out) == ("flower_photos", "/im", "outputs/flower_photos")
    for argv, named in ((["--data.dataset", "nope"], "nope"), (["--dataset", "flower_photos"], "--dataset")):
        with pytest.raises(SystemExit):
            main(["--out", str(tmp_path / "x"), *argv])
        err = capsys.readouterr().err
        error = err.strip().splitlines()[-1]
        assert error.startswith("error:") and named in error and "Traceback" not in err
        assert not (tmp_path / "x").exists()
