"""MACO: the phase-only parameterization keeps the training images' magnitude spectrum whatever the optimizer does
to the phase, and still raises the objective; the transparency map shows where the objective reads the image."""

from __future__ import annotations

import pytest
import tiny_nets
import torch
from torch import nn

from topdown.vis import objectives as O
from topdown.vis.maco import data_spectrum, maco_image, unclipped
from topdown.vis.render import render

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def forms() -> tiny_nets.FormData:
    return tiny_nets.FormData()


@pytest.fixture(scope="module")
def train_images(forms: tiny_nets.FormData) -> torch.Tensor:
    ds = forms.subset("train")
    return torch.stack([ds[i][0] for i in range(128)])


def _magnitude(x: torch.Tensor) -> torch.Tensor:
    return torch.fft.rfft2(x - x.mean(dim=(-2, -1), keepdim=True), norm="ortho").abs()


def test_the_spectrum_is_the_images_mean_magnitude(train_images) -> None:
    sp = data_spectrum(train_images)
    assert sp.images == 128 and sp.size == tuple(train_images.shape[-2:])
    assert torch.allclose(sp.magnitude, _magnitude(train_images.double()).mean(0).float(), atol=1e-6)
    assert torch.allclose(sp.mean, train_images.mean(dim=(0, 2, 3)), atol=1e-6)
    # batches give the same spectrum as one tensor
    again = data_spectrum([(train_images[:64], None), (train_images[64:], None)])
    assert torch.allclose(again.magnitude, sp.magnitude, atol=1e-6) and sp.to_dict() == again.to_dict()
    with pytest.raises(ValueError, match="at least one image"):
        data_spectrum([])


@pytest.mark.parametrize("arch", ("baseline", "topdown"))
def test_maco_keeps_the_magnitude_and_raises_the_class_logit(arch, forms, train_images) -> None:
    net = tiny_nets.load("forms", f"tiny_{arch}", forms.num_classes)
    sp = data_spectrum(train_images)
    param = maco_image(sp, batch=3, generator=0)
    objective = O.classes([0, 1, 2])
    before = render(net, objective, param, steps=0).values
    r = render(net, objective, param, steps=48, lr=0.05, seed=0)
    assert (r.values > before).all(), (before, r.values)
    # only the phase moved: the magnitude is the training images', within float error, at every frequency
    tol = 1e-5 * float(sp.magnitude.max())
    assert (_magnitude(unclipped(param).detach()) - sp.magnitude).abs().max() < tol
    assert r.images.min() >= 0 and r.images.max() <= 1


class LeftHalf(nn.Module):
    """One logit: the mean of the image's left half (the right half cannot matter)."""

    num_classes = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : x.shape[-1] // 2].mean(dim=(1, 2, 3))[:, None]


def test_the_transparency_map_lies_where_the_objective_reads(train_images) -> None:
    sp = data_spectrum(train_images)
    r = render(LeftHalf(), O.classes([0, 0]), maco_image(sp, 2, generator=1), steps=8, transforms=[], transparency=True)
    t = r.transparency
    assert t.shape == (2, *train_images.shape[-2:])
    half = t.shape[-1] // 2
    assert t[..., :half].min() > 0 and t[..., half:].abs().max() == 0
    assert render(LeftHalf(), O.classes([0]), maco_image(sp, 1), steps=2, transforms=[]).transparency is None


def test_each_start_of_a_maco_recipe_is_another_phase_draw(train_images) -> None:
    """A flat start cannot apply to MACO: the classes method's two starts are two phase draws, not one twice."""
    from topdown.vis.recipe import Recipe

    recipe = Recipe(spectrum=data_spectrum(train_images), starts=("mean", "gray"))
    a, b = recipe.param(32, 2, None, "cpu", start="mean"), recipe.param(32, 2, None, "cpu", start="gray")
    assert not torch.allclose(a(), b())
    assert torch.equal(a(), recipe.param(32, 2, None, "cpu", start="mean")())  # seeded
    assert recipe.parameterization == "maco" and recipe.to_dict()["spectrum"]["images"] == 128
