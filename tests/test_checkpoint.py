"""Loading a run: checkpoints (and where their data is) to the networks by name and their data, with every check."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from conftest import small_data

from topdown.checkpoint import CheckpointError, load_checkpoints, load_model, load_run, rebuild_data
from topdown.data import FlowerData
from topdown.data.description import DESCRIPTION_KEYS, REBUILD_KEYS, REQUIRED_KEYS, SAME_DATA_KEYS
from topdown.lit import CHECKPOINT_KEY
from topdown.models import TopDownResNet, create_model, is_topdown

DATA = small_data(synthetic_size=60)


def save(path: Path, net: torch.nn.Module, data: dict | None = None, arch: dict | None = None, **extra) -> Path:
    """A checkpoint in the layout ``ImageClassifier`` saves (Lightning state dict + topdown record)."""
    record = {"schema": 1, "net": arch or net.arch_config, "data": DATA.describe() if data is None else data}
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, CHECKPOINT_KEY: record, "epoch": 0, **extra}, path)
    return path


def tiny(arch: str, seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(arch, num_classes=DATA.num_classes, stem_pool=False, **kw).eval()


def channels_last(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` in the memory layout a loaded checkpoint has (bitwise comparisons need the same convolutions)."""
    return net.to(memory_format=torch.channels_last)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("run")
    return [save(root / "baseline.ckpt", tiny("tiny_baseline")), save(root / "topdown.ckpt", tiny("tiny_topdown", 1))]


