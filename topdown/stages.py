"""The main job's stage bar: which stage runs, how long the job has run and about how long it has left.

Each stage's own progress (Lightning's epochs, the suite's parts, the visualizations) prints beneath its
line, so the bar is printed, not live: one line as each stage starts, one when the job ends.

Time left comes from the seconds each stage is expected to take (``estimates``, measured on a reference
machine) scaled by how fast the stages that ran so far went against their own estimates, so a machine
twice as slow sees twice the time left after its first stage.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table

BAR_WIDTH = 20


def clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    m, s = divmod(round(max(seconds, 0.0)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class StageBar:
    """Progress over a job's units of work (``train/baseline``, ``train/topdown``, ``evaluate``, ...).

    Args:
        units: every unit, in the order they run.
        estimates: expected seconds per stage (the part of a unit before ``/``); a unit without one makes
            the time left unknown until it has run.
        console: where the lines go.
    """

    def __init__(self, units: Sequence[str], estimates: dict[str, float] | None = None, console: Console | None = None):
        self.units = list(units)
        estimates = estimates or {}
        self.expected = {u: estimates.get(u.split("/")[0]) for u in self.units}
        self.console = console or Console(stderr=True)
        self.start = time.perf_counter()
        self.ran: dict[str, float] = {}  # unit -> seconds it took in this job
        self.skipped: set[str] = set()  # finished by an earlier run of the job

    def finish(self, unit: str, seconds: float) -> None:
        self.ran[unit] = seconds

    def skip(self, unit: str) -> None:
        self.skipped.add(unit)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def _remaining(self) -> list[str]:
        return [u for u in self.units if u not in self.ran and u not in self.skipped]

    def speed(self) -> float:
        """Seconds taken per expected second, over the units that ran with an estimate (1 before any ran)."""
        pairs = [(s, self.expected[u]) for u, s in self.ran.items() if self.expected.get(u)]
        expected = sum(e for _, e in pairs)
        return sum(s for s, _ in pairs) / expected if expected > 0 else 1.0

    def left(self) -> float | None:
        """Estimated seconds left, or ``None`` when a remaining unit has no estimate."""
        remaining = [self.expected.get(u) for u in self._remaining()]
        if any(e is None for e in remaining):
            return None
        return self.speed() * sum(remaining)

    def fraction(self) -> float:
        """Share of the job's work done: by estimated seconds where every unit has one, else by units."""
        todo = [u for u in self.units if u not in self.skipped]
        if not todo:
            return 1.0
        if all(self.expected.get(u) for u in todo):
            total = sum(self.expected[u] for u in todo)
            return sum(self.expected[u] for u in todo if u in self.ran) / total
        return sum(u in self.ran for u in todo) / len(todo)

    def line(self, unit: str | None, label: str) -> Table:
        """The bar, ``[k/n] label``, time elapsed and time left, as one row."""
        done = self.fraction()
        step = f"[{self.units.index(unit) + 1}/{len(self.units)}] " if unit in self.units else ""
        left = self.left()
        if left is None:
            times = f"{clock(self.elapsed())} elapsed"
        elif not self._remaining():
            times = f"{clock(self.elapsed())} elapsed, done"
        else:
            times = f"{clock(self.elapsed())} elapsed, about {clock(left)} left"
        row = Table.grid(padding=(0, 1), expand=True)
        row.add_column(width=BAR_WIDTH, no_wrap=True)
        row.add_column(ratio=1, no_wrap=True, overflow="ellipsis")  # a long label gives way, the times do not
        row.add_column(style="dim", no_wrap=True, justify="right", min_width=len(times))
        row.add_row(ProgressBar(total=1.0, completed=done, width=BAR_WIDTH), f"{step}{label}", times)
        return row

    def show(self, unit: str | None, label: str) -> None:
        self.console.print(self.line(unit, label))
