"""The procedural flower dataset: determinism, ground truth, balance, and that classes really differ."""

from __future__ import annotations

import multiprocessing
import random
import signal

import numpy as np
import pytest
import torch

from topdown.data import synthetic
from topdown.data.synthetic import FORMS, PATTERNS, SyntheticFlowers, class_table


@pytest.fixture(scope="module")
def rendered() -> tuple[SyntheticFlowers, list[dict]]:
    ds = SyntheticFlowers(120, 64, seed=0, num_classes=6)
    return ds, [ds.render(i) for i in range(len(ds))]


# -- determinism ------------------------------------------------------------------------------------
def test_same_index_is_bitwise_identical() -> None:
    ds = SyntheticFlowers(50, 64, seed=7)
    first = ds.render(3)
    again = ds.render(3)
    fresh = SyntheticFlowers(50, 64, seed=7).render(3)
    for other in (again, fresh):
        assert np.array_equal(first["image"], other["image"])
        assert np.array_equal(first["mask"], other["mask"])
        assert first["label"] == other["label"] and first["subtype"] == other["subtype"]
        assert first["params"] == other["params"]


def test_index_does_not_depend_on_dataset_size() -> None:
    small, large = SyntheticFlowers(13, 64, seed=2), SyntheticFlowers(500, 64, seed=2)
    assert large.targets[:13] == small.targets and large.subtypes[:13] == small.subtypes
    assert np.array_equal(small[12][0], large[12][0])


def test_seeds_differ() -> None:
    a, b = SyntheticFlowers(10, 64, seed=0), SyntheticFlowers(10, 64, seed=1)
    assert a.targets != b.targets
    assert all(not np.array_equal(a[i][0], b[i][0]) for i in range(5))


def test_global_rngs_untouched() -> None:
    np_state, py_state, torch_state = np.random.get_state()[1].copy(), random.getstate(), torch.get_rng_state()
    ds = SyntheticFlowers(10, 32, seed=3)
    ds.render(4)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert random.getstate() == py_state
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_golden_values() -> None:
    """Recorded output of seed 0: a change here changes the dataset every experiment was run on."""
    ds = SyntheticFlowers(12, 64, seed=0)
    assert ds.targets == [1, 0, 4, 5, 4, 1, 2, 5, 0, 3, 2, 3]
    assert ds.subtypes == [0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1]
    # Loose, so that last-ulp differences between CPUs and maths libraries cannot trip it.
    image = ds[0][0].astype(np.float64)
    assert image.mean() == pytest.approx(97.155, abs=0.01)
    assert image.std() == pytest.approx(45.331, abs=0.01)


# -- the source interface -----------------------------------------------------------------------------
def test_shapes_and_types(rendered: tuple[SyntheticFlowers, list[dict]]) -> None:
    ds, outs = rendered
    assert len(ds) == 120 and SyntheticFlowers.PARTS == ("background", "petals", "centre")
    image, label = ds[0]
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert type(label) is int and 0 <= label < 6
    out = outs[0]
    assert out["mask"].dtype == np.uint8 and out["mask"].shape == (64, 64)
    assert out["subtype"] in (0, 1)
    for key in ("radius", "center", "rotation", "n_petals", "petal_hsv", "centre_hsv", "noise_sigma"):
        assert key in out["params"]
    assert 0.25 <= out["params"]["radius"] <= 0.45
    assert np.array_equal(ds.masks(5), outs[5]["mask"])
    assert np.array_equal(ds[-1][0], outs[-1]["image"])
    with pytest.raises(IndexError):
        ds[120]


@pytest.mark.parametrize("size", [16, 32, 96])
def test_other_sizes_show_the_same_flower(size: int) -> None:
    small, ref = SyntheticFlowers(8, size, seed=4), SyntheticFlowers(8, 96, seed=4)
    for i in range(8):
        out, big = small.render(i), ref.render(i)
        assert out["image"].shape == (size, size, 3) and out["mask"].shape == (size, size)
        assert out["params"] == big["params"]
        # Drawn in continuous coordinates: the 96 px mask sampled at the small grid's pixel centres agrees.
        centres = ((np.arange(size) + 0.5) * 96 / size).astype(int)
        agree = (big["mask"][np.ix_(centres, centres)] == out["mask"]).mean()
        assert agree > 0.9