def test_a_run_loads_its_networks_by_name_and_rebuilds_their_data(pair: list[Path]) -> None:
    run = load_run(pair)
    assert list(run.models) == ["baseline", "topdown"]
    assert [is_topdown(lm.net) for lm in run.models.values()] == [False, True]
    assert all(not lm.net.training for lm in run.models.values())
    assert run.data_description == DATA.describe()
    assert isinstance(run.data_module, FlowerData) and run.data_module.classes == DATA.classes
    x = DATA.subset("test")[0][0][None]
    # Loaded nets run channels-last (faster on the CPU): the same outputs as the default layout, to float rounding.
    loaded = run.models["topdown"].net
    assert loaded.laterals[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(loaded(x), channels_last(tiny("tiny_topdown", 1))(x), rtol=0, atol=0)
    torch.testing.assert_close(loaded(x), tiny("tiny_topdown", 1)(x), rtol=1e-5, atol=1e-6)
    named = load_run([pair[1], pair[1], pair[0]])
    assert list(named.models) == ["topdown", "topdown_2", "baseline"]
    assert list(load_run(pair, ["a", "b"]).models) == ["a", "b"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["one"], "names: 1 entries for 2 checkpoints"),
        (["same", "same"], "names: 'same' is given twice"),
    ],
)
def test_wrong_names_are_one_line(pair: list[Path], names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_run(pair, names)


def test_every_check_names_the_file_at_fault(pair: list[Path], tmp_path: Path) -> None:
    def refused(paths: list[Path], message: str) -> None:
        with pytest.raises(CheckpointError) as err:
            load_run(paths)
        assert "\n" not in str(err.value), str(err.value)
        assert message in str(err.value), str(err.value)

    with pytest.raises(ValueError, match="no checkpoint given"):
        load_run([])
    refused([pair[0], tmp_path / "missing.ckpt"], "missing.ckpt: checkpoint file not found")
    alien = {"class_path": "evil.VisionTransformer", "init_args": {}}
    refused([save(tmp_path / "alien.ckpt", tiny("tiny_baseline"), arch=alien)], "alien.ckpt: unknown architecture")
    # the weights of a top-down net under a baseline's record: the architecture recorded is named
    mixed = save(tmp_path / "mixed.ckpt", tiny("tiny_topdown"), arch=tiny("tiny_baseline").arch_config)
    refused([mixed], "mixed.ckpt: weights do not fit the recorded architecture topdown.models.ResNet")
    refused([save(tmp_path / "bare.ckpt", tiny("tiny_baseline"), data={})], "bare.ckpt: the checkpoint does not record")
    ten = {**DATA.describe(), "num_classes": 10, "classes": [str(i) for i in range(10)]}
    refused([save(tmp_path / "ten.ckpt", tiny("tiny_baseline"), data=ten)], "ten.ckpt: the network has 6 classes")
    bigger = save(tmp_path / "bigger.ckpt", tiny("tiny_topdown"), data={**DATA.describe(), "image_size": 64})
    refused([pair[0], bigger], "bigger.ckpt was trained on different data than")
    refused([pair[0], bigger], "image_size: 32 vs 64")
    # training crops of another size leave the test split as it is
    crops = save(tmp_path / "crops.ckpt", tiny("tiny_topdown"), data={**DATA.describe(), "train_image_size": 16})
    assert list(load_run([pair[0], crops]).models) == ["baseline", "topdown"]


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused(pair: list[Path], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = save(tmp_path / "bad.ckpt", tiny("tiny_topdown"), callbacks=Payload(marker))
    with pytest.raises(CheckpointError, match="bad.ckpt: refused to load"):
        load_run([pair[0], bad])
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(bad, weights_only=True)


def test_data_with_other_classes_is_refused() -> None:
    with pytest.raises(CheckpointError, match="trained on 6 classes.*has 6 classes.*--data.root"):
        rebuild_data({**DATA.describe(), "classes": list("abcdef")})
    desc = {k: v for k, v in DATA.describe().items() if k != "classes"}
    with pytest.raises(CheckpointError, match="trained on 4 classes but the synthetic data"):
        rebuild_data({**desc, "num_classes": 4})
    assert rebuild_data(desc).classes == DATA.classes


def test_a_checkpoint_from_before_merge_at_loads_with_identical_outputs(tmp_path: Path) -> None:
    """``merge_at=None`` (what checkpoints recorded before the option had its own value) is translated on
    loading, never taken by the network; a record without the option at all gets the default."""
    net = tiny("tiny_topdown")
    assert net.arch_config["init_args"]["merge_at"] == "after_block"
    with pytest.raises(ValueError, match="merge_at None"):
        TopDownResNet(merge_at=None)
    x = DATA.subset("test")[0][0][None]
    for name, value in (("none", None), ("missing", ...)):
        arch = net.arch_config
        if value is ...:
            del arch["init_args"]["merge_at"]
        else:
            arch["init_args"]["merge_at"] = value
        lm = load_model(save(tmp_path / f"{name}.ckpt", net, arch=arch))
        assert lm.net.arch_config["init_args"]["merge_at"] == "after_block"
        assert lm.arch["init_args"].get("merge_at", "after_block") == "after_block"
        assert torch.equal(lm.net(x), channels_last(net)(x))
    before = tiny("tiny_topdown", merge_at="before_convs")
    assert load_model(save(tmp_path / "before.ckpt", before)).arch["init_args"]["merge_at"] == "before_convs"


def test_the_data_keys_are_those_the_data_module_writes_and_reads() -> None:
    desc = FlowerData(image_size=32, train_image_size=16, synthetic_size=60).describe()
    assert tuple(desc) == DESCRIPTION_KEYS
    assert set(REQUIRED_KEYS) <= set(REBUILD_KEYS) and "train_image_size" not in SAME_DATA_KEYS
    rebuilt = FlowerData.from_description({k: desc[k] for k in REBUILD_KEYS})
    assert rebuilt.describe() == desc
    with pytest.raises(ValueError, match="lacks"):
        FlowerData.from_description({k: desc[k] for k in REBUILD_KEYS if k not in REQUIRED_KEYS})


def test_load_checkpoints_does_not_touch_the_data(pair: list[Path], tmp_path: Path) -> None:
    desc = {**DATA.describe(), "dataset": "imagefolder", "classes": ["a"] * 6}
    paths = [save(tmp_path / "b.ckpt", tiny("tiny_baseline"), data=desc)]
    models, description = load_checkpoints(paths)
    assert list(models) == ["baseline"] and description == desc
