"""The demo's clock waits for a control pass that falls behind (``cli.demo._keep_pace``), so
on a slow machine the day runs slower instead of plans lapsing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from lightson.cli.demo import PASS_SHARE, _Holds, _keep_pace
from lightson.csms.clock import AcceleratedClock
from net_support import eventually, run

START = datetime(2026, 7, 15, 16, tzinfo=UTC)


class _Loop:
    """What the pacing reads of the control loop: its period and the pass under way."""

    every = timedelta(minutes=15)
    pass_started: datetime | None = None


def test_the_clock_waits_for_a_long_pass_and_runs_again_after_it() -> None:
    async def scenario() -> None:
        clock = AcceleratedClock(START, speed=3600)  # 15 simulated minutes in 0.25 s
        loop, holds = _Loop(), _Holds(clock)
        waits = holds.waits
        pacing = asyncio.create_task(_keep_pace(loop, holds))  # type: ignore[arg-type]
        try:
            started = clock.now()
            loop.pass_started = started  # a pass begins and does not end
            await eventually(lambda: clock.paused, 10)
            held = clock.now()
            assert held - started >= loop.every * PASS_SHARE  # it waited only when late
            await asyncio.sleep(0.2)  # 12 simulated minutes, were it running
            assert clock.now() == held and waits.passes == 0
            loop.pass_started = None  # the pass ends: time runs on
            await eventually(lambda: not clock.paused, 10)
            assert waits.passes == 1 and waits.seconds >= 0.2
            await eventually(lambda: clock.now() > held, 10)
        finally:
            pacing.cancel()

    run(scenario(), 30)


def test_a_pass_within_its_share_never_stops_the_clock() -> None:
    async def scenario() -> None:
        clock = AcceleratedClock(START, speed=60)  # 10 simulated minutes take 10 s
        loop, holds = _Loop(), _Holds(clock)
        waits = holds.waits
        pacing = asyncio.create_task(_keep_pace(loop, holds))  # type: ignore[arg-type]
        try:
            loop.pass_started = clock.now()
            await asyncio.sleep(0.5)  # 30 simulated seconds into the pass
            loop.pass_started = None
            await asyncio.sleep(0.1)
            assert not clock.paused and waits.passes == 0
        finally:
            pacing.cancel()

    run(scenario(), 30)


def test_holds_nest_and_the_clock_runs_when_the_last_lets_go() -> None:
    clock = AcceleratedClock(START, speed=3600)
    holds = _Holds(clock)
    with holds.held():
        with holds.held():
            assert clock.paused
        assert clock.paused  # the fleet still sends while a pass has ended
    assert not clock.paused
