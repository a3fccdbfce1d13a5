"""Params and MACs (torch.utils.flop_counter) of every registered network, as a Markdown table.

python benchmarks/cost_table.py [--image_size 64] [--num_classes 5]
"""

from __future__ import annotations

from dataclasses import dataclass

from topdown.errors import run_command
from topdown.models import count_macs, count_params, create_model, list_models
from topdown.options import parse_options


@dataclass
class CostTableOptions:
    """What cost_table.py measures.

    Args:
        image_size: image size in px the MACs are counted at.
        num_classes: classes of every network's head.
    """

    image_size: int = 64
    num_classes: int = 5


def run(argv: list[str]) -> None:
    args = parse_options(CostTableOptions, argv, __doc__)
    base = create_model("baseline", num_classes=args.num_classes)
    bp, bm = count_params(base), count_macs(base, args.image_size)
    print(f"| model | params | MACs at {args.image_size} px | params / baseline | MACs / baseline |")
    print("|---|---|---|---|---|")
    for name in list_models():
        net = create_model(name, num_classes=args.num_classes)
        params, macs = count_params(net), count_macs(net, args.image_size)
        print(f"| `{name}` | {params / 1e6:.3f}M | {macs / 1e6:.1f}M | {params / bp:.2f} | {macs / bm:.2f} |")


def main(argv: list[str] | None = None) -> None:
    run_command(run, argv)


if __name__ == "__main__":
    main()
