"""A run's record of itself: ``<out>/pipeline.json``, the config it ran with and each stage as it finished.

Written atomically after every change, so a killed job leaves the last finished stage recorded and the same
command resumes after it. The pipeline orchestrates; this only remembers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .io import atomic_write_json


def dataset_of(config: dict[str, Any]) -> str | None:
    """The dataset of a stored pipeline config: ``data.dataset`` (runs written before the ``data`` section hold it
    flat, as ``dataset``)."""
    return (config.get("data") or {}).get("dataset") or config.get("dataset")


class RunState:
    """``pipeline.json`` of the run in ``out``, loaded (or started from ``config``) and kept on disk.

    Args:
        out: the run's folder.
        config: the run's config as a dict (recorded in a new state; an existing one must be of the same
            ``dataset``).
        stage_order: every stage in order (:meth:`forget` clears a stage and the ones after it).
    """

    def __init__(self, out: Path, config: dict[str, Any], stage_order: tuple[str, ...]) -> None:
        self.path = out / "pipeline.json"
        self.order = stage_order
        self.data: dict[str, Any] = self._load(out, config)

    def _load(self, out: Path, config: dict[str, Any]) -> dict[str, Any]:
        if not self.path.exists():
            return {"config": config, "stages": {}}
        try:
            state = json.loads(self.path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{self.path}: unreadable pipeline state ({err}); delete it to start over") from err
        held, wanted = dataset_of(state.get("config", {})), dataset_of(config)
        if held not in (None, wanted):
            raise ConfigError(f"{out} holds a pipeline run on {held!r}; use another --out for {wanted!r}")
        return state

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def setdefault(self, key: str, value: Any) -> Any:
        return self.data.setdefault(key, value)

    def save(self) -> None:
        atomic_write_json(self.path, self.data)

    def done(self, key: str) -> bool:
        return bool(self.data["stages"].get(key, {}).get("done"))

    def finish(self, key: str, started: float, **info: Any) -> None:
        """Record ``key`` done, with the seconds since ``started`` and ``info``."""
        self.data["stages"][key] = {"done": True, "seconds": round(time.time() - started, 1), **info}
        self.save()

    def forget(self, stages: list[str]) -> list[str]:
        """Mark ``stages`` and every stage after the earliest of them as not done; returns the keys cleared."""
        if not stages:
            return []
        later = self.order[min(self.order.index(s) for s in stages) :]
        cleared = [k for k in self.data["stages"] if k.split("/")[0] in later]
        for k in cleared:
            del self.data["stages"][k]
        return cleared
