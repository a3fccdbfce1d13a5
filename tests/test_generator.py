"""The learned prior: a generator trained on a net's own training images reconstructs them better as it trains,
resumes where a killed run stopped, is refused for another net or other data, and visualizes through DGN-AM and
PPGN (the class probability rises; the prior term keeps the chains near the data's codes)."""

from __future__ import annotations

import copy
import json

import pytest
import tiny_nets
import torch
from conftest import small_data

from topdown.generator import GeneratorConfig, GeneratorError, dgn_am, load_prior, ppgn, train_generator
from topdown.generator import train as T
from topdown.generator.model import codes
from topdown.generator.prior import code_distance
from topdown.vis.priors import NO_KID, SOME_KID, markdown

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = {"epochs": 6, "width": 8, "batch_size": 32, "dae_epochs": 40, "lr": 5e-3}


@pytest.fixture(scope="module")
def data():
    return small_data()


@pytest.fixture(scope="module")
def net(data):
    return tiny_nets.load("trained", "tiny_topdown", data.num_classes)


@pytest.fixture(scope="module")
def images(data) -> torch.Tensor:
    train = data.subset("train")
    return torch.stack([train[i][0] for i in range(512)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, net, images, data):
    out = tmp_path_factory.mktemp("gen") / "g.pt"
    record = train_generator(net, images, out, GeneratorConfig(**CFG), "tiny.ckpt", data.describe(), progress=False)
    return out, record


def _reconstruction_error(prior, net, images: torch.Tensor) -> float:
    with torch.no_grad():
        return float((prior.G(codes(net, images)) - images).pow(2).mean())


def test_the_generator_learns_to_draw_the_images_back(trained, net, images, data) -> None:
    path, record = trained
    history = [h["pixel"] for h in record["history"]]
    assert len(history) == CFG["epochs"] and history[-1] < 0.8 * history[0], history
    assert record["history"][-1]["code"] < record["history"][0]["code"]
    # on images it never saw, the trained generator draws them back better than an untrained one
    held_out = torch.stack([data.subset("val")[i][0] for i in range(64)])
    prior = load_prior(path, net, "tiny.ckpt", data.describe())
    fresh = copy.deepcopy(prior)
    torch.manual_seed(0)
    fresh.G = type(prior.G)(**prior.G.config()).eval()
    assert _reconstruction_error(prior, net, held_out) < 0.7 * _reconstruction_error(fresh, net, held_out)
    # the file loads with weights_only=True and says what it was trained for
    saved = torch.load(path, weights_only=True)
    assert saved["net"]["checkpoint"] == "tiny.ckpt" and saved["data"] == data.describe()
    assert saved["complete"] and saved["config"]["adversarial_weight"] == 0.0
    assert not path.with_name("g.partial.pt").exists()


def test_a_generator_for_another_net_or_other_data_is_refused_in_one_line(trained, data) -> None:
    path, _ = trained
    other = tiny_nets.load("trained", "tiny_baseline", data.num_classes)
    with pytest.raises(GeneratorError) as err:
        load_prior(path, other, "baseline.ckpt", data.describe())
    msg = str(err.value)
    assert "\n" not in msg and "tiny.ckpt" in msg and "baseline.ckpt" in msg
    net = tiny_nets.load("trained", "tiny_topdown", data.num_classes)
    with pytest.raises(GeneratorError) as err:
        load_prior(path, net, "tiny.ckpt", {**data.describe(), "dataset": "flower_photos"})
    msg = str(err.value)
    assert "\n" not in msg and "synthetic" in msg and "flower_photos" in msg
    bad = path.with_name("not_a_generator.pt")
    bad.write_bytes(b"junk")
    with pytest.raises(GeneratorError, match="not_a_generator.pt: not a readable generator file"):
        load_prior(bad, net)


@pytest.mark.parametrize("adversarial", [0.0, 0.05], ids=["plain", "with_critic"])
def test_a_killed_training_resumes_where_it_stopped(tmp_path, net, images, data, monkeypatch, adversarial) -> None:
    cfg = GeneratorConfig(**{**CFG, "epochs": 3, "adversarial_weight": adversarial})
    whole = train_generator(net, images, tmp_path / "whole.pt", cfg, "tiny.ckpt", data.describe(), progress=False)
    real_epoch, calls = T._epoch, []

    def dies_in_the_third(*args, **kw):
        calls.append(args[6])
        if args[6] == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kw)

    monkeypatch.setattr(T, "_epoch", dies_in_the_third)
    out = tmp_path / "killed.pt"
    with pytest.raises(KeyboardInterrupt):
        train_generator(net, images, out, cfg, "tiny.ckpt", data.describe(), progress=False)
    partial = torch.load(tmp_path / "killed.partial.pt", weights_only=True)
    assert partial["epochs_done"] == 2 and not out.exists()
    monkeypatch.setattr(T, "_epoch", real_epoch)
    calls.clear()
    monkeypatch.setattr(T, "_epoch", lambda *a, **k: (calls.append(a[6]), real_epoch(*a, **k))[1])
    resumed = train_generator(net, images, out, cfg, "tiny.ckpt", data.describe(), progress=False)
    assert calls == [2]  # only the epoch the kill lost
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert ("adversarial" in resumed["history"][-1]) == (adversarial > 0) and "critic" not in resumed
    for k, v in whole["generator"]["state_dict"].items():
        assert torch.allclose(v.float(), resumed["generator"]["state_dict"][k].float(), atol=1e-5), k
    # a finished file with the same recipe is reused, not trained again
    calls.clear()
    train_generator(net, images, out, cfg, "tiny.ckpt", data.describe(), progress=False)
    assert calls == []


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="generator epochs must be >= 1"):
        GeneratorConfig(epochs=0).validate()
    with pytest.raises(ValueError, match="generator adversarial_weight must be >= 0, got -0.1"):
        GeneratorConfig(adversarial_weight=-0.1).validate()


