"""What frequencies a class decision uses: the radially averaged power spectrum of the input gradient of the
true class's logit, per image, relative to the images' own spectrum."""

from __future__ import annotations

import torch
from torch import nn


def radial_power(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, R)``: power of the channel-averaged image at each integer radius (cycles per
    image, 0 to the Nyquist frequency ``min(H, W) // 2``), the mean removed."""
    g = x.double().mean(1)
    g = g - g.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fftshift(torch.fft.fft2(g), dim=(-2, -1)).abs() ** 2
    h, w = g.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    radius = torch.sqrt(yy.double() ** 2 + xx.double() ** 2).round().long().flatten()
    n_r = min(h, w) // 2 + 1
    keep = radius < n_r
    out = torch.zeros(len(g), n_r, dtype=torch.float64)
    out.index_add_(1, radius[keep], power.flatten(1)[:, keep])
    counts = torch.bincount(radius[keep], minlength=n_r).double()
    return out / counts


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


def high_frequency_share(power: torch.Tensor, cutoff: float = 0.5) -> torch.Tensor:
    """Per row: the share of the power above ``cutoff`` × the Nyquist radius (the DC term left out)."""
    r = torch.arange(power.shape[1], dtype=torch.float64)
    high = power[:, r > cutoff * (power.shape[1] - 1)].sum(1)
    return high / power[:, 1:].sum(1).clamp_min(1e-30)


def gradient_spectrum(net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, list]:
    """Per image, the high-frequency share of the class gradient's power (``gradient_high``) and of the
    image's (``image_high``); the mean gradient spectrum relative to the mean image spectrum
    (``relative_spectrum``, one value per radius: above 1, the decision weighs that frequency more than the
    images carry it)."""
    grad_power = radial_power(input_gradients(net, images, labels))
    image_power = radial_power(images)
    g = grad_power / grad_power[:, 1:].sum(1, keepdim=True).clamp_min(1e-30)
    p = image_power / image_power[:, 1:].sum(1, keepdim=True).clamp_min(1e-30)
    relative = g.mean(0) / p.mean(0).clamp_min(1e-30)
    relative[0] = float("nan")
    return {
        "gradient_high": high_frequency_share(grad_power).tolist(),
        "image_high": high_frequency_share(image_power).tolist(),
        "relative_spectrum": relative.tolist(),
    }
