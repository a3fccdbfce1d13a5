"""Train a top-down ResNet or its baseline: ``python train.py fit --config configs/topdown.yaml``."""

from topdown.cli import train_main

if __name__ == "__main__":
    train_main()
