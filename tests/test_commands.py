"""Every command handles errors one way: the project's own errors (a bad setting, a missing or corrupt file) print
as one ``error:`` line with exit status 1, a bug keeps its traceback, and ``TOPDOWN_TRACEBACK`` shows it anyway;
the pipeline runs under a profiler; the package has no import cycle; the benchmarks that measure the house and
the main job read what they measure."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from topdown import experiment, pipeline
from topdown.errors import ConfigError, run_command
from topdown.store import PartStore

ROOT = Path(__file__).resolve().parents[1]


def _house():
    spec = importlib.util.spec_from_file_location("house", ROOT / "benchmarks" / "house.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_user_error_is_one_line_and_a_bug_keeps_its_traceback(capsys, monkeypatch) -> None:
    def bad_setting(argv):
        raise ConfigError(f"steps: must be >= 0, got {argv[0]}")

    monkeypatch.delenv("TOPDOWN_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exit_:
        run_command(bad_setting, ["-3"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err == "error: steps: must be >= 0, got -3\n"

    def bug(argv):
        raise ValueError("an internal shape mismatch")

    with pytest.raises(ValueError, match="internal shape mismatch"):  # not swallowed into a friendly line
        run_command(bug, [])
    monkeypatch.setenv("TOPDOWN_TRACEBACK", "1")
    with pytest.raises(ConfigError):
        run_command(bad_setting, ["-3"])


@pytest.mark.parametrize(
    ("main", "args", "names"),
    [
        (pipeline.main, ["--stages", "[train, paint]"], ["stages", "paint"]),
        (pipeline.main, ["--data.dataset", "tulips"], ["dataset", "tulips"]),
        (experiment.main, ["--only", "everything"], ["only", "everything"]),
        (experiment.main, ["--redo", "[nothing]"], ["nothing"]),
    ],
)
def test_every_command_refuses_bad_options_in_one_line(main, args, names, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("TOPDOWN_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--out", str(tmp_path / "out")])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and all(n in err for n in names), err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_the_pipeline_runs_under_a_profiler(tmp_path) -> None:
    # `python -m cProfile -m topdown.pipeline` keeps cProfile's own `__main__` module: the pipeline's typed
    # sections (eval/demo.yaml nested in the config) must resolve all the same
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(tmp_path / "job.prof"), "-m", "topdown.pipeline"]
    cmd += ["--config", "configs/pipeline.yaml", "--out", str(out), "--stages", "[]"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    recipe = json.loads((out / "pipeline.json").read_text())["config"]["per_dataset"]["synthetic"]
    assert recipe["eval"]["subset"] == 64  # configs/eval/demo.yaml, read through the nested path
    assert (tmp_path / "job.prof").stat().st_size > 0


def test_the_package_has_no_import_cycle() -> None:
    house = _house()
    assert house.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # it finds one
    graph = house.import_graph()
    assert "topdown.store" in graph["topdown.robustness.cli"]  # read from a function-local import
    assert house.cycles(graph) == []


def test_the_main_job_benchmark_names_where_the_time_went_slowest_first(tmp_path, monkeypatch, capsys) -> None:
    """bench_main_job.py reads the suite's stored parts and vis.json as the job writes them and lists the slowest
    first, each with its share of its stage: where a trim of the job would pay."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    bench = importlib.import_module("bench_main_job")

    store = PartStore(tmp_path / "eval")
    for model, part, seconds in [("baseline", "fgsm", 1.0), ("topdown", "linf_pgd", 6.0), ("topdown", "clean", 3.0)]:
        store.save(model, part, "fp", {"time_s": seconds, "accuracy": [0.5]})
    store.save("baseline", "subset", "fp", {"indices": [1, 2]})  # a part without a time is left out
    vis = {"models": {"baseline": {"methods": {"classes": {"seconds": 4.0}, "naive": {"seconds": 1.0}}}}}
    (tmp_path / "vis").mkdir()
    (tmp_path / "vis" / "vis.json").write_text(json.dumps(vis))

    heaviest = bench._heaviest(tmp_path)
    assert heaviest["evaluate"] == [("topdown/linf_pgd", 6.0), ("topdown/clean", 3.0), ("baseline/fgsm", 1.0)]
    assert heaviest["visualize"] == [("baseline/classes", 4.0), ("baseline/naive", 1.0)]
    bench._print_heaviest(tmp_path, most=2)
    printed = capsys.readouterr().out
    assert "evaluate: 3 parts, 10 s in all" in printed and "visualize: 2 parts, 5 s in all" in printed
    evaluate = printed[printed.index("evaluate:") : printed.index("visualize:")]
    assert "topdown/linf_pgd" in evaluate and "60%" in evaluate and "baseline/fgsm" not in evaluate  # most=2
