"""Every command handles errors one way: the project's own errors (a bad setting, a missing or corrupt file) print
as one ``error:`` line with exit status 1, a bug keeps its traceback, and ``TOPDOWN_TRACEBACK`` shows it anyway;
and the package has no import cycle."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from topdown import experiment, pipeline
from topdown.errors import ConfigError, run_command

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


def test_the_package_has_no_import_cycle() -> None:
    house = _house()
    assert house.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # it finds one
    graph = house.import_graph()
    assert "topdown.store" in graph["topdown.robustness.cli"]  # read from a function-local import
    assert house.cycles(graph) == []
