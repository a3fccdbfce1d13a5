"""Params and MACs (torch.utils.flop_counter) of every registered network, as a Markdown table.

python benchmarks/cost_table.py [--image-size 64] [--num-classes 5]
"""

from __future__ import annotations

import argparse

from topdown.models import count_macs, count_params, create_model, list_models


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--num-classes", type=int, default=5)
    args = p.parse_args()
    base = create_model("baseline", num_classes=args.num_classes)
    bp, bm = count_params(base), count_macs(base, args.image_size)
    print(f"| model | params | MACs at {args.image_size} px | params / baseline | MACs / baseline |")
    print("|---|---|---|---|---|")
    for name in list_models():
        net = create_model(name, num_classes=args.num_classes)
        params, macs = count_params(net), count_macs(net, args.image_size)
        print(f"| `{name}` | {params / 1e6:.3f}M | {macs / 1e6:.1f}M | {params / bp:.2f} | {macs / bm:.2f} |")


if __name__ == "__main__":
    main()
