"""``python evaluate.py visualize`` on real (tiny) Lightning checkpoints: PNGs and a stable vis.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from topdown.cli import evaluate_main
from topdown.vis.cli import METHODS
from topdown.vis.cli import main as vis_main

pytestmark = pytest.mark.usefixtures("one_thread")


QUICK = ["--steps", "8", "--channels", "4", "--images", "4", "--reference", "32", "--progress", "false"]


@pytest.fixture(scope="module")
def vis_run(tiny_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("vis")
    ck = tiny_checkpoints
    evaluate_main(
        ["visualize", "--ckpt+", str(ck["baseline"]), "--ckpt+", str(ck["topdown"]), "--out", str(out), *QUICK]
    )
    return out, json.loads((out / "vis.json").read_text())


def test_vis_json_schema_and_files(vis_run) -> None:
    out, doc = vis_run
    assert doc["schema"] == 1 and doc["seed"] == 0 and set(doc["models"]) == {"baseline", "topdown"}
    assert doc["layers"] == {"baseline": ["layer2"], "topdown": ["layer2"]}
    assert len(doc["color"]["sqrt_cov"]) == 3 and doc["data"]["dataset"] == "synthetic"
    for name, m in doc["models"].items():
        assert Path(m["checkpoint"]).is_file()
        # no generator given: the two methods that render through one are not applicable
        expected = set(METHODS) - {"dgn_am", "ppgn"} - ({"pyramid_attribution"} if name == "baseline" else set())
        assert set(m["methods"]) == expected
        for method, entry in m["methods"].items():
            assert {"description", "recipe", "seed", "images", "quality", "details", "seconds"} <= set(entry)
            for rel in entry["images"]:
                with Image.open(out / rel) as im:
                    assert im.format == "PNG" and im.size[0] > 16, rel
            for fname, q in entry["quality"].items():
                assert {"value", "threshold", "passed", "direction"} <= set(q), (method, fname)
                assert isinstance(q["passed"], bool) and q["direction"] in (">=", "<=", ">", "in")
    # Every issue figure is computed for both networks.
    for name in ("baseline", "topdown"):
        q = {f"{meth}/{k}" for meth, e in doc["models"][name]["methods"].items() for k in e["quality"]}
        assert {
            "channels/objective_rises",
            "classes/class_confidence",
            "channels/high_frequency_ratio",
            "channels/total_variation_ratio",
            "channels/transform_robustness",
            "inversion/feature_error",
            "inversion/identification",
            "interpolation/smoothness",
            "interpolation/ends_differ",
            "interpolation/handover_monotone",
            "diversity/batch_feature_cosine",
            "attribution/ig_completeness",
            "attribution/deletion_integrated_gradients",
            "multifaceted/facet_purity_class0",
            "dissection/above_chance",
            "naive/channels_rejected",
        } <= q
    assert "pyramid_attribution" in doc["models"]["topdown"]["methods"]
    recipe = doc["models"]["topdown"]["methods"]["channels"]["recipe"]
    assert recipe["steps"] == 8 and recipe["seed"] == 0 and recipe["transforms"][0]["type"] == "Pad"
    for key, c in doc["comparisons"].items():
        assert all((out / rel).is_file() for rel in c["images"]), key
    assert "channels" in doc["comparisons"] and "pyramid_attribution" not in doc["comparisons"]
    s = doc["summary"]
    assert s["figures"] == sum(len(e["quality"]) for m in doc["models"].values() for e in m["methods"].values())
    assert s["passed"] + len(s["failed"]) == s["figures"]
    assert not list(out.rglob(".tmp-*")) and not list(out.rglob("*.tmp"))


def test_layers_config_file_and_errors(tiny_checkpoints, tmp_path: Path) -> None:
    cfg = tmp_path / "vis.yaml"
    cfg.write_text(
        "methods: [channels]\nlayers: [layer1, layer3]\nsteps: 4\nchannels: 2\nreference: 16\nprogress: false\n"
    )
    doc = vis_main(["--config", str(cfg), "--ckpt+", str(tiny_checkpoints["topdown"]), "--out", str(tmp_path / "o")])
    assert set(doc["models"]["topdown"]["methods"]) == {"channels:layer1", "channels:layer3"}
    assert doc["models"]["topdown"]["methods"]["channels:layer3"]["layer"] == "layer3"
    assert (tmp_path / "o" / "topdown" / "channels_layer1.png").is_file()
    with pytest.raises(ValueError, match="unknown method"):
        vis_main(["--ckpt+", str(tiny_checkpoints["topdown"]), "--out", str(tmp_path / "x"), "--methods", "[nope]"])
    with pytest.raises(ValueError, match="no checkpoint"):
        vis_main(["--out", str(tmp_path / "x")])


def test_dissection_reads_the_first_images_it_is_given(tiny_checkpoints, tmp_path: Path) -> None:
    """``dissection.images`` caps the test images dissected; without it the whole test split is."""
    args = ["--ckpt+", str(tiny_checkpoints["topdown"]), "--methods", "[dissection]", *QUICK]
    whole = vis_main([*args, "--out", str(tmp_path / "whole")])["models"]["topdown"]["methods"]["dissection"]
    some = vis_main([*args, "--out", str(tmp_path / "some"), "--dissection.images", "24"])
    some = some["models"]["topdown"]["methods"]["dissection"]
    assert some["details"]["images"] == 24 < whole["details"]["images"]
    assert some["details"]["iou"] != whole["details"]["iou"]


def test_spectra_render_every_class_from_every_seed_and_the_naive_renders_carry_more_high_frequency(vis_run) -> None:
    """The spectra method: one render per class and seed, seeds that differ, and the naive renders, which the
    natural-statistics check rejects, well above the recipe's renders in high-frequency power on every seed."""
    _, doc = vis_run
    for name, m in doc["models"].items():
        d = m["methods"]["spectra"]["details"]
        n = len(d["classes"]) * len(d["seeds"])
        assert len(d["seeds"]) == 3 and len(d["class_high"]) == len(d["naive_high"]) == n
        by_seed = [d["class_high"][i :: len(d["classes"])] for i in range(len(d["classes"]))]
        assert all(len(set(v)) == len(d["seeds"]) for v in by_seed), name  # every seed renders anew
        assert sum(d["naive_high_ratio"]) / n > 2 * sum(d["class_high_ratio"]) / n, name
        assert d["class_relative_spectrum"][0] is None and len(d["class_relative_spectrum"]) == 17  # 32 px: 0..16


def test_maco_renders_every_method_that_takes_the_shared_recipe(tiny_checkpoints, tmp_path, capsys) -> None:
    """--parameterization maco: the magnitude spectrum is derived once from the training images and recorded,
    the recipes say so, and the renders are images."""
    ck = tiny_checkpoints
    args = ["visualize", "--ckpt+", str(ck["baseline"]), "--ckpt+", str(ck["topdown"]), "--out", str(tmp_path)]
    evaluate_main([*args, *QUICK, "--parameterization", "maco", "--methods", "[classes, channels, dream]"])
    doc = json.loads((tmp_path / "vis.json").read_text())
    assert (
        doc["spectrum"]["size"] == [32, 32] and doc["spectrum"]["images"] > 0 and len(doc["spectrum"]["sha256"]) == 64
    )
    for m in doc["models"].values():
        for method in ("classes", "channels", "dream"):
            assert m["methods"][method]["recipe"]["spectrum"] == doc["spectrum"], method
    capsys.readouterr()
    with pytest.raises(SystemExit):
        evaluate_main([*args, *QUICK, "--parameterization", "lucid"])
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("error:") and all(word in err for word in ("parameterization", "lucid", "fourier", "maco"))
