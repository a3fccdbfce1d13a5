"""Data: real flower sets from ../shared/data, splits, augmentation, bad files, learnability."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import accuracy, fit_quickly, small_data
from PIL import Image

from topdown.cli import train_main
from topdown.data import (
    EpochSampler,
    FlowerData,
    ImageLoadError,
    flowers102_source,
    image_folder_source,
    stratified_split,
)
from topdown.models import create_model


def test_flower_photos_loads_with_a_seeded_stratified_split(shared_data: Path) -> None:
    data = FlowerData("flower_photos", str(shared_data), image_size=64)
    assert data.classes == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    splits = data.splits()
    sets = {k: set(v[1]) for k, v in splits.items()}
    assert sum(len(s) for s in sets.values()) == 3670
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])
    targets = np.asarray(splits["train"][0].targets)
    for name, idx in sets.items():  # every class keeps its share in every split
        share = np.bincount(targets[sorted(idx)], minlength=5) / np.bincount(targets, minlength=5)
        expected = {"train": 0.7, "val": 0.15, "test": 0.15}[name]
        assert np.allclose(share, expected, atol=0.01)
    again = FlowerData("flower_photos", str(shared_data), image_size=64).splits()
    assert all(again[k][1] == splits[k][1] for k in splits)
    x, y = data.subset("val")[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
    assert 0 <= y < 5


def test_flowers102_loads_the_official_splits(shared_data: Path) -> None:
    sizes = {s: len(flowers102_source(shared_data, s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 1020, "val": 1020, "test": 6149}
    data = FlowerData("flowers102", str(shared_data), image_size=64, trainval=True)
    assert data.num_classes == 102
    assert len(data.splits()["train"][1]) == 2040
    src, idx = data.splits()["test"]
    image, label = src[idx[5]]
    assert image.dtype == np.uint8 and image.ndim == 3 and min(image.shape[:2]) == 96 and 0 <= label < 102


def test_missing_flowers102_says_which_files_it_looked_for(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        flowers102_source(tmp_path, "train")
    msg = str(err.value)
    assert str(tmp_path / "flowers-102" / "imagelabels.mat") in msg and "setid.mat" in msg and "jpg" in msg


def _folder(tmp_path: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.jpg")
    return tmp_path


def test_a_corrupt_image_is_an_error_naming_the_file(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs")
    (root / "a" / "3.jpg").write_bytes(b"not a jpeg at all")
    data = FlowerData("imagefolder", str(root), image_size=32, val_fraction=0.0, test_fraction=0.0)
    with pytest.raises(ImageLoadError, match=r"a/3\.jpg: cannot read image"):
        data.subset("train")


def test_skip_corrupt_logs_and_leaves_the_file_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _folder(tmp_path / "imgs")
    (root / "b" / "0.jpg").write_bytes(b"\xff\xd8\xff truncated")
    data = FlowerData("imagefolder", str(root), image_size=32, val_fraction=0.0, test_fraction=0.0, skip_corrupt=True)
    with caplog.at_level(logging.WARNING):
        ds = data.subset("train")
    assert len(ds) == 11
    assert "b/0.jpg" in caplog.text
    assert all(ds[i][0].shape == (3, 32, 32) for i in range(len(ds)))


def test_missing_folder_is_named_with_the_option_that_sets_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")) as err:
        image_folder_source(tmp_path / "nope")
    assert "--data.root" in str(err.value)


def test_data_root_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = _folder(tmp_path / "flower_photos", n=3).parent
    monkeypatch.setenv("TOPDOWN_DATA_ROOT", str(root))
    assert FlowerData("flower_photos").classes == ["a", "b"]


def test_stratified_split_is_seeded_and_disjoint() -> None:
    targets = [i % 3 for i in range(300)]
    a = stratified_split(targets, (0.2, 0.1), seed=1)
    assert a == stratified_split(targets, (0.2, 0.1), seed=1)
    assert a != stratified_split(targets, (0.2, 0.1), seed=2)
    assert [len(p) for p in a] == [210, 60, 30]
    assert sorted(sum(a, [])) == list(range(300))


def test_augmentation_is_seeded_by_epoch_and_index() -> None:
    ds = small_data().subset("train", train=True)
    n = len(ds)
    assert torch.equal(ds[3][0], ds[3][0])  # same (epoch, index): same crop, flip, jitter
    assert not torch.equal(ds[3][0], ds[n + 3][0])  # next epoch: a different augmentation
    plain = small_data().subset("train")
    assert torch.equal(plain[3][0], plain[3][0])


def test_training_crops_can_be_smaller_than_the_test_images() -> None:
    data = FlowerData("synthetic", image_size=32, train_image_size=16, synthetic_size=60, synthetic_classes=3)
    assert data.subset("train", train=True)[0][0].shape == (3, 16, 16)
    assert data.subset("val")[0][0].shape == data.subset("test")[0][0].shape == (3, 32, 32)
    rebuilt = FlowerData.from_description(data.describe())
    assert (rebuilt.image_size, rebuilt.train_image_size) == (32, 16)
    assert FlowerData(image_size=32).train_image_size == 32  # default: train at the test size
    with pytest.raises(ValueError, match="data.train_image_size"):
        FlowerData(train_image_size=8)


def test_epoch_sampler_reshuffles_per_epoch_and_encodes_the_epoch() -> None:
    s = EpochSampler(10, seed=0)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert sorted(e0) == list(range(10)) and sorted(e1) == list(range(10, 20))
    assert [i - 10 for i in e1] != e0
    s.set_epoch(0)
    assert list(s) == e0


def test_procedural_flowers_are_learnable_by_a_tiny_model() -> None:
    data = small_data()
    torch.manual_seed(0)
    net = fit_quickly(create_model("tiny_topdown", num_classes=data.num_classes, stem_pool=False), data, epochs=4)
    acc = accuracy(net, data, "test")
    assert acc > 2.0 / data.num_classes, f"test accuracy {acc:.3f} is not clearly above chance"


def test_bad_data_arguments_name_the_key() -> None:
    with pytest.raises(ValueError, match="data.dataset"):
        FlowerData("cifar")
    with pytest.raises(ValueError, match="augment"):
        FlowerData(augment="heavy")
    with pytest.raises(ValueError, match="val_fraction"):
        FlowerData(val_fraction=0.6, test_fraction=0.5)


@pytest.mark.parametrize(("key", "value"), [("data.dataset", "cifar"), ("data.augment", "heavy")])
def test_train_refuses_a_data_choice_it_does_not_know_before_any_work(key, value, capsys, tmp_path) -> None:
    with pytest.raises(SystemExit) as exit_:
        train_main(["fit", f"--{key}", value, "--trainer.default_root_dir", str(tmp_path / "run")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert key in err and value in err, err
    assert not (tmp_path / "run").exists()


def test_no_copy_of_the_shared_images_lives_in_the_repo() -> None:
    """Asks git what the project tracks, so images a user keeps under ``./data`` (the default data root) or
    anywhere else untracked do not count: no photo, and nothing under ``data/`` but its README."""
    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout: nothing is tracked")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    tracked = [Path(p) for p in listed.decode().split("\0") if p]
    assert len(tracked) > 50  # the listing worked: the package, configs and tests are tracked
    photos = [p for p in tracked if p.suffix.lower() in {".jpg", ".jpeg"}]
    in_data = [p for p in tracked if p.parts[0] == "data" and p.name != "README.md"]
    assert not photos and not in_data, photos + in_data


def test_crop_min_scale_one_keeps_the_whole_image_and_a_bad_value_is_one_line() -> None:
    """At ``crop_min_scale: 1.0`` (the procedural flowers' recipe) a training crop is the image or its mirror: no
    zoom rescales the fine pattern."""
    data = small_data(image_size=32, augment="light", crop_min_scale=1.0)
    train, plain = data.subset("train", train=True), data.subset("train")
    for i in range(8):
        x, y = train[i][0], plain[i][0]
        assert torch.equal(x, y) or torch.equal(x, y.flip(-1)), i
    with pytest.raises(ValueError, match=r"data.crop_min_scale must be in \(0, 1\], got 0"):
        small_data(crop_min_scale=0.0)
