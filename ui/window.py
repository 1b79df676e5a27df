"""The time window every panel shows: its range, the step of its charts, the rollup it reads."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

# Chart steps, finest first; a window uses the finest that gives at most MAX_POINTS points.
# Steps under an hour read minute rollups; a day at 15-minute steps would read 1,440
# minutes per series, so from 6 hours on charts step by the hour and read hour rollups.
STEPS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(days=1),
)
MAX_POINTS = 200
# The ranges offered in the sidebar.
RANGES = {
    "Last 15 minutes": timedelta(minutes=15),
    "Last hour": timedelta(hours=1),
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
}
# Time series are aligned on this origin (date_bin), so buckets are stable as time passes.
ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """``[start, end)`` and the models to show (none: all)."""

    start: datetime
    end: datetime
    models: tuple[str, ...] = ()

    @classmethod
    def last(cls, length: timedelta, now: datetime, models: tuple[str, ...] = ()) -> Window:
        return cls(now - length, now, models)

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @property
    def step(self) -> timedelta:
        for step in STEPS:
            if self.length / step <= MAX_POINTS:
                return step
        return STEPS[-1]

    @property
    def resolution(self) -> str:
        """The rollup read: minute rows under an hour's step, hour rows from there."""
        return "minute" if self.step < timedelta(hours=1) else "hour"

    @property
    def rollup_start(self) -> datetime:
        """``start`` rounded down to the rollup's resolution (its rows cover whole units)."""
        unit = {"minute": 60, "hour": 3600}[self.resolution]
        seconds = int(self.start.timestamp()) // unit * unit
        return datetime.fromtimestamp(seconds, UTC)

    def previous(self) -> Window:
        """The window of the same length just before this one (for "change vs previous")."""
        return replace(self, start=self.start - self.length, end=self.start)

    def params(self) -> dict[str, Any]:
        return {
            "lo": self.start,
            "hi": self.end,
            "rollup_lo": self.rollup_start,
            "res": self.resolution,
            "step": self.step,
            "origin": ORIGIN,
            "models": list(self.models),
        }