def test_drawing_on_every_core_gives_the_same_pixels_and_masks() -> None:
    """``draw`` fills a cached dataset's images and masks (in worker processes from 256 images on) with exactly
    what drawing them one by one gives; the masks handed out are the caller's own to change."""
    n = 300
    cached, plain = SyntheticFlowers(n, 32, seed=11, cache=True), SyntheticFlowers(n, 32, seed=11)
    cached.draw()
    for i in range(n):
        one = plain.render(i)
        image, label = cached[i]
        assert np.array_equal(image, one["image"]) and label == one["label"], i
        assert np.array_equal(cached.masks(i), one["mask"]), i
    mask = cached.masks(0)
    mask[:] = 9
    assert np.array_equal(cached.masks(0), plain.render(0)["mask"])
    with pytest.raises(ValueError):
        cached[0][0][0, 0, 0] = 1  # the cached image itself is read-only


_DRAW_MANY = synthetic._draw_many


def _draw_many_checking_signals(args):  # type: ignore[no-untyped-def]
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        raise RuntimeError("a pool worker kept its parent's SIGTERM handler")
    return _DRAW_MANY(args)


def test_drawing_workers_end_under_a_training_runs_signal_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """A training run installs a SIGTERM handler that does not exit (Lightning's). ``draw``'s forked workers must
    not inherit it, or the pool could never terminate them: they start with the default handling and the pool
    ends with no worker left."""
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        monkeypatch.setattr(synthetic, "usable_cores", lambda: 2)
        monkeypatch.setattr(synthetic, "_draw_many", _draw_many_checking_signals)
        src = SyntheticFlowers(300, 32, seed=12, cache=True)
        src.draw()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert np.array_equal(src[299][0], SyntheticFlowers(300, 32, seed=12).render(299)["image"])
    assert multiprocessing.active_children() == []


