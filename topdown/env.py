"""Process-wide settings every entry point applies before importing the heavy libraries."""

import os


def quiet_third_party() -> None:
    """albumentations calls home on import; foolbox imports GitPython, which fails without ``git``."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity (``taskset``, a container's CPU set) where the system
    tells it, which ``os.cpu_count()`` (every core of the machine) does not."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
