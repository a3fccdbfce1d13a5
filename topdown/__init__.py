"""topdown: train, attack and visualize top-down (coarse-to-fine) image classifiers."""

__version__ = "0.1.0"
