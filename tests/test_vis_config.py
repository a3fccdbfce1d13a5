"""The visualize command's line and settings: VisConfig and configs/vis/*.yaml, one registry of methods,
repeatable list options, and user errors as one line that names the key, file or value."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from records import differences
from test_vis_golden import ADDED, TOLERANCE, golden_checkpoints

from topdown.cli import evaluate_main
from topdown.data import FlowerData
from topdown.errors import ConfigError
from topdown.vis.cli import parse
from topdown.vis.config import VisConfig
from topdown.vis.methods import METHODS, Method
from topdown.vis.methods.base import scaled_steps
from topdown.vis.runner import build_context, reference_split

ROOT = Path(__file__).resolve().parents[1]
VIS_CONFIGS = sorted((ROOT / "configs" / "vis").glob("*.yaml"))


@pytest.mark.parametrize("path", VIS_CONFIGS, ids=lambda p: p.name)
def test_every_vis_config_loads_and_validates(path: Path) -> None:
    _, cfg = parse(["--config", str(path), "--out", "x"])
    assert cfg.methods == list(METHODS)


def test_quick_config_is_the_default() -> None:
    assert parse(["--config", str(ROOT / "configs/vis/quick.yaml"), "--out", "x"])[1] == VisConfig()
    assert parse(["--out", "x"])[1] == VisConfig()


def test_one_registry_and_one_section_per_configurable_method() -> None:
    cfg = VisConfig()
    sections = {f.name for f in dataclasses.fields(cfg) if dataclasses.is_dataclass(getattr(cfg, f.name))}
    configurable = {name for name, m in METHODS.items() if m.settings_type is not None}
    assert sections == configurable
    for name, method in METHODS.items():
        assert isinstance(method, Method) and method.name == name
        settings = cfg.settings(name)
        assert (settings is None) == (method.settings_type is None)
        assert settings is None or isinstance(settings, method.settings_type), name
    assert not METHODS["classes"].takes_layer and METHODS["dream"].takes_layer


def test_scaled_steps_reproduce_the_former_fixed_factors() -> None:
    d = VisConfig()
    for steps in range(1, 1025):
        assert scaled_steps(steps, d.classes.steps_scale) == int(1.5 * steps)
        assert scaled_steps(steps, d.dream.steps_scale, d.dream.min_steps) == max(16, steps // 4)
        assert scaled_steps(steps, d.multifaceted.steps_scale, d.multifaceted.min_steps) == max(32, steps // 2)
        assert scaled_steps(steps, d.inversion.steps_scale) == 2 * steps


def test_list_options_append_or_take_a_list(tmp_path: Path) -> None:
    ns, cfg = parse(["--ckpt+", "a.ckpt", "--ckpt+=b.ckpt", "--out", "o", "--layers+", "layer1", "--layers+", "layer3"])
    assert ns.ckpt == ["a.ckpt", "b.ckpt"] and cfg.layers == ["layer1", "layer3"]
    ns, cfg = parse(["--ckpt", "[a.ckpt, b.ckpt]", "--out", "o", "--methods", "[dream, attribution]"])
    assert ns.ckpt == ["a.ckpt", "b.ckpt"] and cfg.methods == ["dream", "attribution"]
    yaml = tmp_path / "vis.yaml"
    yaml.write_text("ckpt: [a.ckpt, b.ckpt]\nmethods: [dream]\nsteps: 4\ndream: {lr: 0.01}\n")
    ns, cfg = parse(["--config", str(yaml), "--out", "o"])
    assert ns.ckpt == ["a.ckpt", "b.ckpt"] and cfg.methods == ["dream"] and cfg.steps == 4
    assert cfg.dream.lr == 0.01 and cfg.caricature.lr == 0.02
    # The command line after the file: a list replaces the file's, --ckpt+ appends to it.
    ns, cfg = parse(["--config", str(yaml), "--ckpt", "[c.ckpt, d.ckpt]", "--out", "o", "--steps", "8"])
    assert ns.ckpt == ["c.ckpt", "d.ckpt"] and cfg.steps == 8
    ns, _ = parse(["--config", str(yaml), "--ckpt+", "c.ckpt", "--out", "o"])
    assert ns.ckpt == ["a.ckpt", "b.ckpt", "c.ckpt"]


def test_a_repeated_list_option_is_an_error_that_says_how_to_append() -> None:
    # A second --ckpt would silently replace the first: a single path is refused, with the way to append.
    with pytest.raises(ConfigError) as err:
        parse(["--ckpt", "a.ckpt", "--ckpt", "b.ckpt", "--out", "o"])
    assert "ckpt" in str(err.value) and "--ckpt+" in str(err.value) and "\n" not in str(err.value)


def test_print_config_lists_every_setting(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(["--print_config"])
    assert exit_.value.code == 0
    printed = capsys.readouterr().out
    for line in ("steps: 128", "tv_weight: 0.4", "dream:", "  lr: 0.02", "steps_scale: 1.5", "ig_steps: 128"):
        assert line in printed


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--layers", "[layer9]"], "'layer9'"),
        (["--layers", "[layer2, layer2.0.nope]"], "'layer2.0.nope'"),
        (["--methods", "[nope]"], "unknown method(s) ['nope']"),
        (["--steps", "many"], '"steps"'),
        (["--dream.lr", "-1"], "dream.lr"),
        (["--inversion.nope", "1"], "--inversion.nope"),
        (["--config", "missing.yaml"], "missing.yaml"),
        (["--channels", "1"], "channels"),
        (["--names", "[one]"], "names: 1 entries for 2 checkpoints"),
        (["--classes.starts", "[mean, blue]"], "classes.starts"),
        (["--dissection.images", "1"], "dissection.images"),
    ],
)
def test_user_errors_are_one_line(argv: list[str], named: str, tmp_path: Path, capsys) -> None:
    ckpts = golden_checkpoints(tmp_path)
    args = ["visualize", "--ckpt+", str(ckpts[0]), "--ckpt+", str(ckpts[1]), "--out", str(tmp_path / "o"), *argv]
    with pytest.raises(SystemExit) as exit_:
        evaluate_main(args)
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and named in err, err
    if "layer9" in argv[1]:
        assert "its stages are layer1, layer2, layer3" in err
    assert not (tmp_path / "o" / "vis.json").exists()


def test_a_wrong_layer_from_the_shell_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    ckpts = golden_checkpoints(tmp_path)
    cmd = [sys.executable, str(ROOT / "evaluate.py"), "visualize", "--ckpt+", str(ckpts[1])]
    cmd += ["--out", str(tmp_path / "o"), "--layers", "[layer9]"]
    env = {k: v for k, v in os.environ.items() if k != "TOPDOWN_TRACEBACK"}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    lines = [ln for ln in done.stderr.splitlines() if ln.strip() and "Warning" not in ln and "warn" not in ln]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "layer9" in lines[0] and "Traceback" not in done.stderr


def test_the_golden_comparison_notices_a_changed_number() -> None:
    golden = {"models": {"m": {"values": [0.25, 1.0], "passed": True, "steps": 8}}}
    nudged = {"models": {"m": {"values": [0.25, 1.0 + 2e-16 * 2], "passed": True, "steps": 8}}}

    def compare(new, exact):
        return differences(golden, new, None if exact else lambda path: TOLERANCE, "vis", ADDED)

    assert compare(nudged, exact=True) == ["vis.models.m.values[1]: recorded 1.0, now 1.0000000000000004"]
    assert compare(nudged, exact=False) == []
    assert compare({"models": {"m": {**golden["models"]["m"], "steps": 9}}}, exact=False)
    assert compare({"models": {"m": {**golden["models"]["m"], "passed": False}}}, exact=False)
    assert compare({"models": {"m": {**golden["models"]["m"], "extra": 1}}}, exact=True)
    assert not compare({"models": {"m": {**golden["models"]["m"], "settings": None}}}, exact=True)


def test_reference_images_are_held_out_from_nets_trained_on_train_and_val(shared_data: Path) -> None:
    """The quality figures and the priors' KID compare renders with held-out photos: for nets trained on
    Flowers102's train+val those are the seeded test images, not the validation images they trained on."""
    assert reference_split(FlowerData("flowers102", str(shared_data), image_size=32)) == "val"
    data = FlowerData("flowers102", str(shared_data), image_size=32, trainval=True)
    assert reference_split(data) == "test"
    cfg = VisConfig(reference=3, color_images=2)
    ctx = build_context(cfg, data, torch.device("cpu"))
    test = data.subset("test")
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(cfg.seed))[:3].tolist()
    assert torch.equal(ctx.real, torch.stack([test[i][0] for i in pick]))
    assert ctx.labels.tolist() == [test[i][1] for i in pick]
