"""What each net learned, compared (topdown.findings): each finding measures what it claims on models whose answer
is known by construction, the paired tests tell a real difference from none, and the command writes
findings.json for real checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from prose import mentions, numbers
from torch import nn

from topdown.data.synthetic import SyntheticFlowers
from topdown.findings import compare, compute_findings
from topdown.findings.bands import band_reliance, bands, plane_shares
from topdown.findings.cues import cue_reliance, highpass, hybrid, lowpass, partners
from topdown.findings.detectors import detector_rows, matched_stages
from topdown.findings.localization import localization
from topdown.findings.similarity import cka_matrix, linear_cka
from topdown.findings.spectra import gradient_spectrum
from topdown.stats import paired_rank_p_value
from topdown.vis.quality import high_frequency_share, radial_power

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def flowers() -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]], torch.Tensor]:
    """96 procedural flowers at 64 px: images, labels, the class table and the flower masks."""
    src = SyntheticFlowers(96, 64, seed=3)
    images = torch.stack([torch.from_numpy(src[i][0]).permute(2, 0, 1).float() / 255 for i in range(len(src))])
    masks = torch.stack([torch.from_numpy(src.masks(i)) > 0 for i in range(len(src))])
    return images, torch.tensor(src.targets), src.class_table, masks


class NearestBand(nn.Module):
    """Classifies an image as the stored flower nearest to it in one frequency band (``low`` or ``high``): a
    model that by construction reads only the coarse image or only the fine one."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, band: str, sigma: float = 2.0) -> None:
        super().__init__()
        self.band, self.sigma = band, sigma
        self.register_buffer("stored", self._band(images).flatten(1))
        self.labels = labels
        self.num_classes = int(labels.max()) + 1

    def _band(self, x: torch.Tensor) -> torch.Tensor:
        return lowpass(x, self.sigma) if self.band == "low" else x - lowpass(x, self.sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(self._band(x).flatten(1), self.stored)  # (N, stored)
        return torch.stack([-d[:, self.labels == c].min(1).values for c in range(self.num_classes)], 1)


def test_hybrids_follow_the_band_a_model_reads(flowers) -> None:
    images, labels, table, _ = flowers
    coarse, fine = NearestBand(images, labels, "low"), NearestBand(images, labels, "high")
    cues = {
        "coarse": cue_reliance(coarse, images, labels, table, [2.0]),
        "fine": cue_reliance(fine, images, labels, table, [2.0]),
    }
    c, f = cues["coarse"]["sigma=2"], cues["fine"]["sigma=2"]
    share = lambda v: sum(v) / len(v)  # noqa: E731
    assert share(c["follows_form"]) >= 0.9 and share(c["follows_pattern"]) <= 0.2
    assert share(f["follows_pattern"]) >= 0.9 and share(f["follows_form"]) <= 0.2
    # the low-passed image keeps what the coarse model reads, the high-passed one what the fine model reads
    assert share(c["lowpass_form_correct"]) >= 0.9 and share(f["highpass_pattern_correct"]) >= 0.9
    # the paired test backs the difference in both directions
    rows = compare({"fine": {"cues": cues["fine"]}, "coarse": {"cues": cues["coarse"]}}, subject="fine")["coarse"]
    assert rows["cues.sigma=2.follows_pattern"]["difference"] > 0.7 and rows["cues.sigma=2.follows_pattern"]["p"] < 1e-6
    assert rows["cues.sigma=2.follows_form"]["difference"] < -0.7 and rows["cues.sigma=2.follows_form"]["p"] < 1e-6


def test_a_model_against_itself_claims_nothing(flowers) -> None:
    images, labels, table, _ = flowers
    coarse = NearestBand(images, labels, "low")
    cues = cue_reliance(coarse, images, labels, table, [1.0, 2.0])
    rows = compare({"a": {"cues": cues}, "b": {"cues": cues}}, subject="a")["b"]
    assert rows and all(r["difference"] == 0 and r["p"] == 1.0 for r in rows.values())


def test_partners_differ_in_form_and_pattern(flowers) -> None:
    _, labels, table, _ = flowers
    form = [table[y][0] for y in labels]
    pattern = [table[y][1] for y in labels]
    other = partners(form, pattern, seed=0)
    assert all(form[i] != form[j] and pattern[i] != pattern[j] for i, j in enumerate(other))
    assert (partners(form, pattern, seed=0) == other).all()


def test_bands_split_the_image(flowers) -> None:
    images = flowers[0][:8]
    mixed = hybrid(images, images.flip(0), 2.0)
    assert mixed.min() >= 0 and mixed.max() <= 1
    # a high-passed image keeps (almost) nothing of the low band: its own low-pass is flat
    flat = lowpass(highpass(images, 2.0), 2.0)
    assert (flat - flat.mean(dim=(-2, -1), keepdim=True)).abs().mean() < 0.2 * (images - images.mean()).abs().mean()


def test_a_coarse_model_needs_the_coarse_band_and_not_the_fine_one(flowers) -> None:
    """The suite's band split: a model that reads only the low band keeps its decisions without the finest band,
    loses them without the coarsest, and its integrated gradients sit in the coarse band."""
    images, labels, _, _ = flowers
    coarse = NearestBand(images, labels, "low", sigma=2.0)
    rec = band_reliance(coarse, images[:32], labels[:32], num_levels=3, ig_steps=8)
    share = lambda v: sum(v) / len(v)  # noqa: E731
    assert share(rec["level=2"]["removed_correct"]) >= 0.9 > 0.5 >= share(rec["level=0"]["removed_correct"])
    assert min(rec["level=0"]["ig_per_pixel"]) > max(rec["level=2"]["ig_per_pixel"])
    assert sum(plane_shares(64, 3)) == pytest.approx(1.0) and plane_shares(64, 3)[0] == 1 / 16
    # the coarsest band of a flat image is the image; the finer bands are empty
    flat = torch.full((2, 3, 64, 64), 0.3)
    low, *finer = bands(flat, 3)
    assert torch.allclose(low, flat, atol=1e-6) and all(b.abs().max() < 1e-6 for b in finer)


def test_stages_are_matched_by_their_maps_side() -> None:
    a = {"layer1": {"side": 32}, "layer2": {"side": 16}, "layer3": {"side": 8}, "layer4": {"side": 4}}
    b = {"layer1": {"side": 8}, "layer2": {"side": 16}, "layer3": {"side": 32}, "layer4": {"side": 32}}
    assert matched_stages(a, b) == [(32, "layer1", "layer4"), (16, "layer2", "layer2"), (8, "layer3", "layer1")]


class MaskedLinear(nn.Module):
    """A logit that sums the pixels under a fixed weight map: its evidence lies where the map is positive."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.layer1 = nn.Conv2d(3, 3, 1, bias=False)
        nn.init.dirac_(self.layer1.weight)
        self.register_buffer("weight", weight.float())

    def stage_names(self) -> list[str]:
        return ["layer1"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (self.layer1(x) * self.weight).sum(dim=(1, 2, 3))
        return torch.stack([s, -s], 1)


def test_localization_finds_the_evidence_where_the_model_puts_it(flowers) -> None:
    images, _, _, masks = flowers
    x, flower = images[:4], masks[:4]
    on = localization(MaskedLinear(flower[0]), x[:1], torch.tensor([0]), flower[:1], n_steps=8)
    off = localization(MaskedLinear(~flower[0]), x[:1], torch.tensor([0]), flower[:1], n_steps=8)
    for method in ("integrated_gradients", "guided_backprop"):
        assert on[method]["inside"][0] == pytest.approx(1.0) and on[method]["hit"] == [True]
        assert off[method]["inside"][0] == pytest.approx(0.0, abs=1e-6) and off[method]["hit"] == [False]
    assert on["grad_cam_last"]["chance"][0] == pytest.approx(flower[0].float().mean().item())
    assert on["grad_cam_last"]["layer"] == "layer1" == on["grad_cam_finest"]["layer"]


def test_cka_is_one_for_the_same_representation_and_low_for_unrelated_ones() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 40, generator=g)
    q, _ = torch.linalg.qr(torch.randn(40, 40, generator=g))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3 * x @ q) == pytest.approx(1.0)  # rotation and scale change nothing
    assert linear_cka(x, torch.randn(200, 40, generator=g)) < 0.3
    with pytest.raises(ValueError, match="same images"):
        linear_cka(x, x[:10])


def test_cka_matrix_of_a_net_with_itself_has_a_unit_diagonal(trained_pair, small_flowers) -> None:
    x = torch.stack([small_flowers.subset("test")[i][0] for i in range(32)])
    net = trained_pair["topdown"]
    m = cka_matrix(net, net, x)
    assert list(m) == list(net.stage_names())
    for s in m:
        assert m[s][s] == pytest.approx(1.0)
    assert all(0 <= v <= 1 + 1e-9 for row in m.values() for v in row.values())


def test_spectra_put_the_power_at_the_right_frequency() -> None:
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    slow = (0.5 + 0.4 * torch.cos(2 * torch.pi * 2 * xx / 32)).expand(1, 3, 32, 32)
    fast = (0.5 + 0.4 * torch.cos(2 * torch.pi * 13 * yy / 32)).expand(1, 3, 32, 32)
    assert radial_power(slow)[0].argmax() == 2 and radial_power(fast)[0].argmax() == 13
    assert (
        high_frequency_share(radial_power(fast)).item() > 0.99 > 0.01 > high_frequency_share(radial_power(slow)).item()
    )


class Filter(nn.Module):
    """A linear 'net' whose logit is the image through a fixed 3x3 filter, summed against a random map."""

    def __init__(self, kernel: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("kernel", kernel.expand(3, 1, 3, 3).clone())
        self.register_buffer("map", torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (nn.functional.conv2d(x, self.kernel, padding=1, groups=3) * self.map).sum(dim=(1, 2, 3))
        return torch.stack([s, -s], 1)


def test_a_high_pass_decision_has_a_high_frequency_gradient() -> None:
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(8, dtype=torch.long)
    blur = Filter(torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    edges = Filter(torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]]))
    smooth, sharp = gradient_spectrum(blur, x, y), gradient_spectrum(edges, x, y)
    assert min(sharp["gradient_high"]) > max(smooth["gradient_high"])
    assert paired_rank_p_value(smooth["gradient_high"], sharp["gradient_high"]) < 0.05
    assert paired_rank_p_value(smooth["gradient_high"], smooth["gradient_high"]) == 1.0


def test_findings_of_the_tiny_pair_on_one_set_of_images(trained_pair, small_flowers) -> None:
    test = small_flowers.subset("test")
    src, idx = small_flowers.splits()["test"]
    x = torch.stack([test[i][0] for i in range(24)])
    y = torch.tensor(test.targets[:24])
    masks = torch.stack([torch.from_numpy(src.masks(idx[i])).long() for i in range(24)])
    doc = compute_findings(trained_pair, x, y, class_table=src.class_table, masks=masks, ig_steps=4)
    td, base = doc["models"]["topdown"], doc["models"]["baseline"]
    assert "pyramid_swaps" in td and "pyramid_swaps" not in base
    assert list(td["pyramid_swaps"]) == ["coarse_levels=1", "coarse_levels=2"]
    rows = doc["comparisons"]["baseline"]
    assert {"cues.sigma=1.follows_form", "loc.grad_cam_finest.inside", "spectrum.gradient_high"} <= set(rows)
    assert all(0 <= r["p"] <= 1 for r in rows.values())
    assert set(doc["cka"]) == {"baseline|topdown"}
    # dissection of every stage, and the stages compared where both nets' maps have the same side
    for name, net in trained_pair.items():
        assert list(doc["models"][name]["detectors"]) == list(net.stage_names())
    rows = detector_rows(doc["models"], ["baseline", "topdown"])
    assert rows and all(r["baseline"]["side"] == r["topdown"]["side"] == r["side"] for r in rows)
    json.dumps(doc, allow_nan=False)  # strict JSON as it is


def test_the_command_writes_findings_and_refuses_one_checkpoint(tiny_checkpoints, tmp_path, capsys) -> None:
    from topdown.findings.__main__ import main

    ckpts = [str(tiny_checkpoints["baseline"]), str(tiny_checkpoints["topdown"])]
    args = ["--ckpt+", ckpts[0], "--ckpt+", ckpts[1], "--names", "[baseline, topdown]", "--out", str(tmp_path)]
    main([*args, "--images", "12", "--ig_steps", "4"])
    doc = json.loads((tmp_path / "findings.json").read_text())
    assert doc["images"] == 12 and doc["dataset"] == "synthetic" and set(doc["models"]) == {"baseline", "topdown"}
    # it printed every comparison of findings.json: the two means, the difference and p on one line, with the verdict
    from topdown.findings.report import comparison_rows

    out, rows = capsys.readouterr().out, comparison_rows(doc)
    printed = [(numbers(line)[-4:], line) for line in out.splitlines()]
    assert rows
    for row in rows:
        values = numbers(" ".join(row[2:6]))
        assert any(v == values and mentions(line, row[6]) for v, line in printed), row
    figures = {"hybrids.png", "localization.png", "bands.png", "spectra.png", "cka.png"}
    assert {p.name for p in tmp_path.glob("*.png")} == figures  # and nothing half-written beside them
    with pytest.raises(SystemExit):
        main(["--ckpt+", ckpts[0], "--out", str(tmp_path / "one")])
    err = capsys.readouterr().err
    assert "--ckpt: give at least two checkpoints" in err and "Traceback" not in err
    (tmp_path / "vis.json").write_text(json.dumps({"models": {"baseline": {"methods": {}}}}))
    with pytest.raises(SystemExit):
        main([*args, "--images", "12", "--vis", str(tmp_path / "vis.json")])
    err = capsys.readouterr().err
    assert "vis.json: no spectra renders of 'baseline'" in err and len(err.strip().splitlines()) == 1


def _doc(diffs_and_ps: list[tuple[float, float]]) -> dict:
    rows = {
        f"f{i}": {"label": f"f{i}", "kind": "share", "topdown": d, "baseline": 0.0, "difference": d, "p": p}
        for i, (d, p) in enumerate(diffs_and_ps)
    }
    return {"subject": "topdown", "comparisons": {"baseline": rows}}


def test_a_finding_the_data_cannot_give_an_unknown_one_and_a_missing_layer_are_named(
    trained_pair, small_flowers
) -> None:
    test = small_flowers.subset("test")
    x, y = torch.stack([test[i][0] for i in range(8)]), torch.tensor(test.targets[:8])
    with pytest.raises(ValueError, match="unknown finding 'texture'; choose from spectrum, bands"):
        compute_findings(trained_pair, x, y, which=["texture"])
    with pytest.raises(ValueError, match=r"localization needs part masks \(only the procedural flowers have them\)"):
        compute_findings(trained_pair, x, y, which=["localization"])  # as on flower_photos: no masks given
    with pytest.raises(ValueError, match="layers: baseline has no layer 'layer9'; its stages are layer1, layer2"):
        compute_findings(trained_pair, x, y, which=["cka"], layers=["layer9"])
    doc = compute_findings(trained_pair, x, y, which=["cka"], layers=["layer1", "layer2.0"])
    assert doc["findings"] == ["cka"] and not doc["comparisons"]["baseline"]
    assert list(doc["cka"]["baseline|topdown"]) == ["layer1", "layer2.0"]


def test_each_finding_is_kept_as_it_finishes_and_reused_until_its_inputs_change(
    trained_pair, small_flowers, tmp_path, monkeypatch
) -> None:
    import topdown.findings as F
    from topdown.store import PartStore

    test = small_flowers.subset("test")
    x, y = torch.stack([test[i][0] for i in range(8)]), torch.tensor(test.targets[:8])
    store = PartStore(tmp_path)
    first = compute_findings(trained_pair, x, y, ig_steps=4, store=store)
    assert {p.name for p in (tmp_path / "parts" / "topdown").iterdir()} == {"spectrum.json", "bands.json"}

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a stored finding")

    # a killed run resumes: what is stored is read back, not computed again, and the document is the same
    monkeypatch.setattr(F, "gradient_spectrum", fail)
    monkeypatch.setattr(F, "band_reliance", fail)
    monkeypatch.setattr(F, "cka_matrix", fail)
    assert compute_findings(trained_pair, x, y, ig_steps=4, store=store) == first
    # a changed setting, or other images, computes again
    with pytest.raises(AssertionError, match="recomputed"):
        compute_findings(trained_pair, x, y, ig_steps=5, store=store)
    with pytest.raises(AssertionError, match="recomputed"):
        compute_findings(trained_pair, x.flip(0), y.flip(0), ig_steps=4, store=store)


def test_a_direction_is_claimed_only_where_every_seed_agrees_and_every_test_backs_it() -> None:
    from topdown.findings.report import across_seeds

    seeds = [
        _doc([(0.2, 0.001), (0.2, 0.001), (0.2, 0.001), (-0.1, 0.01), (0.0, 1.0)]),
        _doc([(0.1, 0.01), (0.1, 0.2), (-0.1, 0.01), (-0.2, 0.001), (0.0, 1.0)]),
    ]
    verdicts = [row["verdict"] for row in across_seeds(seeds)]
    assert verdicts == ["higher", "higher in sign only", "mixed", "lower", "no difference"]


def test_on_real_photos_the_findings_are_the_spectra_and_cka(trained_pair, small_flowers) -> None:
    """Without a class table and part masks (flower_photos, Flowers102) only what needs neither is computed."""
    test = small_flowers.subset("test")
    x = torch.stack([test[i][0] for i in range(16)])
    y = torch.tensor(test.targets[:16])
    doc = compute_findings(trained_pair, x, y, ig_steps=4)
    assert set(doc["models"]["topdown"]) == {"spectrum", "bands"}
    levels = [f"level={i}" for i in range(trained_pair["topdown"].pyramid.num_levels)]
    assert list(doc["models"]["baseline"]["bands"]) == levels  # the top-down net's split, for both
    assert set(doc["comparisons"]["baseline"]) == {"spectrum.gradient_high"} | {
        f"bands.{lv}.{k}" for lv in levels for k in ("removed", "ig")
    }
    assert doc["cka"]["baseline|topdown"]


def _learned_doc(diagonal: float, follows_form: list[bool]) -> dict:
    """One seed's findings with what the page reads for the similarity, swap and dissection tables: a top-down net
    whose stages run coarse to fine (4 then 8 px) against a baseline's fine to coarse, and a control equal to the
    baseline stage by stage."""

    def stages(sides: tuple[int, int], petals: int) -> dict:
        rec = {"units": 8, "iou_threshold": 0.04, "mean_best_iou": 0.2, "mean_best_iou_shuffled": 0.1}
        return {
            f"layer{i + 1}": {**rec, "side": side, "detectors": {"background": 0, "petals": petals, "centre": 1}}
            for i, side in enumerate(sides)
        }

    names = ["layer1", "layer2"]
    return {
        "subject": "topdown",
        "models": {
            "baseline": {"detectors": stages((8, 4), 3)},
            "topdown": {
                "detectors": stages((4, 8), 5),
                "pyramid_swaps": {"coarse_levels=1": {"follows_form": follows_form, "follows_pattern": [True] * 4}},
            },
            "control": {},
        },
        # {baseline stage: {other stage: CKA}}: the top-down net's layer2 is closest to the baseline's layer1
        "cka": {
            "baseline|topdown": {
                "layer1": {"layer1": diagonal, "layer2": 0.9},
                "layer2": {"layer1": 0.1, "layer2": diagonal},
            },
            "baseline|control": {b: {c: 1.0 if b == c else 0.5 for c in names} for b in names},
        },
    }


def test_the_page_states_similarity_swaps_and_dissection_seed_by_seed() -> None:
    from topdown.findings.report import cka_markdown, detectors_markdown, swaps_markdown

    seeds = [_learned_doc(0.4, [True, True, False, False]), _learned_doc(0.6, [True, True, True, False])]
    cka = cka_markdown(seeds)
    same_depth = {line.split("|")[1].strip(): line for line in cka if line.startswith("| layer")}
    assert numbers(same_depth["layer1"]) == [0.4, 0.6, 1.0, 1.0]  # topdown per seed, then the control per seed
    closest = next(line for line in cka if "resembles most" in line)
    # the top-down net's fine layer2 (8 px) resembles the baseline's fine layer1 (8 px) most, at 0.9
    assert numbers(closest.split(";")[1]) == [8, 8, 8, 8, 0.9] and "layer2 (8×8) → layer1 (8×8)" in closest
    matched = next(line for line in cka if "matched map size" in line)
    assert numbers(matched.split(":")[1]) == [8, 8, 0.9, 0.9, 4, 4, 0.1, 0.1]
    ranked = next(line for line in cka if line.startswith("Mean same-depth"))
    assert ranked.index("control") < ranked.index("topdown") and numbers(ranked) == [1.0, 0.5]

    swaps = [line for line in swaps_markdown(seeds) if line.startswith("| 1 ")]
    assert [numbers(cell) for cell in swaps[0].split("|")[1:4]] == [[1], [0.5, 0.75], [1.0, 1.0]]

    rows = [line for line in detectors_markdown(seeds) if "×" in line]
    # finest side first; each side pairs the top-down stage and the baseline stage of that size
    assert [(mentions(r, "topdown (layer2)"), mentions(r, "baseline (layer1)")) for r in rows[:2]] == [
        (True, False),
        (False, True),
    ]
    assert [r.split("|")[3].strip() for r in rows[:2]] == ["0/5/1 · 0/5/1", "0/3/1 · 0/3/1"]
    assert cka_markdown([{**seeds[0], "cka": {}}]) == [] and swaps_markdown([{**seeds[0], "models": {}}]) == []


def test_the_across_seeds_command_prints_the_verdicts_and_names_a_bad_file(tmp_path, capsys) -> None:
    from topdown.findings.report import main as report_main

    paths = []
    for i, doc in enumerate([_doc([(0.2, 0.001), (0.1, 0.01)]), _doc([(0.1, 0.01), (-0.1, 0.01)])]):
        paths.append(tmp_path / f"seed{i}.json")
        paths[-1].write_text(json.dumps(doc))
    report_main([str(p) for p in paths])
    rows = [r.split("|") for r in capsys.readouterr().out.splitlines()[2:]]
    assert [(r[1].strip(), numbers(r[2]), r[-2].strip()) for r in rows] == [
        ("f0", [0.2, 0.1], "higher"),
        ("f1", [0.1, -0.1], "mixed"),
    ]
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SystemExit):
        report_main([str(paths[0]), str(tmp_path / "broken.json")])
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'broken.json'}: not a JSON file") and "\n" not in err


def test_batches_cover_every_image_once_in_order() -> None:
    from topdown.batches import map_batches

    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    seen = []
    out = map_batches(lambda a, b: (seen.append(len(a)), a[:, 0] + b)[1], x, y, batch_size=4)
    assert seen == [4, 4, 2] and out.tolist() == [2.0 * i for i in range(10)]
    levels = [torch.zeros(10, 1), torch.ones(10, 2)]  # a pyramid: its levels are cut alike
    both = map_batches(lambda lv: {"a": lv[0], "b": lv[1]}, levels, batch_size=3)
    assert both["a"].shape == (10, 1) and both["b"].shape == (10, 2)
    with pytest.raises(ValueError, match=r"different lengths \[10, 9\]"):
        map_batches(lambda a, b: a, x, y[:9], batch_size=4)
