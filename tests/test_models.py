"""The image pyramid, both architectures and the registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from topdown.models import (
    PYRAMID_METHODS,
    ImageClassifierNet,
    ImagePyramid,
    ResNet,
    TopDownResNet,
    build_from_config,
    count_macs,
    count_params,
    create_model,
    is_topdown,
    list_models,
)

SMALL = {"widths": (8, 16, 32), "depths": (1, 1, 1)}


@pytest.mark.parametrize("method", PYRAMID_METHODS)
def test_pyramid_levels_are_coarse_to_fine_halving(method: str) -> None:
    x = torch.rand(2, 3, 64, 64)
    levels = ImagePyramid(4, method)(x)
    assert [tuple(t.shape) for t in levels] == [(2, 3, 8, 8), (2, 3, 16, 16), (2, 3, 32, 32), (2, 3, 64, 64)]
    assert torch.equal(levels[-1], x)  # the finest level is the image itself
    for t in levels:
        assert t.min() >= -1e-5 and t.max() <= 1 + 1e-5  # convex combinations stay in [0, 1]


@pytest.mark.parametrize("method", PYRAMID_METHODS)
def test_pyramid_preserves_constant_images_and_mean(method: str) -> None:
    x = torch.full((1, 3, 32, 32), 0.3)
    for t in ImagePyramid(3, method)(x):
        assert torch.allclose(t, torch.full_like(t, 0.3), atol=1e-5)
    # Smooth images keep their mean at every level.
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    smooth = (0.5 + 0.2 * torch.sin(3 * xx) * torch.cos(2 * yy)).expand(1, 3, 32, 32)
    for t in ImagePyramid(3, method)(smooth):
        assert abs(t.mean().item() - smooth.mean().item()) < 0.02


@pytest.mark.parametrize("method", PYRAMID_METHODS)
def test_pyramid_is_differentiable_at_every_level(method: str) -> None:
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    for level in ImagePyramid(3, method)(x):
        (g,) = torch.autograd.grad(level.square().sum(), x)
        assert g.abs().sum() > 0


def test_gaussian_pyramid_removes_fine_detail_that_strided_subsampling_aliases() -> None:
    # A 2-px checkerboard: strided subsampling keeps full contrast (aliasing); the Gaussian removes it.
    board = ((torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2).float().expand(1, 3, 32, 32)
    coarse_gauss = ImagePyramid(2, "gaussian")(board)[0]
    coarse_strided = ImagePyramid(2, "noblur")(board)[0]
    assert coarse_gauss.std() < 0.05
    assert coarse_strided.std() < 1e-6 and coarse_strided.mean() in (0.0, 1.0)  # aliased to a flat colour


def test_pyramid_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="method"):
        ImagePyramid(3, "bicubic")
    with pytest.raises(ValueError, match="divisible"):
        ImagePyramid(3)(torch.rand(1, 3, 30, 30))


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_gives_finite_logits_and_trains_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    overrides = {} if name.startswith("tiny") else SMALL
    net = create_model(name, num_classes=5, **overrides)
    x = torch.rand(4, 3, 32, 32)
    logits = net(x)
    assert logits.shape == (4, 5)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.arange(4) % 5).backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f"parameters without gradient: {no_grad}"


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_answers_the_one_interface(name: str) -> None:
    """``stage_names()``, ``forward_features`` and ``pyramid`` (``None`` unless the net reads a pyramid; the blur
    control's fixed low-pass is not one), asked the same way of every network."""
    torch.manual_seed(0)
    net = create_model(name, num_classes=5, **({} if name.startswith("tiny") else SMALL)).eval()
    assert isinstance(net, ImageClassifierNet)
    x = torch.rand(2, 3, 32, 32)
    stages = net.stage_names()
    assert stages == [f"layer{i + 1}" for i in range(len(stages))] and all(
        isinstance(net.get_submodule(s), nn.Module) for s in stages
    )
    features = net.forward_features(x)
    assert features.dim() == 4 and features.shape[:2] == (2, net.head.fc.in_features)
    torch.testing.assert_close(net.head.fc(features.mean((2, 3))), net(x))
    assert is_topdown(net) == name.startswith(("topdown", "tiny_topdown")) == (net.pyramid is not None)
    if is_topdown(net):
        torch.testing.assert_close(net(net.pyramid(x)), net(x), rtol=0, atol=0)
    assert not is_topdown(None) and not is_topdown(nn.Sequential(net))


@pytest.mark.parametrize("merge", ["add", "concat", "add_concat"])
@pytest.mark.parametrize("schedule", ["mirror", "uniform", "reverse"])
@pytest.mark.parametrize("merge_at", ["after_block", "before_convs"])
def test_topdown_variants_build_and_take_a_training_step(merge: str, schedule: str, merge_at: str) -> None:
    torch.manual_seed(0)
    net = TopDownResNet(num_classes=3, merge=merge, width_schedule=schedule, merge_at=merge_at, **SMALL)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8) % 3
    losses = []
    for _ in range(5):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_merging_before_the_up_blocks_convs_feeds_the_fine_level_through_them_at_equal_cost() -> None:
    torch.manual_seed(0)
    after = TopDownResNet(num_classes=3, **SMALL).eval()
    before = TopDownResNet(num_classes=3, merge_at="before_convs", **SMALL).eval()
    before.load_state_dict(after.state_dict())  # the same parameters, wired differently
    assert count_params(before) == count_params(after) and count_macs(before, 32) == count_macs(after, 32)
    x = torch.rand(2, 3, 32, 32)
    assert not torch.allclose(before(x), after(x))
    # The finest level now passes through the last stage's up-block convs: they see its lateral.
    seen = {}
    hook = before.layer3[0].conv1.register_forward_hook(lambda m, i, o: seen.update(last=i[0]))
    pyramid = before.pyramid(x)
    before(pyramid)
    first = seen["last"]
    before([*pyramid[:-1], torch.zeros_like(pyramid[-1])])
    hook.remove()
    assert not torch.allclose(seen["last"], first)
    hook = after.layer3[0].conv1.register_forward_hook(lambda m, i, o: seen.update(last=i[0]))
    after(pyramid)
    first = seen["last"]
    after([*pyramid[:-1], torch.zeros_like(pyramid[-1])])
    hook.remove()
    assert torch.equal(seen["last"], first)  # merged after the block: its convs never see the finest level
    clone = build_from_config(before.arch_config)
    clone.load_state_dict(before.state_dict())
    assert torch.equal(clone.eval()(x), before(x))
    with pytest.raises(ValueError, match="merge_at 'middle'"):
        TopDownResNet(merge_at="middle", **SMALL)