def test_data_loader_collates() -> None:
    images, labels = next(iter(torch.utils.data.DataLoader(SyntheticFlowers(8, 32), batch_size=4)))
    assert images.shape == (4, 32, 32, 3) and images.dtype == torch.uint8 and labels.shape == (4,)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_samples": 0}, "num_samples"),
        ({"num_samples": 2.5}, "num_samples"),
        ({"num_samples": True}, "num_samples"),
        ({"image_size": 15}, "image_size"),
        ({"image_size": "64"}, "image_size"),
        ({"seed": -1}, "seed"),
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": 19}, "num_classes"),
    ],
)
def test_invalid_arguments(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        SyntheticFlowers(**kwargs)


# -- labels, sub-types, class table ---------------------------------------------------------------------
def test_targets_match_renders_and_are_balanced(rendered: tuple[SyntheticFlowers, list[dict]]) -> None:
    ds, outs = rendered
    assert ds.targets == [o["label"] for o in outs]
    assert ds.subtypes == [o["subtype"] for o in outs]
    assert np.bincount(ds.targets).tolist() == [20] * 6
    # Every block of 2K indices holds each (class, sub-type) pair once, so any length is near-balanced.
    odd = SyntheticFlowers(1001, 64, seed=5, num_classes=7)
    counts = np.bincount(odd.targets, minlength=7)
    assert counts.max() - counts.min() <= 2
    for c in range(7):
        sub = np.asarray(odd.subtypes)[np.asarray(odd.targets) == c]
        assert abs(int(sub.sum()) * 2 - len(sub)) <= 1


def test_subtype_is_the_palette_not_the_class(rendered: tuple[SyntheticFlowers, list[dict]]) -> None:
    _, outs = rendered
    for o in outs:
        petals = o["image"][o["mask"] == 1].astype(np.float64).mean(0)
        # Warm palette: red above blue; cool palette: blue above red.
        assert (petals[0] > petals[2]) == (o["subtype"] == 0)
    for c in range(6):
        assert {o["subtype"] for o in outs if o["label"] == c} == {0, 1}


@pytest.mark.parametrize("k", range(2, 19))
def test_class_tables(k: int) -> None:
    ds = SyntheticFlowers(2 * k, 32, num_classes=k)
    assert len(ds.classes) == k == len(set(ds.classes)) == len(ds.describe_classes())
    assert sorted(set(ds.targets)) == list(range(k))
    table = class_table(k)
    assert all(f < len(FORMS) and q < len(PATTERNS) for f, q in table)


def test_six_classes_are_three_forms_by_two_patterns() -> None:
    table = class_table(6)
    assert sorted(table) == [(f, q) for f in range(3) for q in range(2)]


# -- ground truth masks -----------------------------------------------------------------------------------
def test_masks_match_the_drawn_parts(rendered: tuple[SyntheticFlowers, list[dict]]) -> None:
    _, outs = rendered
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    for o in outs:
        mask, p = o["mask"], o["params"]
        assert set(np.unique(mask).tolist()) <= {0, 1, 2}
        assert 0.03 < (mask == 1).mean() < 0.6
        assert 0.004 < (mask == 2).mean() < 0.1
        dist = np.hypot(xx - p["center"][0] * 64, yy - p["center"][1] * 64)
        radius_px = p["radius"] * 64
        assert dist[mask > 0].max() <= 1.1 * radius_px + 1
        assert dist[mask == 2].max() <= p["centre_radius"] * radius_px + 1
        # The whole centre disc is labelled centre unless a stroke in front hides part of it.
        inside = dist < p["centre_radius"] * radius_px - 1
        assert p["occluded"] or (mask[inside] == 2).all()


# -- classes differ in coarse form and in fine pattern ---------------------------------------------------
def _hand_features(out: dict) -> tuple[np.ndarray, np.ndarray]:
    """Coarse: angular harmonics of the petal mask. Fine: radial share and strength of petal gradients."""
    mask = out["mask"]
    gray = out["image"].astype(np.float64).mean(-1) / 255.0
    ys, xs = np.nonzero(mask > 0)
    cy, cx = ys.mean(), xs.mean()
    py, px = np.nonzero(mask == 1)
    ang, rad = np.arctan2(py - cy, px - cx), np.hypot(py - cy, px - cx)
    coarse = np.array([abs(np.sum(rad * np.exp(1j * m * ang))) / rad.sum() for m in range(2, 13)])
    inner = mask == 1
    for axis in (0, 1):  # keep petal pixels whose 4 neighbours are petal too: no edges
        inner = inner & np.roll(inner, 1, axis) & np.roll(inner, -1, axis)
    gy, gx = np.gradient(gray)
    iy, ix = np.nonzero(inner)
    ry, rx = iy - cy, ix - cx
    norm = np.hypot(ry, rx) + 1e-6
    radial = np.mean(((gy[iy, ix] * ry + gx[iy, ix] * rx) / norm) ** 2)
    tangential = np.mean(((gx[iy, ix] * ry - gy[iy, ix] * rx) / norm) ** 2)
    fine = np.array([radial / (radial + tangential), (radial + tangential) / gray[iy, ix].mean() ** 2])
    return coarse, fine


def _nearest_mean_accuracy(x: np.ndarray, y: np.ndarray, n_train: int) -> float:
    mu, sd = x[:n_train].mean(0), x[:n_train].std(0) + 1e-9
    z = (x - mu) / sd
    centres = np.stack([z[:n_train][y[:n_train] == c].mean(0) for c in range(y.max() + 1)])
    pred = np.argmin(((z[n_train:, None] - centres[None]) ** 2).sum(-1), axis=1)
    return float((pred == y[n_train:]).mean())


def test_classes_differ_in_form_and_pattern(rendered: tuple[SyntheticFlowers, list[dict]]) -> None:
    ds, outs = rendered
    feats = [_hand_features(o) for o in outs]
    coarse, fine = np.stack([f[0] for f in feats]), np.stack([f[1] for f in feats])
    y = np.asarray(ds.targets)
    form = np.asarray([ds.class_table[t][0] for t in y])
    pattern = np.asarray([ds.class_table[t][1] for t in y])
    # Trained on the first half, scored on the second. Chance: 1/3 (form), 1/2 (pattern), 1/6 (class).
    assert _nearest_mean_accuracy(coarse, form, 60) > 0.75
    assert _nearest_mean_accuracy(fine, pattern, 60) > 0.85
    assert _nearest_mean_accuracy(np.concatenate([coarse, fine], 1), y, 60) > 0.7
