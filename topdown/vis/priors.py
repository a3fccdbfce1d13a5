"""The same class objectives through four priors, measured side by side.

Pixel-space priors (the net's own preferred stimulus, regularized):
* ``fourier``: Lucid's recipe, a 1/f-scaled spectrum with decorrelated colour, transforms and total variation;
* ``maco``: only the spectrum's phase is optimized, its magnitude the training images' (Fel et al. 2023).

Learned priors (what the generator, trained on the data, can draw that the net calls the class):
* ``dgn_am``: ascent in the generator's code space (Nguyen et al. 2016);
* ``ppgn``: the PPGN-h sampler (Nguyen et al. 2017).

Every image is measured the same way (:func:`measure`): the target's probability under the visualized net and
under every other net (does the image transfer?), the diversity within a class and the KID to the class's real
images (both in every other net's code space: a judge that was not optimized against), the pixel distance to
the nearest training image over real images' own (is it a copy?), the target logit over the real images'
largest, and the seconds per image.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, run_command
from ..generator.model import codes
from ..io import read_json

#: The priors, in the order they are measured.
PRIORS = ("fourier", "maco", "dgn_am", "ppgn")


class _Codes(nn.Module):
    """A net's code as a feature extractor (torchmetrics' KID takes any module)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return codes(self.net, x)


@torch.no_grad()
def _kid(judge: nn.Module, fake: torch.Tensor, real: torch.Tensor, seed: int) -> float:
    """KID (polynomial-kernel MMD, unbiased; torchmetrics) between two image sets in ``judge``'s code space."""
    from torchmetrics.image.kid import KernelInceptionDistance  # local: heavy, and only the priors method measures KID

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "saves all extracted features": a few dozen here
        kid = KernelInceptionDistance(feature=_Codes(judge), subsets=50, subset_size=min(len(fake), len(real)))
    kid.update(real, real=True)
    kid.update(fake, real=False)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # its subsets are drawn from the global generator
    try:
        mean, _ = kid.compute()
    finally:
        torch.random.set_rng_state(state)
    return float(mean)


