"""The window's chart step, rollup resolution and previous period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ui.window import MAX_POINTS, Window

NOW = datetime(2026, 11, 22, 10, 17, 42, tzinfo=UTC)


@pytest.mark.parametrize(
    ("length", "step", "resolution"),
    [
        (timedelta(minutes=15), timedelta(minutes=1), "minute"),
        (timedelta(hours=1), timedelta(minutes=1), "minute"),
        (timedelta(hours=6), timedelta(minutes=5), "minute"),
        (timedelta(days=1), timedelta(hours=1), "hour"),
        (timedelta(days=7), timedelta(hours=1), "hour"),
        (timedelta(days=30), timedelta(hours=6), "hour"),
        (timedelta(days=400), timedelta(days=1), "hour"),
    ],
)
def test_step_and_resolution(length: timedelta, step: timedelta, resolution: str) -> None:
    w = Window.last(length, NOW)
    assert (w.step, w.resolution) == (step, resolution)
    assert w.length / w.step <= MAX_POINTS or step == timedelta(days=1)


def test_rollup_start_covers_whole_units_and_previous_is_adjacent() -> None:
    w = Window.last(timedelta(days=7), NOW, ("m",))
    assert w.rollup_start == datetime(2026, 11, 15, 10, 0, tzinfo=UTC)
    minute = Window.last(timedelta(hours=1), NOW)
    assert minute.rollup_start == datetime(2026, 11, 22, 9, 17, tzinfo=UTC)
    before = w.previous()
    assert (before.end, before.length, before.models) == (w.start, w.length, ("m",))
    assert w.params()["models"] == ["m"]
