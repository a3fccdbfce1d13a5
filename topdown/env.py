"""Process-wide settings every entry point applies before importing the heavy libraries."""

import os


def quiet_third_party() -> None:
    """albumentations calls home on import; foolbox imports GitPython, which fails without ``git``."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
