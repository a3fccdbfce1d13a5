"""Training the learned prior for one classifier on its own training images, resumably, into one file.

The generator ``G`` learns to draw an image from its code ``h`` (:func:`~topdown.generator.model.codes`) with
three losses, each in units of the real images' own scale so that their weights read alike:

* pixels: ``mean (G(h) - x)^2``;
* features (Dosovitskiy & Brox 2016): the classifier's activation at an earlier stage (``feature_layer``) of
  ``G(h)`` against that of ``x``, over the real activation's mean square;
* code: the code of ``G(h)`` against ``h``, over the codes' mean square (the drawn image must be read back as
  the code it was drawn from: what DGN-AM's ascent and PPGN's sampler rely on).

and, where ``adversarial_weight`` > 0, a non-saturating adversarial term against a small patch critic
(:class:`~topdown.generator.model.PatchDiscriminator`) trained beside ``G``. It is off by default: at 0.05 it
brought one net's renders much closer to real images and the other's further away (docs/generator.md).

Beside ``G``, a small denoising autoencoder on the codes is trained (PPGN's learned prior on ``h``), and the codes'
range and statistics are recorded (DGN-AM clips to that range).

The file (``torch.save``; loads with ``weights_only=True``) records the checkpoint and data it was trained for.
After every epoch a ``<name>.partial.pt`` is written atomically; a killed run resumes from it, and a finished
one with the same recipe is reused.
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError, TopdownError
from ..io import atomic_write_bytes
from ..lit import NonFiniteLossError
from ..models.base import ImageClassifierNet
from ..store import fingerprint, weights_sha256
from .model import CodeDAE, CodeGenerator, PatchDiscriminator, codes_and_features

#: What a generator file says it is, and the layout version of its record.
FORMAT = "topdown-generator"
VERSION = 1


class GeneratorError(TopdownError, ValueError):
    """A generator file that cannot be used: unreadable, of another format, or for another net or data."""


@dataclass
class GeneratorConfig:
    """How the learned prior is trained.

    Args:
        epochs: passes over the training images.
        batch_size: images per step.
        lr: Adam learning rate (betas 0.5, 0.999, as in DCGAN-style generators).
        width: the generator's full-resolution channels (coarser blocks have up to 8x as many).
        pixel_weight: weight of the pixel loss.
        feature_weight: weight of the feature-matching loss.
        code_weight: weight of the code loss.
        adversarial_weight: weight of the adversarial term (0: none; docs/generator.md measures the default).
        feature_layer: the stage whose activations are matched (``None``: the net's middle stage, the one the
            visualizer renders by default).
        images: at most this many training images (``None``: all).
        dae_epochs: passes of the code autoencoder over the codes.
        dae_noise: its input noise, in units of each code dimension's standard deviation.
        seed: the generator's initialization and the batches' order.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    width: int = 16
    pixel_weight: float = 1.0
    feature_weight: float = 1.0
    code_weight: float = 1.0
    adversarial_weight: float = 0.0
    feature_layer: str | None = None
    images: int | None = None
    dae_epochs: int = 200
    dae_noise: float = 0.5
    seed: int = 0

    def validate(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "width": self.width}
        positive |= {"dae_epochs": self.dae_epochs, **({"images": self.images} if self.images is not None else {})}
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"generator {key} must be >= 1, got {value}")
        if not self.lr > 0:
            raise ConfigError(f"generator lr must be > 0, got {self.lr}")
        weights = {"pixel_weight": self.pixel_weight, "feature_weight": self.feature_weight}
        weights |= {"code_weight": self.code_weight, "adversarial_weight": self.adversarial_weight}
        for key, value in {**weights, "dae_noise": self.dae_noise}.items():
            if not value >= 0:
                raise ConfigError(f"generator {key} must be >= 0, got {value}")


