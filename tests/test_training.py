"""Training through the command line: every config, resuming, bad input, NaN losses and DDP."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from conftest import ROOT, tiny_train_args
from pytorch_lightning.utilities.model_summary import get_human_readable_count

from topdown import cli
from topdown.checkpoint import CheckpointError, load_model, read_checkpoint
from topdown.clock import training_clock

TRAIN_CONFIGS = [
    "configs/baseline.yaml",
    "configs/topdown.yaml",
    "configs/topdown_wide_head.yaml",
    "configs/baseline_blur.yaml",
]
DATA_CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs" / "data").glob("*.yaml"))


def _needs_shared(data_config: str) -> bool:
    return "flower" in data_config


def test_a_model_file_holds_only_its_net_and_the_shared_recipe_is_read_first(tmp_path: Path) -> None:
    """configs/train.yaml is the one recipe; each model file adds only its net, so runs differ only there."""
    shared = yaml.safe_load((ROOT / "configs" / "train.yaml").read_text())
    assert "net" not in shared["model"]
    for config in TRAIN_CONFIGS:
        assert yaml.safe_load((ROOT / config).read_text()).keys() == {"model"}, config
    args = [*tiny_train_args(tmp_path, "configs/baseline_blur.yaml", epochs=1), "--trainer.fast_dev_run", "1"]
    result = cli.train_main(args)
    hp = result.model.hparams
    assert hp.lr == shared["model"]["lr"] and hp.schedule == shared["model"]["schedule"]
    net = result.model.net
    assert net._init_args["input_lowpass"] == 2 and not isinstance(net.lowpass, torch.nn.Identity)


@pytest.mark.parametrize("config", TRAIN_CONFIGS)
@pytest.mark.parametrize("data_config", [None, *DATA_CONFIGS])
def test_fast_dev_run_for_every_config(
    config: str, data_config: str | None, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    extra = []
    if data_config is not None:
        # the shared_data fixture skips where the real flowers are absent
        if _needs_shared(data_config):
            root = request.getfixturevalue("shared_data")
        else:
            root = request.config.getoption("shared_data")
        extra = ["--config", str(ROOT / data_config), "--data.root", str(root)]
    args = [
        "fit",
        "--config",
        str(ROOT / config),
        *extra,
        "--trainer.fast_dev_run",
        "2",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.enable_progress_bar",
        "false",
        "--data.batch_size",
        "8",
    ]
    result = cli.train_main(args)
    assert result.trainer.state.finished
    assert torch.isfinite(result.trainer.callback_metrics["train/loss_step"])
    # A smoke run leaves no checkpoint behind for a later real run in the same folder to resume from.
    assert not list(tmp_path.rglob("*.ckpt"))


def test_checkpoints_rebuild_the_network_without_pickles(tiny_checkpoints: dict[str, Path]) -> None:
    for arch, path in tiny_checkpoints.items():
        loaded = load_model(path)
        assert loaded.name == {"baseline": "ResNet", "topdown": "TopDownResNet"}[arch]
        assert loaded.data["dataset"] == "synthetic" and loaded.data["num_classes"] == 6
        ckpt = read_checkpoint(path)
        state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()}
        for k, v in loaded.net.state_dict().items():
            assert torch.equal(v, state[k])
        assert not loaded.net.training


def test_a_checkpoint_of_another_architecture_is_refused(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    ckpt = read_checkpoint(tiny_checkpoints["topdown"])
    ckpt["topdown"]["net"] = read_checkpoint(tiny_checkpoints["baseline"])["topdown"]["net"]
    torch.save(ckpt, tmp_path / "mixed.ckpt")
    with pytest.raises(CheckpointError, match="mixed.ckpt: weights do not fit the recorded architecture"):
        load_model(tmp_path / "mixed.ckpt")
    ckpt["topdown"]["net"]["class_path"] = "torchvision.models.resnet50"
    torch.save(ckpt, tmp_path / "alien.ckpt")
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load_model(tmp_path / "alien.ckpt")
    with pytest.raises(CheckpointError, match="has 6 classes but the data has 102"):
        load_model(tiny_checkpoints["topdown"], expect_classes=102)


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_checkpoint_holding_a_malicious_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "topdown": {"net": {}}, "x": _Payload()}, path)
    with pytest.raises(CheckpointError, match="evil.ckpt: refused to load"):
        load_model(path)


class _Crash(pl.Callback):
    """Dies at the start of the second epoch, after the first epoch's checkpoint was written."""

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated crash")


