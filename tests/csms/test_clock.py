"""The accelerated clock of the live edges."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from lightson.csms.clock import AcceleratedClock

START = datetime(2026, 7, 15, 16, tzinfo=UTC)


def test_a_paused_clock_reads_its_start_until_resumed() -> None:
    clock = AcceleratedClock(START, speed=3600.0, paused=True)
    time.sleep(0.02)
    assert clock.now() == START
    clock.resume()
    time.sleep(0.02)
    moved = clock.now() - START
    assert timedelta(seconds=0.02 * 3600) <= moved < timedelta(hours=1)  # 3600x the wall
    clock.resume()  # resuming again changes nothing
    assert clock.now() - START >= moved


def test_a_paused_clock_stays_where_it_stopped_until_resumed() -> None:
    clock = AcceleratedClock(START, speed=3600.0)
    time.sleep(0.02)
    clock.pause()
    stopped = clock.now()
    assert stopped > START
    time.sleep(0.02)
    assert clock.now() == stopped
    clock.resume()
    time.sleep(0.02)
    assert clock.now() >= stopped + timedelta(seconds=0.02 * 3600)  # on from there


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speed"):
        AcceleratedClock(START, speed=0.0)