@torch.no_grad()
def _diversity(judge: nn.Module, images: torch.Tensor) -> float:
    """Mean pairwise ``1 - cosine`` of the images' codes (0: all alike)."""
    if len(images) < 2:
        return float("nan")
    z = torch.nn.functional.normalize(codes(judge, images), dim=1)
    sim = z @ z.T
    n = len(z)
    return float(1 - (sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


@torch.no_grad()
def nearest_distance(images: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """(N,) each image's root-mean-square pixel distance to its nearest training image."""
    return torch.cdist(images.flatten(1), train.flatten(1)).min(1).values / images[0].numel() ** 0.5


def _per_class(values: dict[int, float]) -> float:
    kept = [v for v in values.values() if v == v]
    return float(sum(kept) / len(kept)) if kept else float("nan")


@torch.no_grad()
def measure(
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    net: nn.Module,
    others: dict[str, nn.Module],
    real: torch.Tensor,
    real_labels: torch.Tensor,
    train: torch.Tensor,
    seconds: float,
    seed: int = 0,
) -> dict[str, Any]:
    """The side-by-side figures of one prior's images (``targets``: each image's class), made by ``net`` in
    ``seconds``, judged by ``others`` and against the real test images ``real`` (labelled ``real_labels``) and
    the training images ``train``."""
    device = images.device
    real, real_labels, train, targets = real.to(device), real_labels.to(device), train.to(device), targets.to(device)
    all_logits = net(images)
    own = all_logits.softmax(1)
    pick = torch.arange(len(targets), device=device)
    logits = all_logits[pick, targets]
    real_logits = net(real)
    classes = sorted(set(targets.tolist()))
    out: dict[str, Any] = {
        "images": len(images),
        "target_prob": float(own[pick, targets].mean()),
        "objective_vs_real_max": float((logits / real_logits.max(0).values[targets].clamp_min(1e-6)).mean()),
        "seconds_per_image": seconds / max(1, len(images)),
        "transfer": {name: float(o(images).softmax(1)[pick, targets].mean()) for name, o in others.items()},
    }
    judges = others or {"self": net}
    out["diversity"] = {
        name: _per_class({c: _diversity(j, images[targets == c]) for c in classes}) for name, j in judges.items()
    }
    # a class's KID needs two of its reference photos and two renders; the others are left out of the mean
    measurable = [c for c in classes if (real_labels == c).sum() >= 2 and (targets == c).sum() >= 2]
    out["kid"] = {
        name: _per_class({c: _kid(j, images[targets == c], real[real_labels == c], seed) for c in measurable})
        for name, j in judges.items()
    }
    out["kid_classes"] = [len(measurable), len(classes)]
    nearest = nearest_distance(images, train)
    reference = nearest_distance(real, train).median()
    out["nearest_train"] = float(nearest.mean())
    out["nearest_train_vs_real"] = float(nearest.mean() / reference.clamp_min(1e-12))
    return out


def table(measures: dict[str, dict[str, Any]], judge: str | None) -> dict[str, Any]:
    """``{"header", "rows"}``: one row per prior, the figures against ``judge`` (another net; ``None``: the
    visualized net judges its own images' diversity and KID)."""
    key = judge or "self"
    header = [
        "prior",
        "target p",
        f"p under {judge}" if judge else "p elsewhere",
        "diversity",
        "KID",
        "nearest train / real",
        "objective / real max",
        "s / image",
    ]
    rows = []
    for prior, m in measures.items():
        transfer = m["transfer"].get(judge, float("nan")) if judge else float("nan")
        rows.append(
            [
                prior,
                round(m["target_prob"], 3),
                round(transfer, 3),
                round(m["diversity"][key], 3),
                round(m["kid"][key], 4),
                round(m["nearest_train_vs_real"], 2),
                round(m["objective_vs_real_max"], 2),
                round(m["seconds_per_image"], 2),
            ]
        )
    return {"header": header, "rows": rows, "judge": judge}


#: Why a KID cell is empty or covers fewer classes than were rendered: a class needs two of the reference photos,
#: which are drawn at random from the held-out split.
NO_KID = (
    "KID –: no rendered class had two of the reference photos (`--reference`, drawn at random from the held-out "
    "split; with many classes, raise it)."
)
SOME_KID = (
    "KID over {measured} of the {rendered} rendered classes: the others had fewer than two of the reference photos "
    "(`--reference`; with many classes, raise it)."
)


def _cell(v: Any) -> str:
    """A table value; a figure that could not be computed (NaN, stored as null) as an en dash."""
    return "–" if v is None or (isinstance(v, float) and v != v) else str(v)


def markdown(doc: dict[str, Any]) -> str:
    """The priors tables of a ``vis.json`` document, one per visualized net and judge, as Markdown."""
    lines = []
    no_kid = False
    partial: set[tuple[int, int]] = set()
    for name, model in doc.get("models", {}).items():
        entry = model.get("methods", {}).get("priors")
        if entry is None:
            continue
        for t in entry["details"]["tables"]:
            lines += ["", f"**{name}'s renders**, judged by {t['judge'] or 'itself'}:", ""]
            lines.append("| " + " | ".join(t["header"]) + " |")
            lines.append("|" + "---|" * len(t["header"]))
            lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in t["rows"]]
            no_kid |= any(_cell(row[t["header"].index("KID")]) == "–" for row in t["rows"])
        # (measured, rendered) classes of each prior's KID; absent from a vis.json made before it was recorded
        counts = [m.get("kid_classes") for m in entry["details"].get("measures", {}).values()]
        partial |= {(k[0], k[1]) for k in counts if k and 0 < k[0] < k[1]}
    if no_kid:
        lines += ["", NO_KID]
    if partial:
        lines += ["", *(SOME_KID.format(measured=m, rendered=n) for m, n in sorted(partial))]
    return "\n".join(lines).strip() + "\n" if lines else "no priors method in this vis.json\n"


def main(argv: list[str] | None = None) -> None:
    """``python -m topdown.vis.priors <vis.json>``: the side-by-side tables as Markdown."""

    def run(args: list[str]) -> None:
        if len(args) != 1:
            raise ConfigError("usage: python -m topdown.vis.priors <vis.json>")
        print(markdown(read_json(args[0])), end="")

    run_command(run, argv)


if __name__ == "__main__":
    main()