def test_a_run_killed_after_epoch_1_and_resumed_from_last_ends_as_an_unbroken_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unbroken = cli.train_main(tiny_train_args(tmp_path / "unbroken", epochs=2))

    original = cli.default_callbacks
    monkeypatch.setattr(cli, "default_callbacks", lambda **kw: [*original(**kw), _Crash()])
    with pytest.raises(RuntimeError, match="simulated crash"):
        cli.train_main(tiny_train_args(tmp_path / "broken", epochs=2))
    monkeypatch.setattr(cli, "default_callbacks", original)
    assert read_checkpoint(tmp_path / "broken" / "checkpoints" / "last.ckpt")["epoch"] == 0

    resumed = cli.train_main([*tiny_train_args(tmp_path / "broken", epochs=2), "--ckpt_path", "last"])
    assert resumed.trainer.current_epoch == unbroken.trainer.current_epoch == 2
    for key in ("val/acc", "val/loss", "train/loss_epoch"):
        assert resumed.trainer.callback_metrics[key].item() == unbroken.trainer.callback_metrics[key].item(), key
    a, b = unbroken.model.net.state_dict(), resumed.model.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    # The run's clock carries over the crash: it counts both epochs and every training image once.
    clocks = [
        training_clock(root / "checkpoints" / "last.ckpt") for root in (tmp_path / "unbroken", tmp_path / "broken")
    ]
    per_epoch = unbroken.trainer.num_training_batches * unbroken.datamodule.batch_size  # full batches only
    for clock in clocks:
        assert clock["epochs"] == 2 and clock["images"] == 2 * per_epoch
        assert clock["seconds"] > 0 and clock["images_per_s"] > 0
    logged = (tmp_path / "broken" / "csv" / "version_1" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"time/epoch_s", "train/images_per_s"} <= set(logged)


def test_last_checkpoint_is_the_final_epoch_even_when_accuracy_stops_rising(tmp_path: Path) -> None:
    # With lr 0 the validation accuracy cannot rise after the first epoch, so the best checkpoint stays at
    # epoch 0; last.ckpt must still hold the final epoch (what --ckpt_path last and the evaluation read).
    run = cli.train_main(tiny_train_args(tmp_path, epochs=3, **{"model.lr": "0.0"}))
    steps = run.trainer.global_step
    last = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, steps)
    assert [p.name for p in (tmp_path / "checkpoints").glob("best-*.ckpt")] == ["best-000.ckpt"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best-000.ckpt", "last.ckpt"]


def test_seeded_runs_reproduce(tmp_path: Path) -> None:
    runs = [cli.train_main(tiny_train_args(tmp_path / f"r{i}", epochs=1)) for i in range(2)]
    a, b = (r.model.net.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_model_summary_counts_the_nets_flops_and_lightning_shows_no_advertisement(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    from topdown.models import count_macs

    args = [*tiny_train_args(tmp_path, epochs=1), "--trainer.enable_model_summary", "true"]
    with caplog.at_level(logging.INFO):
        result = cli.train_main([*args, "--trainer.fast_dev_run", "1"])
    captured = capsys.readouterr()
    shown = caplog.text + captured.out + captured.err
    # One image at the size the data is tested on: the summary's FLOPs are the net's own, per image.
    assert tuple(result.model.example_input_array.shape) == (1, 3, 32, 32)
    flops = next(line for line in shown.splitlines() if "Total FLOPs" in line)
    macs = count_macs(result.model.net, 32)
    assert flops.split("Total FLOPs:")[1].strip() == get_human_readable_count(2 * macs) != "0"
    assert "Tip" not in shown and "litlogger" not in shown and "litmodels" not in shown


def test_a_wrong_config_key_fails_before_any_work_naming_the_key(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        cli.train_main([*tiny_train_args(tmp_path), "--model.net.init_args.widthz", "[8]"])
    assert "widthz" in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists()


def test_a_bad_config_value_names_the_value(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        cli.train_main([*tiny_train_args(tmp_path), "--model.net.init_args.merge", "multiply"])
    assert "multiply" in capsys.readouterr().err


def test_a_nan_loss_stops_the_run_with_a_clear_message(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            *tiny_train_args(tmp_path, epochs=3),
            "--model.lr",
            "1e30",
            "--model.schedule",
            "constant",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training loss is") and "lower model.lr" in last


def test_ddp_with_two_processes_trains(tmp_path: Path) -> None:
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29531"}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            *tiny_train_args(tmp_path, epochs=1),
            "--trainer.strategy",
            "ddp",
            "--trainer.devices",
            "2",
            "--trainer.accelerator",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert ckpt["epoch"] == 0
    # 168 training images sharded over 2 processes, batch 32 each (drop_last): 2 steps, where one process
    # alone takes 5.
    assert ckpt["global_step"] == 2
