"""Grid-loss signals and the re-sync delay, on a simulated clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lightson.control.grid import GridMonitor, GridSignal
from lightson.domain.time import SimClock

START = datetime(2026, 7, 16, 14, tzinfo=UTC)


def test_islanded_from_the_first_loss_until_the_delay_after_the_return() -> None:
    clock = SimClock(START)
    grid = GridMonitor(enter_service_delay=timedelta(seconds=300))
    assert not grid.islanded(clock.now())
    grid.report("meter", GridSignal.LOST, clock.now())
    assert grid.islanded(clock.now())
    clock.advance(timedelta(hours=2))
    grid.report("meter", GridSignal.RESTORED, clock.now())
    assert grid.resync_at() == START + timedelta(hours=2, seconds=300)
    clock.advance(timedelta(seconds=299))
    assert grid.islanded(clock.now())  # still waiting to re-sync
    clock.advance(timedelta(seconds=1))
    assert not grid.islanded(clock.now())


def test_every_source_must_see_the_grid_back_and_a_new_loss_restarts_the_wait() -> None:
    clock = SimClock(START)
    grid = GridMonitor()
    grid.report("meter", GridSignal.LOST, clock.now())
    grid.report("charger:cs-1", GridSignal.LOST, clock.now())
    clock.advance(timedelta(minutes=30))
    grid.report("meter", GridSignal.RESTORED, clock.now())
    assert grid.islanded(clock.now()) and grid.resync_at() is None  # the charger still sees none
    grid.report("charger:cs-1", GridSignal.RESTORED, clock.now())
    clock.advance(timedelta(minutes=2))
    grid.report("operator", GridSignal.LOST, clock.now())  # a flicker during the delay
    clock.advance(timedelta(minutes=10))
    assert grid.islanded(clock.now())
    grid.report("operator", GridSignal.RESTORED, clock.now())
    clock.advance(timedelta(minutes=4))
    assert grid.islanded(clock.now())  # the 5 minutes run from the last return
    clock.advance(timedelta(minutes=1))
    assert not grid.islanded(clock.now())
    assert [s for _, _, s in grid.log].count(GridSignal.LOST) == 3


def test_a_grid_ok_from_a_source_that_saw_no_loss_changes_nothing() -> None:
    grid = GridMonitor()
    grid.report("charger:cs-1", GridSignal.RESTORED, START)  # e.g. at boot
    assert not grid.islanded(START) and grid.resync_at() is None
