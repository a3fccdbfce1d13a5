"""topdown: train, attack and visualize top-down (coarse-to-fine) image classifiers."""

from .env import quiet_third_party

# Once, before any submodule imports albumentations (which calls home) or foolbox (which needs git).
quiet_third_party()

__version__ = "0.1.0"
