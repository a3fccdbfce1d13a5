"""``evaluate.py visualize`` stores each (model, method) result as it finishes and reuses exactly the stored
results whose fingerprint (settings, weights, data, code) matches: an interrupted run continues where it
stopped, a changed setting recomputes the methods that read it and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_vis_golden import QUICK, golden_checkpoints, normalized, pixel_hashes

from topdown.models import is_topdown
from topdown.vis.cli import run
from topdown.vis.methods import inversion

pytestmark = pytest.mark.usefixtures("one_thread")

#: Two methods that take a layer and two that do not, each cheap at QUICK's sizes.
METHODS = ["--methods", "[classes, dream, inversion, attribution]"]


@pytest.fixture(scope="module")
def ckpt_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    paths = golden_checkpoints(tmp_path_factory.mktemp("ckpt"))
    return [x for p in paths for x in ("--ckpt+", str(p))]


def vis_json(out: Path) -> dict:
    """vis.json without what legitimately differs between two runs of the same command (time, paths,
    seconds)."""
    return normalized(json.loads((out / "vis.json").read_text()))


def test_an_interrupted_run_resumes_where_it_stopped(ckpt_args, tmp_path: Path, monkeypatch) -> None:
    unbroken = run([*ckpt_args, *QUICK, *METHODS, "--out", str(tmp_path / "unbroken")])
    assert len(unbroken.computed) == 8 and not unbroken.reused

    out = tmp_path / "interrupted"
    real_run = inversion.Inversion.run

    def fail_on_topdown(self, job):
        if is_topdown(job.net):
            raise KeyboardInterrupt  # as if the run were stopped here
        return real_run(self, job)

    monkeypatch.setattr(inversion.Inversion, "run", fail_on_topdown)
    with pytest.raises(KeyboardInterrupt):
        run([*ckpt_args, *QUICK, *METHODS, "--out", str(out)])
    stored = sorted(str(p.relative_to(out / "parts")) for p in (out / "parts").rglob("*.json"))
    done = ["baseline/classes", "topdown/classes", "baseline/dream", "topdown/dream", "baseline/inversion"]
    assert stored == sorted(f"{k}.json" for k in done)
    assert not list(out.rglob("*.tmp"))

    monkeypatch.setattr(inversion.Inversion, "run", real_run)
    resumed = run([*ckpt_args, *QUICK, *METHODS, "--out", str(out)])
    assert resumed.reused == done
    assert resumed.computed == ["topdown/inversion", "baseline/attribution", "topdown/attribution"]
    assert vis_json(out) == vis_json(tmp_path / "unbroken")
    part = json.loads((out / "parts" / "baseline" / "dream.json").read_text())
    assert part["result"] == resumed.doc["models"]["baseline"]["methods"]["dream"]
    assert part["fingerprint"] == part["result"]["fingerprint"] and len(part["fingerprint"]) == 64
    assert pixel_hashes(out, resumed.doc) == pixel_hashes(tmp_path / "unbroken", unbroken.doc)


def test_a_changed_setting_recomputes_only_the_methods_that_read_it(ckpt_args, tmp_path: Path) -> None:
    args = [*ckpt_args, *QUICK, "--methods", "[dream, caricature]", "--out", str(tmp_path)]
    first = run(args)
    assert len(first.computed) == 4

    again = run(args)
    assert not again.computed and len(again.reused) == 4

    changed = run([*args, "--dream.lr", "0.05"])
    assert changed.computed == ["baseline/dream", "topdown/dream"]
    assert sorted(changed.reused) == ["baseline/caricature", "topdown/caricature"]
    entry = changed.doc["models"]["baseline"]["methods"]["dream"]
    assert entry["recipe"]["lr"] == 0.05 and entry["settings"]["lr"] == 0.05
    assert entry["details"] != first.doc["models"]["baseline"]["methods"]["dream"]["details"]

    shared = run([*args, "--dream.lr", "0.05", "--tv_weight", "0.3"])  # every method reads the shared recipe
    assert len(shared.computed) == 4

    (tmp_path / "topdown" / "caricature.png").unlink()  # a stored result whose image is gone is redone
    assert run([*args, "--dream.lr", "0.05", "--tv_weight", "0.3"]).computed == ["topdown/caricature"]
    assert len(run([*args, "--fresh", "true"]).computed) == 4