def middle_stage(net: ImageClassifierNet) -> str:
    stages = net.stage_names()
    return stages[(len(stages) - 1) // 2]


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _save(path: Path, record: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(record, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_generator_file(path: str | Path) -> dict[str, Any]:
    """The record in a generator file (``weights_only=True``), with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise GeneratorError(f"{path}: generator file not found (train one: python -m topdown.generator)")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling, truncation, not a torch file: all "cannot use it"
        raise GeneratorError(f"{path}: not a readable generator file ({str(err).splitlines()[0][:200]})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise GeneratorError(f"{path}: not a topdown generator file (no format {FORMAT!r})")
    if record.get("version") != VERSION:
        raise GeneratorError(f"{path}: generator file version {record.get('version')}, this topdown reads {VERSION}")
    return record


def _train_dae(h: torch.Tensor, cfg: GeneratorConfig) -> CodeDAE:
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    with torch.random.fork_rng(devices=[]):  # its initialization is seeded without moving the caller's RNG
        torch.manual_seed(cfg.seed + 1)
        dae = CodeDAE(h.shape[1])
    dae.mean.copy_(h.mean(0))
    dae.std.copy_(h.std(0).clamp_min(1e-6))
    opt = torch.optim.Adam(dae.net.parameters(), lr=1e-3)
    for _ in range(cfg.dae_epochs):
        for idx in torch.randperm(len(h), generator=gen).split(256):
            clean = h[idx]
            noisy = (clean + cfg.dae_noise * dae.std * torch.randn(clean.shape, generator=gen)).clamp_min(0)
            loss = F.mse_loss((dae(noisy) - dae.mean) / dae.std, (clean - dae.mean) / dae.std)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return dae.eval()


@dataclass
class Critic:
    """The adversarial term's patch critic and its optimizer (only where ``adversarial_weight`` > 0)."""

    net: PatchDiscriminator
    opt: torch.optim.Optimizer

    def step(self, real: torch.Tensor, drawn: torch.Tensor) -> None:
        """One non-saturating critic update: real patches toward 1, drawn ones toward 0."""
        loss = F.softplus(-self.net(real)).mean() + F.softplus(self.net(drawn.detach())).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def generator_loss(self, drawn: torch.Tensor) -> torch.Tensor:
        return F.softplus(-self.net(drawn)).mean()

    @classmethod
    def for_images(cls, size: int, cfg: GeneratorConfig) -> Critic:
        net = PatchDiscriminator(cfg.width, size)
        return cls(net, torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.5, 0.999)))

    def state_dict(self) -> dict[str, Any]:
        return {"state_dict": self.net.state_dict(), "optimizer": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["state_dict"])
        self.opt.load_state_dict(state["optimizer"])


def _epoch(
    gen: CodeGenerator,
    net: ImageClassifierNet,
    opt: torch.optim.Optimizer,
    data: dict[str, torch.Tensor],
    cfg: GeneratorConfig,
    layer: str,
    epoch: int,
    critic: Critic | None = None,
) -> dict[str, float]:
    """One pass over the images; the loss terms' means."""
    images, h, feats = data["images"], data["codes"], data["features"]
    feat_scale, code_scale = float(feats.pow(2).mean()), float(h.pow(2).mean())
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
    sums = {"pixel": 0.0, "feature": 0.0, "code": 0.0, **({"adversarial": 0.0} if critic else {}), "total": 0.0}
    gen.train()
    for idx in order.split(cfg.batch_size):
        x, hx, fx = images[idx], h[idx], feats[idx]
        g = gen(hx)
        if critic is not None:
            critic.step(x, g)
        hg, fg = codes_and_features(net, g, layer)
        terms = {
            "pixel": F.mse_loss(g, x),
            "feature": F.mse_loss(fg, fx) / feat_scale,
            "code": F.mse_loss(hg, hx) / code_scale,
        }
        loss = cfg.pixel_weight * terms["pixel"] + cfg.feature_weight * terms["feature"]
        loss = loss + cfg.code_weight * terms["code"]
        if critic is not None:
            terms["adversarial"] = critic.generator_loss(g)
            loss = loss + cfg.adversarial_weight * terms["adversarial"]
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"generator training: the loss is {float(loss)} at epoch {epoch + 1} (lower --lr); the last "
                "finished epoch is kept in the .partial.pt file"
            )
        opt.zero_grad()
        loss.backward()
        opt.step()
        for k, v in terms.items():
            sums[k] += float(v.detach()) * len(idx)
        sums["total"] += float(loss.detach()) * len(idx)
    return {k: v / len(images) for k, v in sums.items()}


def prepare(net: ImageClassifierNet, images: torch.Tensor, layer: str, batch: int = 128) -> dict[str, torch.Tensor]:
    """The training images with their codes and ``layer`` activations, computed once (the images are fixed)."""
    out: dict[str, list[torch.Tensor]] = {"codes": [], "features": []}
    with torch.no_grad():
        for x in images.split(batch):
            h, f = codes_and_features(net, x, layer)
            out["codes"].append(h)
            out["features"].append(f.contiguous())
    return {"images": images, **{k: torch.cat(v) for k, v in out.items()}}


def _stored(out: Path, partial: Path, recipe: str) -> dict[str, Any] | None:
    """The finished file, else the partial one, where it was trained with ``recipe``."""
    for path in (out, partial):
        if path.is_file():
            try:
                record = read_generator_file(path)
            except GeneratorError:
                continue
            if record.get("recipe") == recipe:
                return record
    return None