def test_fewer_pyramid_levels_feed_the_coarse_stages_a_finer_image_at_the_same_resolutions() -> None:
    torch.manual_seed(0)
    full = TopDownResNet(num_classes=3, **SMALL).eval()  # 3 stages, 3 levels
    two = TopDownResNet(num_classes=3, pyramid_levels=2, **SMALL).eval()
    two.load_state_dict(full.state_dict())  # max-pools have no parameters: the same weights fit
    x = torch.rand(2, 3, 32, 32)
    assert [t.shape[-1] for t in two.pyramid(x)] == [16, 32] and two.level_of == [0, 0, 1]

    def stage_shapes(net):
        shapes = []
        stages = [getattr(net, s) for s in net.stage_names()]
        hooks = [s.register_forward_hook(lambda m, i, o: shapes.append(o.shape)) for s in stages]
        net(x)
        for h in hooks:
            h.remove()
        return shapes

    assert stage_shapes(two) == stage_shapes(full)  # 4x4, 8x8, 16x16 features either way
    # only the coarsest lateral stem costs more (at 16x16 instead of 8x8); the pyramid has one level less to make
    extra_lateral = count_macs(two.laterals[0], 16) - count_macs(full.laterals[0], 8)
    assert 0.75 * extra_lateral < count_macs(two, 32) - count_macs(full, 32) <= extra_lateral
    # The coarsest stage now reads the 1/2 image: detail that the 1/4 level blurs away reaches it.
    seen = {}
    for net in (full, two):
        hook = net.layer1.register_forward_hook(lambda m, i, o: seen.setdefault(id(m), []).append(o))
        board = ((torch.arange(32)[:, None] // 2 + torch.arange(32)[None, :] // 2) % 2).float().expand(1, 3, 32, 32)
        net(torch.full((1, 3, 32, 32), 0.5))
        net(0.3 + 0.4 * board)  # a 4-px checkerboard of the same mean
        hook.remove()
    gap = {n: (seen[id(n.layer1)][1] - seen[id(n.layer1)][0]).abs().max().item() for n in (full, two)}
    assert gap[two] > 10 * gap[full]
    # A ready-made pyramid has as many levels as the net's pyramid, and gives the same logits.
    assert torch.allclose(two(two.pyramid(x)), two(x), atol=1e-6)
    with pytest.raises(ValueError, match="expected a pyramid of 2 levels, got 3"):
        two(full.pyramid(x))
    clone = build_from_config(two.arch_config)
    clone.load_state_dict(two.state_dict())
    assert torch.equal(clone.eval()(x), two(x))
    for bad in (0, 4):
        with pytest.raises(ValueError, match=f"pyramid_levels must be between 1 and the 3 stages, got {bad}"):
            TopDownResNet(pyramid_levels=bad, **SMALL)


def test_head_width_widens_the_pooled_features_of_the_narrow_last_stage() -> None:
    torch.manual_seed(0)
    net = TopDownResNet(num_classes=3, head_width=32, **SMALL)
    assert net.stage_widths[-1] == 8 and net.head.fc.in_features == 32
    x = torch.rand(2, 3, 32, 32)
    assert net.forward_features(x).shape == (2, 32, 16, 16)  # what Grad-CAM and the dictionary see
    clone = build_from_config(net.arch_config)
    clone.load_state_dict(net.state_dict())
    assert torch.equal(clone.eval()(x), net.eval()(x))
    assert TopDownResNet(**SMALL).head.fc.in_features == 8  # default: the reference design
    assert TopDownResNet(head_width="widest", **SMALL).head.fc.in_features == 32  # the baseline's pooled width
    with pytest.raises(ValueError, match="head_width"):
        TopDownResNet(head_width=0, **SMALL)


def test_topdown_accepts_a_ready_made_pyramid_and_one_level_can_be_perturbed() -> None:
    torch.manual_seed(0)
    net = TopDownResNet(num_classes=4, **SMALL).eval()
    x = torch.rand(2, 3, 32, 32)
    levels = net.pyramid(x)
    assert torch.allclose(net(levels), net(x))
    perturbed = [lv.clone() for lv in levels]
    perturbed[0] = (perturbed[0] + 0.3 * torch.randn_like(perturbed[0])).clamp(0, 1)
    assert not torch.allclose(net(perturbed), net(x))
    with pytest.raises(ValueError, match="levels"):
        net(levels[:2])
    with pytest.raises(ValueError, match="coarse to fine"):
        net(list(reversed(levels)))


def test_topdown_runs_coarse_to_fine_and_baseline_fine_to_coarse() -> None:
    sizes: dict[str, dict[str, int]] = {}
    for name, net in {"td": TopDownResNet(**SMALL), "bu": ResNet(**SMALL)}.items():
        sizes[name] = {}
        hooks = [
            getattr(net, s).register_forward_hook(
                lambda m, i, o, s=s, name=name: sizes[name].__setitem__(s, o.shape[-1])
            )
            for s in net.stage_names()
        ]
        net(torch.rand(1, 3, 32, 32))
        for h in hooks:
            h.remove()
    assert list(sizes["td"].values()) == [4, 8, 16]
    assert list(sizes["bu"].values()) == [16, 8, 4]


def test_layers_are_addressable_by_module_name() -> None:
    for net in (TopDownResNet(**SMALL), ResNet(**SMALL)):
        names = dict(net.named_modules())
        assert {"normalize", "layer1.0.conv1", "layer3.0.conv2", "head.fc"} <= names.keys()


def test_default_costs_meet_the_targets() -> None:
    base, td = create_model("baseline"), create_model("topdown")
    assert count_params(td) <= 1.25 * count_params(base)
    assert count_macs(td, 64) <= 1.3 * count_macs(base, 64)


def test_blur_control_costs_what_the_baseline_costs_and_sees_only_the_coarse_image() -> None:
    torch.manual_seed(0)
    base, blur = create_model("baseline", num_classes=5), create_model("baseline_blur", num_classes=5)
    assert count_params(blur) == count_params(base)  # the low-pass is fixed: no parameter
    assert count_macs(blur, 64) <= 1.01 * count_macs(base, 64)
    blur.load_state_dict(base.state_dict())  # same weights: the networks differ only in the low-pass
    x = torch.rand(2, 3, 64, 64)
    checker = 0.2 * (torch.arange(64).view(1, -1) + torch.arange(64).view(-1, 1)).remainder(2).float() - 0.1
    fine = (x + checker).clamp(0, 1)
    blur.eval(), base.eval()
    with torch.no_grad():
        # a 1-px checkerboard is above the 1/2 level's band: the control barely sees it, the baseline does
        d_blur = (blur(fine) - blur(x)).abs().max()
        d_base = (base(fine) - base(x)).abs().max()
    assert d_blur < 0.2 * d_base
    x.requires_grad_(True)
    blur(x).sum().backward()  # a blur and a resize: gradients reach every pixel, nothing is masked
    assert x.grad is not None and (x.grad.abs() > 0).float().mean() > 0.99
    with pytest.raises(ValueError, match="input_lowpass must be a power of two"):
        create_model("baseline_blur", input_lowpass=3)


def test_mirror_schedule_reverses_widths_and_resolutions() -> None:
    td = TopDownResNet(**SMALL)
    assert td.stage_widths == [32, 16, 8]
    assert TopDownResNet(width_schedule="uniform", **SMALL).stage_widths == [16, 16, 16]
    assert TopDownResNet(width_schedule="reverse", **SMALL).stage_widths == [8, 16, 32]


def test_arch_config_rebuilds_an_identical_network() -> None:
    torch.manual_seed(0)
    net = create_model("tiny_topdown", num_classes=7, merge="concat").eval()
    clone = build_from_config(net.arch_config).eval()
    clone.load_state_dict(net.state_dict())
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(net(x), clone(x))
    with pytest.raises(ValueError, match="unknown architecture"):
        build_from_config({"class_path": "os.system", "init_args": {}})


def test_reset_classifier_changes_outputs_and_recorded_config() -> None:
    net = create_model("tiny_baseline", num_classes=10)
    net.reset_classifier(3)
    assert net(torch.rand(1, 3, 32, 32)).shape == (1, 3)
    assert net.arch_config["init_args"]["num_classes"] == 3


def test_unknown_model_name_lists_the_registered_ones() -> None:
    with pytest.raises(KeyError, match="tiny_topdown"):
        create_model("resnet9000")
