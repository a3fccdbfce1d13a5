"""What frequencies a class decision uses: the radially averaged power spectrum of the input gradient of the
true class's logit, per image, relative to the images' own spectrum."""

from __future__ import annotations

import torch
from torch import nn

from ..vis.quality import high_frequency_share, radial_power, relative_spectrum


def input_gradients(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """d logit[label] / d image for every image."""
    net.eval()
    grads = []
    for s in range(0, len(images), batch_size):
        x = images[s : s + batch_size].detach().clone().requires_grad_(True)
        logits = net(x)
        (g,) = torch.autograd.grad(logits.gather(1, labels[s : s + batch_size, None]).sum(), x)
        grads.append(g)
    return torch.cat(grads)


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