def _new_record(
    net: ImageClassifierNet,
    h: torch.Tensor,
    cfg: GeneratorConfig,
    recipe: str,
    layer: str,
    checkpoint: str,
    data: dict[str, Any] | None,
) -> dict[str, Any]:
    """A fresh generator file's record: what it is for, the codes' statistics, and no epoch done."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "recipe": recipe,
        "net": {"checkpoint": str(checkpoint), "sha256": weights_sha256(net), "class": type(net).__name__},
        "data": data or {},
        "config": asdict(cfg),
        "layer": layer,
        "code": {"dim": h.shape[1], "lo": h.min(0).values, "hi": h.max(0).values, "mean": h.mean(0)},
        "code_std": h.std(0),
        "images": len(h),
        "history": [],
        "epochs_done": 0,
        "seconds": 0.0,
        "complete": False,
    }


def train_generator(
    net: ImageClassifierNet,
    images: torch.Tensor,
    out: str | Path,
    cfg: GeneratorConfig | None = None,
    checkpoint: str = "",
    data: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume, or reuse) the prior for ``net`` on ``images`` (N, 3, S, S) in [0, 1]; write it to
    ``out``; return its record. ``checkpoint`` and ``data`` (the data's description) are recorded, and checked
    wherever the file is used."""
    cfg = cfg or GeneratorConfig()
    cfg.validate()
    out = Path(out)
    partial = out.with_name(out.stem + ".partial.pt")
    net = net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    layer = cfg.feature_layer or middle_stage(net)
    if layer not in dict(net.named_modules()):
        raise ConfigError(f"generator feature_layer: {type(net).__name__} has no layer {layer!r}")
    if cfg.images is not None:
        images = images[: cfg.images]
    recipe = fingerprint(VERSION, weights_sha256(net), data or {}, asdict(cfg), layer, list(images.shape))
    record = _stored(out, partial, recipe)
    if record is not None and record.get("complete"):
        _log(f"generator: {out} is trained for this recipe; reused", progress)
        return record
    size = images.shape[-1]
    prepared = prepare(net, images, layer)
    h = prepared["codes"]
    torch.manual_seed(cfg.seed)
    G = CodeGenerator(h.shape[1], size, cfg.width)
    opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    critic = Critic.for_images(size, cfg) if cfg.adversarial_weight > 0 else None
    if record is not None:  # resume where the partial file stopped
        G.load_state_dict(record["generator"]["state_dict"])
        opt.load_state_dict(record["optimizer"])
        if critic is not None:
            critic.load_state_dict(record["critic"])
        dae = CodeDAE(**record["dae"]["config"])
        dae.load_state_dict(record["dae"]["state_dict"])
        _log(f"generator: resuming at epoch {record['epochs_done'] + 1}/{cfg.epochs} from {partial}", progress)
    else:
        start = time.perf_counter()
        dae = _train_dae(h, cfg)
        record = _new_record(net, h, cfg, recipe, layer, checkpoint, data)
        record["seconds"] = time.perf_counter() - start
    for epoch in range(record["epochs_done"], cfg.epochs):
        start = time.perf_counter()
        lr = cfg.lr * (0.55 + 0.45 * torch.cos(torch.tensor(torch.pi * epoch / cfg.epochs)).item())
        for group in opt.param_groups + (critic.opt.param_groups if critic else []):
            group["lr"] = lr  # cosine decay to a tenth, a function of the epoch (so resuming matches)
        losses = _epoch(G, net, opt, prepared, cfg, layer, epoch, critic)
        seconds = time.perf_counter() - start
        record["history"].append({"epoch": epoch + 1, **{k: round(v, 6) for k, v in losses.items()}})
        record.update(
            epochs_done=epoch + 1,
            seconds=record["seconds"] + seconds,
            generator={"config": G.config(), "state_dict": G.state_dict()},
            dae={"config": dae.config(), "state_dict": dae.state_dict()},
            optimizer=opt.state_dict(),
        )
        if critic is not None:
            record["critic"] = critic.state_dict()
        _save(partial, record)
        terms = ", ".join(f"{k} {v:.4f}" for k, v in losses.items())
        _log(f"generator: epoch {epoch + 1}/{cfg.epochs}: {terms} ({seconds:.1f} s)", progress)
    record.pop("optimizer", None)
    record.pop("critic", None)
    record["complete"] = True
    G.eval()
    record["generator"] = {"config": G.config(), "state_dict": G.state_dict()}
    _save(out, record)
    partial.unlink(missing_ok=True)
    _log(f"generator: {out} ({record['seconds']:.0f} s, {record['epochs_done']} epochs)", progress)
    return record