def test_dgn_am_and_ppgn_raise_the_class_probability(trained, net, data) -> None:
    path, _ = trained
    prior = load_prior(path, net, "tiny.ckpt", data.describe())
    classes = list(range(data.num_classes))
    with torch.no_grad():
        start = net(prior.G(prior.mean.expand(len(classes), -1))).softmax(1)[range(len(classes)), classes]
    d = dgn_am(prior, classes, steps=40, lr=0.05)
    assert d.probs.mean() > start.mean() + 0.1, (start, d.probs)
    assert (d.codes >= prior.lo - 1e-6).all() and (d.codes <= prior.hi + 1e-6).all()  # clipped to the data's range
    p = ppgn(prior, classes, chains=2, steps=40)
    assert p.images.shape[0] == 2 * len(classes)
    assert p.trace[-1] > p.trace[0] + 0.1, p.trace[:3] + p.trace[-3:]


def test_the_prior_term_keeps_chains_near_the_data_codes(trained, net, images, data) -> None:
    path, _ = trained
    prior = load_prior(path, net, "tiny.ckpt", data.describe())
    with torch.no_grad():
        data_codes = codes(net, images)
    far = {}
    for eps1 in (0.0, 0.3):
        for kind in ("dae", "reconstruction"):
            p = ppgn(prior, [0, 1, 2], chains=2, steps=40, eps1=eps1, kind=kind)
            far[eps1, kind] = float(code_distance(prior, p.codes, data_codes).mean())
    assert far[0.0, "dae"] > 1.5 * far[0.3, "dae"], far
    assert far[0.0, "reconstruction"] > 1.5 * far[0.3, "reconstruction"], far


