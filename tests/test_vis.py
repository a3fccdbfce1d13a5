"""topdown.vis building blocks on exact, hand-computable cases: objectives on a constant-weight model,
transforms on small tensors, parameterizations, hooks, redirected ReLU and render reproducibility."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from topdown.models import create_model
from topdown.vis import objectives as O
from topdown.vis import param as P
from topdown.vis import transforms as T
from topdown.vis.hooks import activations, capture, frozen, redirected_relu
from topdown.vis.render import evaluate, render

pytestmark = pytest.mark.usefixtures("one_thread")


class Constant(nn.Module):
    """conv (1x1): channel 0 = R + G + B, channel 1 = 2 R - 1; ReLU; mean pool; fc: logits = [a0 + a1, a0 - a1]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]]).view(2, 3, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, -1.0]))
            self.fc.weight.copy_(torch.tensor([[1.0, 1.0], [1.0, -1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


def _image() -> torch.Tensor:
    # (2, 3, 2, 3): distinct values everywhere, all in [0, 1].
    return torch.arange(36, dtype=torch.float32).view(2, 3, 2, 3) / 36.0


def _acts(model: nn.Module, x: torch.Tensor) -> dict:
    return activations(model, x, ["conv", "act", "act@in", "logits"], stop_early=False)


# --------------------------------------------------------------------------------------------------
# Objectives: exact values
# --------------------------------------------------------------------------------------------------
def test_unit_objectives_exact_values() -> None:
    m, x = Constant(), _image()
    acts = _acts(m, x)
    c0 = x.sum(1)  # (2, 2, 3)
    c1 = 2 * x[:, 0] - 1
    torch.testing.assert_close(O.channel("conv", 0)(acts), c0.flatten(1).mean(1))
    torch.testing.assert_close(O.channel("act", 1)(acts), c1.clamp_min(0).flatten(1).mean(1))
    torch.testing.assert_close(O.channel("act@in", 1)(acts), c1.flatten(1).mean(1))  # pre-activation
    torch.testing.assert_close(O.neuron("conv", 1, x=2, y=0)(acts), c1[:, 0, 2])
    torch.testing.assert_close(O.neuron("conv", 0)(acts), c0[:, 1, 1])  # centre: bottom-right of the middle
    a0, a1 = c0.flatten(1).mean(1), c1.clamp_min(0).flatten(1).mean(1)
    torch.testing.assert_close(O.class_logit(1)(acts), a0 - a1)
    torch.testing.assert_close(O.class_logprob(0)(acts), torch.log_softmax(torch.stack([a0 + a1, a0 - a1], 1), 1)[:, 0])
    torch.testing.assert_close(O.direction("conv", torch.tensor([1.0, -2.0]))(acts), (c0 - 2 * c1).flatten(1).mean(1))
    torch.testing.assert_close(
        O.direction_neuron("conv", torch.tensor([0.5, 1.0]), x=0, y=1)(acts), 0.5 * c0[:, 1, 0] + c1[:, 1, 0]
    )
    torch.testing.assert_close(O.deepdream("conv")(acts), (c0.pow(2).sum((1, 2)) + c1.pow(2).sum((1, 2))) / 12)
    torch.testing.assert_close(O.channels("conv", [1, 0])(acts), torch.stack([c1[0].mean(), c0[1].mean()]))
    torch.testing.assert_close(
        O.channels("conv", [1, 0], scale=[2.0, 4.0])(acts), torch.stack([c1[0].mean() / 2, c0[1].mean() / 4])
    )
    torch.testing.assert_close(O.classes([0, 1])(acts), torch.stack([(a0 + a1)[0], (a0 - a1)[1]]))
    assert O.channel("conv", 0).layers == ("conv",)


def test_penalties_exact_values() -> None:
    m, x = Constant(), _image()
    acts = _acts(m, x)
    # Along W neighbours differ by 1/36, along H by 3/36.
    torch.testing.assert_close(O.total_variation()(acts), torch.full((2,), 4 / 36))
    torch.testing.assert_close(O.l1(constant=0.0)(acts), x.flatten(1).mean(1))
    torch.testing.assert_close(O.l2(constant=0.0)(acts), x.pow(2).flatten(1).mean(1).sqrt())
    torch.testing.assert_close(O.alpha_norm(alpha=6, constant=0.5)(acts), (x - 0.5).abs().pow(6).flatten(1).mean(1))
    target = acts["conv"][:1]
    expected = (acts["conv"] - target).flatten(1).pow(2).sum(1) / target.pow(2).sum()
    torch.testing.assert_close(O.feature_distance("conv", target)(acts), expected)
    assert O.feature_distance("conv", target)(acts)[0] == 0


def test_diversity_and_alignment_exact() -> None:
    same = {"f": torch.ones(3, 2, 2, 2)}
    torch.testing.assert_close(O.diversity("f")(same), torch.ones(3))  # identical Gram matrices: cosine 1
    torch.testing.assert_close(O.alignment("f")(same), torch.zeros(3))
    # Orthogonal channels: Gram matrices share no entry, cosine 0.
    t = torch.zeros(2, 2, 1, 1)
    t[0, 0] = 1.0
    t[1, 1] = 1.0
    torch.testing.assert_close(O.diversity("f")({"f": t}), torch.zeros(2))
    # Frames 0, 1, 2 with values 0, 1, 3: pair (0,1) costs 1/2, (1,2) 4/2, (0,2) 9/4; shared by both images.
    f = torch.tensor([0.0, 1.0, 3.0]).view(3, 1, 1, 1)
    expected = torch.tensor([(0.5 + 9 / 4) / 2, (0.5 + 2.0) / 2, (2.0 + 9 / 4) / 2])
    torch.testing.assert_close(O.alignment("f")({"f": f}), expected)


def test_channel_interpolate_weights() -> None:
    t = torch.zeros(3, 2, 1, 1)
    t[:, 0] = 1.0
    t[:, 1] = 3.0
    out = O.channel_interpolate("f", 0, "f", 1)({"f": t})
    torch.testing.assert_close(out, torch.tensor([1.0, 2.0, 3.0]))


def test_objective_arithmetic_and_batch() -> None:
    m, x = Constant(), _image()
    acts = _acts(m, x)
    a, b = O.channel("conv", 0), O.total_variation()
    torch.testing.assert_close((a - 0.1 * b)(acts), a(acts) - 0.1 * b(acts))
    torch.testing.assert_close((2 * a + b / 4 - 1)(acts), 2 * a(acts) + b(acts) / 4 - 1)
    torch.testing.assert_close((-a)(acts), -a(acts))
    torch.testing.assert_close(sum([a, b])(acts), a(acts) + b(acts))
    assert set((a - b).layers) == {"conv", "image"}
    per = O.channel("conv", 0, batch=1)(acts)
    assert per[0] == 0 and per[1] == a(acts)[1]
    mixed = O.Objective.sum([O.channel("conv", 0, batch=0), O.channel("conv", 1, batch=1)])(acts)
    torch.testing.assert_close(mixed, O.channels("conv", [0, 1])(acts))
    torch.testing.assert_close(O.as_objective("conv:1")(acts), O.channel("conv", 1)(acts))
    with pytest.raises(TypeError):
        a * a
    with pytest.raises(ValueError):
        O.as_objective("conv")
    with pytest.raises(IndexError):
        O.channel("conv", 0, batch=5)(acts)


# --------------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------------
def test_capture_removes_hooks_even_on_error() -> None:
    m = Constant()
    cap = capture(m, ["conv", "act"])
    with cap:
        cap.run(_image())
        assert m.conv._forward_hooks
    assert not m.conv._forward_hooks and not m.act._forward_hooks
    with pytest.raises(RuntimeError), capture(m, ["conv"]):
        raise RuntimeError("boom")
    assert not m.conv._forward_hooks
    with pytest.raises(KeyError, match="no module named"):
        capture(m, ["nope"])


def test_capture_stops_after_the_last_needed_layer() -> None:
    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise AssertionError("ran past the requested layer")

    m = nn.Sequential()
    m.add_module("conv", nn.Conv2d(3, 2, 1))
    m.add_module("boom", Boom())
    acts = activations(m, _image(), ["conv"])
    assert acts["conv"].shape == (2, 2, 2, 3) and "logits" not in acts


def test_hooks_address_both_networks_by_name() -> None:
    for name in ("tiny_baseline", "tiny_topdown"):
        net = create_model(name, num_classes=3, stem_pool=False).eval()
        x = torch.rand(2, 3, 32, 32)
        acts = activations(net, x, ["layer2.0.conv1", "layer3", "head.fc", "layer2.0.act2@in"], stop_early=False)
        assert acts["head.fc"].shape == (2, 3)
        torch.testing.assert_close(acts["logits"], net(x))
        assert acts["layer2.0.act2@in"].min() < 0  # a pre-activation, not a ReLU output


def test_redirected_relu_lets_dead_units_rise_and_is_restored() -> None:
    m = Constant()
    x = torch.full((1, 3, 2, 2), 0.1, requires_grad=True)  # channel 1 = 2 * 0.1 - 1 < 0: dead
    (-O.channel("act", 1)(activations(m, x, ["act"], grad=True))).sum().backward()  # the loss render minimizes
    assert x.grad.abs().sum() == 0
    x.grad = None
    with redirected_relu(m) as relus:
        assert len(relus) == 1 and m.act is relus[0]
        (-O.channel("act", 1)(activations(m, x, ["act"], grad=True))).sum().backward()
    assert isinstance(m.act, nn.ReLU) and type(m.act) is nn.ReLU
    # Descent on the loss pushes R up: d loss / d R = -1/4 (mean over 4 positions) * 2 (the conv weight).
    torch.testing.assert_close(x.grad[:, 0], torch.full((1, 2, 2), -0.5))


def test_frozen_restores_mode_and_flags() -> None:
    m = Constant().train()
    m.fc.weight.requires_grad_(False)
    with frozen(m):
        assert not m.training and not any(p.requires_grad for p in m.parameters())
    assert m.training and m.conv.weight.requires_grad and not m.fc.weight.requires_grad


# --------------------------------------------------------------------------------------------------
# Transforms: exact small tensors
# --------------------------------------------------------------------------------------------------
def test_pad_and_jitter_exact() -> None:
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    torch.testing.assert_close(T.Pad(0.25)(x), nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"))
    torch.testing.assert_close(T.Pad(0.25, "constant", 0.5)(x)[0, 0, 0], torch.full((6,), 0.5))
    g = torch.Generator().manual_seed(3)
    xb = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4)
    out = T.Jitter(0.5)(xb, g)  # d = 2 px: offsets in {0, 1, 2}
    g = torch.Generator().manual_seed(3)
    oy, ox = torch.randint(0, 3, (2,), generator=g), torch.randint(0, 3, (2,), generator=g)
    for i in range(2):
        torch.testing.assert_close(out[i], xb[i, :, oy[i] : oy[i] + 2, ox[i] : ox[i] + 2])


def test_rotate_and_scale_exact() -> None:
    x = torch.arange(2 * 3 * 16, dtype=torch.float32).view(2, 3, 4, 4)
    g = torch.Generator().manual_seed(0)
    rot = T.RandomRotate(choices=(90.0,))(x, g)
    # 90 degrees: output (i, j) samples input (row j, col W - 1 - i), which is torch.rot90 with k=1.
    torch.testing.assert_close(rot, torch.rot90(x, k=1, dims=(2, 3)), atol=1e-4, rtol=0)
    torch.testing.assert_close(T.RandomScale((1.0,))(x, g), x, atol=1e-4, rtol=0)
    torch.testing.assert_close(T.RandomRotate(0.0)(x, g), x, atol=1e-4, rtol=0)
    zoom = T.RandomScale((2.0,))(x[:, :, :, :], g)
    # 2x zoom about the centre of a 4x4 image: pixel (1, 1) samples input position (1.25, 1.25).
    expected = x[:, :, 1, 1] * 0.5625 + x[:, :, 1, 2] * 0.1875 + x[:, :, 2, 1] * 0.1875 + x[:, :, 2, 2] * 0.0625
    torch.testing.assert_close(zoom[:, :, 1, 1], expected, atol=1e-4, rtol=0)


def test_transforms_are_seeded_per_image_and_differentiable() -> None:
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    tf = T.standard_transforms()
    a = tf(x, torch.Generator().manual_seed(1))
    b = tf(x, torch.Generator().manual_seed(1))
    c = tf(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    same = tf(x[:1].expand(4, -1, -1, -1), torch.Generator().manual_seed(1))
    assert not torch.equal(same[0], same[1])  # each image draws its own transform
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert T.describe(tf)[0] == {"type": "Pad", "fraction": 0.06, "mode": "reflect", "value": 0.5}


# --------------------------------------------------------------------------------------------------
# Parameterizations
# --------------------------------------------------------------------------------------------------
def test_fft_and_from_image_round_trip() -> None:
    t = torch.randn(2, 3, 8, 6)
    torch.testing.assert_close(P.fft_from_tensor(t).image_fn(), t, atol=1e-5, rtol=0)
    img = torch.rand(2, 3, 8, 8) * 0.9 + 0.05
    color = P.color_stats(torch.rand(4, 3, 8, 8))
    for fft in (True, False):
        p = P.from_image(img, fft=fft, color=color)
        torch.testing.assert_close(p.image_fn(), img, atol=1e-4, rtol=0)
        assert all(q.requires_grad for q in p.params)


def test_color_stats_recovers_covariance_and_mean() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([[0.1, 0.0, 0.0], [0.05, 0.05, 0.0], [0.0, 0.0, 0.02]])
    px = a @ torch.randn(3, 20000, generator=g) + torch.tensor([0.3, 0.5, 0.7]).view(3, 1)
    imgs = px.view(3, 200, 10, 10).permute(1, 0, 2, 3)
    cs = P.color_stats(imgs)
    torch.testing.assert_close(torch.tensor(cs.mean), torch.tensor([0.3, 0.5, 0.7]), atol=2e-3, rtol=0)
    m = cs.matrix()
    cov = a @ a.T
    # M M^T is the covariance up to the normalizing scale.
    mm = m @ m.T
    torch.testing.assert_close(mm / mm.max(), cov / cov.max(), atol=0.03, rtol=0)
    assert math.isclose(float(m.norm(dim=0).max()), 1.0, rel_tol=1e-6)
    # At raw = 0 the image is the data's mean colour.
    flat = P.to_valid_rgb(torch.zeros(1, 3, 2, 2), cs)
    torch.testing.assert_close(flat[0, :, 0, 0], torch.tensor(cs.mean, dtype=torch.float32), atol=1e-4, rtol=0)


def test_image_params_shapes_ranges_and_sharing() -> None:
    p = P.image(16, batch=3, generator=0)
    img = p.image_fn()
    assert img.shape == (3, 3, 16, 16) and img.min() >= 0 and img.max() <= 1
    assert torch.equal(img, P.image(16, batch=3, generator=0).image_fn())
    shared = P.lowres_tensor((3, 3, 16, 16), 4, sd=1.0, shared=True, generator=0)
    out = shared.image_fn()
    assert out.shape == (3, 3, 16, 16) and torch.equal(out[0], out[2]) and shared.params[0].shape == (1, 3, 4, 4)
    inter = P.shared_interpolation_image(16, frames=4, generator=0)
    assert len(inter.params) == 4 and inter.image_fn().shape == (4, 3, 16, 16)
    # Spectrum decay: at init the Fourier image's energy sits in low frequencies.
    spec = torch.fft.rfft2(P.fft_image((8, 3, 32, 32), sd=1.0, generator=0).image_fn()).abs().pow(2).mean((0, 1))
    freqs = P.rfft2d_freqs(32, 32)
    assert spec[freqs < 0.1].mean() > 10 * spec[freqs > 0.3].mean()


# --------------------------------------------------------------------------------------------------
# Render
# --------------------------------------------------------------------------------------------------
def test_render_raises_objective_reproducibly_and_restores_the_model() -> None:
    net = create_model("tiny_baseline", num_classes=3, stem_pool=False).eval()
    flags = [p.requires_grad for p in net.parameters()]
    obj = O.channels("layer2", [0, 1, 2]) - 0.1 * O.total_variation()

    def go(seed: int):
        return render(
            net,
            obj,
            P.image(32, 3, generator=seed),
            T.standard_transforms(),
            steps=12,
            lr=0.05,
            seed=seed,
            redirect_relu_steps=4,
            snapshots=[6],
        )

    a, b, c = go(0), go(0), go(1)
    assert torch.equal(a.images, b.images) and torch.equal(a.values, b.values)  # bitwise on the CPU
    assert not torch.equal(a.images, c.images)
    assert a.history.shape == (12, 3) and set(a.snapshots) == {6}
    start = evaluate(net, O.channels("layer2", [0, 1, 2]), P.image(32, 3, generator=0).image_fn().detach())
    assert (evaluate(net, O.channels("layer2", [0, 1, 2]), a.images) > start).all()
    assert [p.requires_grad for p in net.parameters()] == flags and not net.training
    assert all(not m._forward_hooks for m in net.modules())
    assert all(type(m) is not nn.Module and "Redirected" not in type(m).__name__ for m in net.modules())
    assert a.recipe["steps"] == 12 and a.recipe["seed"] == 0 and a.recipe["transforms"][0]["type"] == "Pad"


def test_render_fits_odd_transformed_sizes_for_the_topdown_pyramid() -> None:
    net = create_model("tiny_topdown", num_classes=3, stem_pool=False).eval()
    tf = T.Compose((T.Pad(0.1), T.Jitter(0.07)))  # 32 -> 38 -> 36: not what the pyramid divides
    r = render(net, O.class_logit(1), P.image(32, 2, generator=0), tf, steps=3)
    assert r.images.shape == (2, 3, 32, 32) and torch.isfinite(r.values).all()


def test_render_on_plain_module_with_device_argument() -> None:
    m = Constant()
    p = P.image(8, 2, generator=0, device="cpu")
    r = render(
        m, O.channel("act", 1, batch=0) + O.channel("act", 0, batch=1), p, steps=20, lr=0.1, redirect_relu_steps=20
    )
    assert r.images.device.type == "cpu" and r.history[-1, 0] > r.history[0, 0]
