"""What frequencies a class decision uses: the radially averaged power spectrum of the input gradient of the
true class's logit, per image, relative to the images' own spectrum."""

from __future__ import annotations

import torch
from torch import nn

from ..batches import map_batches
from ..vis.quality import high_frequency_share, radial_power, relative_spectrum


def input_gradients(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """d logit[label] / d image for every image."""
    net.eval()

    def gradient(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(net(x).gather(1, y[:, None]).sum(), x)
        return g

    return map_batches(gradient, images, labels, batch_size=batch_size)


def gradient_spectrum(net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, list]:
    """Per image, the high-frequency share of the class gradient's power (``gradient_high``) and of the
    image's (``image_high``); the mean gradient spectrum relative to the mean image spectrum
    (``relative_spectrum``, one value per radius: above 1, the decision weighs that frequency more than the
    images carry it)."""
    grad_power = radial_power(input_gradients(net, images, labels))
    image_power = radial_power(images)
    relative = relative_spectrum(grad_power, image_power)
    return {
        "gradient_high": high_frequency_share(grad_power).tolist(),
        "image_high": high_frequency_share(image_power).tolist(),
        "relative_spectrum": relative,
    }