def test_visualize_through_the_generators_and_measure_the_priors(tmp_path, tiny_checkpoints, capsys) -> None:
    from topdown.checkpoint import load_run
    from topdown.vis.cli import main as vis_main

    run = load_run([tiny_checkpoints["baseline"], tiny_checkpoints["topdown"]], ["baseline", "topdown"])
    train = run.data_module.subset("train")
    imgs = torch.stack([train[i][0] for i in range(len(train))])
    lm = run.models["topdown"]
    gen = tmp_path / "topdown_gen.pt"
    train_generator(lm.net, imgs, gen, GeneratorConfig(**CFG), str(lm.path), run.data_description, progress=False)
    ckpts = ["--ckpt+", str(tiny_checkpoints["baseline"]), "--ckpt+", str(tiny_checkpoints["topdown"])]
    quick = ["--steps", "8", "--reference", "32", "--color_images", "64", "--priors.renders", "2"]
    quick += ["--dgn_am.steps", "10", "--ppgn.steps", "10", "--priors.dgn_am.steps", "10", "--priors.ppgn.steps", "10"]
    # a generator named for the wrong model is refused before any work
    with pytest.raises(GeneratorError, match="topdown_gen.pt: trained for .*, not for .*baseline"):
        vis_main([*ckpts, "--out", str(tmp_path / "bad"), *quick, "--generators", f"{{baseline: {gen}}}"])
    assert not (tmp_path / "bad" / "vis.json").exists()
    out = tmp_path / "vis"
    vis_main(
        [
            *ckpts,
            "--out",
            str(out),
            *quick,
            "--methods",
            "[dgn_am, ppgn, priors]",
            "--generators",
            f"{{topdown: {gen}}}",
        ]
    )
    doc = json.loads((out / "vis.json").read_text())
    td, base = doc["models"]["topdown"]["methods"], doc["models"]["baseline"]["methods"]
    assert {"dgn_am", "ppgn", "priors"} <= set(td) and "dgn_am" not in base and "ppgn" not in base
    # both say that they show what the generator draws, not the net's own preferred stimulus
    from topdown.vis.methods.generative import _LEARNED_PRIOR_CAVEAT

    assert all(_LEARNED_PRIOR_CAVEAT in td[m]["description"] for m in ("dgn_am", "ppgn"))
    measures = td["priors"]["details"]["measures"]
    assert list(measures) == ["fourier", "maco", "dgn_am", "ppgn"]
    assert list(base["priors"]["details"]["measures"]) == ["fourier", "maco"]  # no generator: pixel priors only
    for m in measures.values():
        assert 0 <= m["target_prob"] <= 1 and set(m["transfer"]) == {"baseline"} and m["nearest_train_vs_real"] > 0
    assert doc["generators"]["topdown"]["checkpoint"] == str(tiny_checkpoints["topdown"])
    # the side-by-side tables as Markdown: one row per prior of each model; a wrong file is one line naming it
    from topdown.vis.priors import main as priors_main

    capsys.readouterr()
    priors_main([str(out / "vis.json")])
    printed = capsys.readouterr().out
    blocks = printed.split("**")[1:]  # title, table, title, table, ...
    priors = [
        (
            blocks[i].split("'s")[0],
            [r.split("|")[1].strip() for r in blocks[i + 1].splitlines()[4:] if r.startswith("|")],
        )
        for i in range(0, len(blocks), 2)
    ]
    assert sorted(priors) == [("baseline", ["fourier", "maco"]), ("topdown", ["fourier", "maco", "dgn_am", "ppgn"])]
    with pytest.raises(SystemExit):
        priors_main([str(out / "missing.json")])
    assert (
        capsys.readouterr().err.strip() == f"error: {out / 'missing.json'}: cannot read it (No such file or directory)"
    )


def test_a_kid_that_could_not_be_computed_prints_as_a_dash_with_its_reason() -> None:
    """With many classes a rendered class may have fewer than two reference photos: its KID is NaN (null in
    vis.json), printed as a dash with a note on ``--reference``, never as ``None`` or ``nan``."""
    header = ["prior", "target p", "p under b", "diversity", "KID", "nearest train / real", "objective / real max"]
    rows = [["fourier", 0.99, 0.5, 0.03, None, 0.9, 1.2], ["ppgn", 0.93, 0.2, 0.1, 0.2334, 0.8, 1.4]]
    doc = {
        "models": {
            "a": {"methods": {"priors": {"details": {"tables": [{"header": header, "rows": rows, "judge": "b"}]}}}}
        }
    }
    text = markdown(doc)
    assert "| fourier | 0.99 | 0.5 | 0.03 | – | 0.9 | 1.2 |" in text and "| ppgn | 0.93 | 0.2 | 0.1 | 0.2334 |" in text
    assert NO_KID in text and "None" not in text and "nan" not in text
    rows[0][4] = 0.5
    assert NO_KID not in markdown(doc)


def test_a_kid_over_fewer_classes_than_were_rendered_says_so() -> None:
    """A KID averaged over only the classes that had two reference photos says over how many of them."""
    header = ["prior", "target p", "p under b", "diversity", "KID"]
    table = {"header": header, "rows": [["ppgn", 0.9, 0.2, 0.1, 0.25]], "judge": "b"}
    measures = {"ppgn": {"kid_classes": [4, 6]}}
    doc = {"models": {"a": {"methods": {"priors": {"details": {"tables": [table], "measures": measures}}}}}}
    assert SOME_KID.format(measured=4, rendered=6) in markdown(doc)
    measures["ppgn"]["kid_classes"] = [6, 6]
    assert "rendered classes" not in markdown(doc)
