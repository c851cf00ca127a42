"""The twin plans vehicles on what their recorded sessions say, as the live loop (#16):
sessions read from hand-made recorded arrays, learned once a local day, the program file's
schedule before a vehicle has enough sessions, and the owner's stated departure overriding."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta

import numpy as np
import pytest

from lightson.domain.assets import Program
from lightson.domain.errors import UnknownNameError
from lightson.domain.time import TimeGrid
from lightson.sim.availability import StatedDeparture, TwinAvailability, recorded_sessions
from lightson.sim.engine import simulate_site
from lightson.sim.world import WorldOptions, build_world

STEP = timedelta(minutes=15)
PER_DAY = 96


def _commuter(program: Program, days: int) -> tuple[TimeGrid, np.ndarray, np.ndarray]:
    """A car away 07:30–17:30 local on weekdays from Monday 2026-04-06, charging 10 kW for
    the first 45 minutes back (7.5 kWh a session); 2.5 kW given back at 20:00 on Wednesdays."""
    tz = program.timezone
    grid = TimeGrid(datetime(2026, 4, 6, tzinfo=tz), days * PER_DAY, STEP)
    plugged = np.ones(grid.n_steps, dtype=bool)
    power = np.zeros(grid.n_steps)
    for d in range(days):
        day = grid.start + timedelta(days=d)
        if day.weekday() >= 5:
            continue
        leave, back = d * PER_DAY + 30, d * PER_DAY + 70  # 07:30, 17:30
        plugged[leave:back] = False
        power[back : back + 3] = 10.0
        if day.weekday() == 2:
            power[d * PER_DAY + 80] = -2.5 * 4  # one step of 10 kW discharge: 2.5 kWh
    return grid, plugged, power


def test_sessions_from_recorded_steps(example_program: Program) -> None:
    grid, plugged, power = _commuter(example_program, 3)  # Mon, Tue, Wed
    # At Wednesday 12:00 (step 2·96 + 48): Monday's and Tuesday's mornings ended; the
    # session plugged in on Tuesday 17:30 ended Wednesday 07:30; Wednesday's is not back.
    k = 2 * PER_DAY + 48
    found = recorded_sessions(plugged, power, grid, k, grid.start)
    tz = example_program.timezone
    assert [(s.plugged_in.astimezone(tz), s.left.astimezone(tz)) for s in found] == [
        (datetime(2026, 4, 6, 0, 0, tzinfo=tz), datetime(2026, 4, 6, 7, 30, tzinfo=tz)),
        (datetime(2026, 4, 6, 17, 30, tzinfo=tz), datetime(2026, 4, 7, 7, 30, tzinfo=tz)),
        (datetime(2026, 4, 7, 17, 30, tzinfo=tz), datetime(2026, 4, 8, 7, 30, tzinfo=tz)),
    ]
    assert [s.energy_kwh for s in found] == [0.0, 7.5, 7.5]  # 3 steps × 10 kW × 0.25 h
    # Thursday 12:00: Wednesday evening's session charged 7.5 and gave 2.5 back: 5.0 net
    k = 3 * PER_DAY + 48
    grid4, plugged4, power4 = _commuter(example_program, 4)
    assert recorded_sessions(plugged4, power4, grid4, k, grid4.start)[-1].energy_kwh == 5.0
    # a lookback leaves out the sessions plugged in before it
    since = grid.start + timedelta(hours=12)
    assert len(recorded_sessions(plugged, power, grid, 2 * PER_DAY + 48, since)) == 2


def _availability(program: Program, days: int, **kwargs: object) -> TwinAvailability:
    site = program.site("home-lowell")
    grid, plugged, power = _commuter(program, days + 2)
    horizon = 8 * 4
    world = build_world(program, site, grid.start, grid.n_steps - horizon, horizon, 0)
    return TwinAvailability(
        program,
        site,
        grid,
        horizon,
        plugged[None, :],
        power[None, :],
        world.nominal_schedules,
        **kwargs,  # type: ignore[arg-type]
    )


def test_learned_trip_replaces_the_schedule_once_there_are_ten_sessions(
    example_program: Program,
) -> None:
    # The program file says 06:30–14:30 on weekdays; the recorded car goes 07:30–17:30.
    learner = _availability(example_program, 14)
    # Monday 2026-04-13 00:00: 5 finished sessions (the first from the start), 4 trips:
    # fewer than 10, so the program file's schedule (away from 06:30, step 26)
    early = learner.schedules(7 * PER_DAY)["lightning"]
    assert learner.learned == {}
    assert np.flatnonzero(early.away)[0] == 26
    # Monday 2026-04-20 00:00: 10 finished sessions; 9 trips, each left 07:30 and back 17:30
    at = 14 * PER_DAY
    learned = learner.schedules(at)["lightning"]
    pattern = learner.learned["lightning"]
    assert pattern.sessions == 10
    weekday = pattern.days["weekday"].trips
    assert [(t.depart_local, t.return_local) for t in weekday] == [(time(7, 30), time(17, 30))]
    # the trips' needs: the next session's net charge, 7.5 kWh, but 5.0 after each Wednesday
    # (two of nine): the 90th percentile is 7.5
    assert weekday[0].energy_kwh[0.9] == 7.5
    assert pattern.days["weekend"].trips == ()
    # planned away 07:30–17:30 (steps 30–69 of the 8-hour plan's day: only 30–31 in it)
    assert list(np.flatnonzero(learned.away)) == [30, 31]
    assert learned.next_trip_kwh[0] == 7.5
    # the same day later: learned once a local day, not again
    learner._plugged[:] = True
    assert learner.schedules(at + 4)["lightning"].next_trip_kwh[0] == 7.5


def test_schedule_switch_and_stated_departure_override(example_program: Program) -> None:
    tz = example_program.timezone
    at = 14 * PER_DAY  # Monday 2026-04-20 00:00, ten sessions recorded
    scheduled = _availability(example_program, 14, learn=False).schedules(at)["lightning"]
    assert np.flatnonzero(scheduled.away)[0] == 26  # the program file's 06:30
    # The owner says on Sunday evening that Monday's trip leaves at 05:00
    stated = StatedDeparture(
        "lightning",
        datetime(2026, 4, 19, 20, 0, tzinfo=tz),
        datetime(2026, 4, 20, 5, 0, tzinfo=tz),
        need_kwh=30.0,
    )
    for learn in (True, False):
        learner = _availability(example_program, 14, learn=learn, stated=(stated,))
        moved = learner.schedules(at)["lightning"]
        assert np.flatnonzero(moved.away)[0] == 20  # 05:00
        assert moved.departure_trip_kwh[19] == 30.0  # the owner's need, above the floor
        assert learner.departures(datetime(2026, 4, 20, 0, 0, tzinfo=tz)) == frozenset(
            {("lightning", stated.depart, 30.0)}
        )
        # once it has left, the stated departure no longer applies
        assert learner.departures(datetime(2026, 4, 20, 5, 0, tzinfo=tz)) == frozenset()


def test_the_twin_plans_on_learned_trips_only_after_enough_sessions(
    example_program: Program,
) -> None:
    """Nine days of the home: fewer than ten sessions, so learned and scheduled plan alike;
    an unknown switch names the choices."""
    site = replace(example_program.site("home-lowell"))
    start = datetime(2026, 4, 6, tzinfo=example_program.timezone)
    runs = [
        simulate_site(
            example_program,
            site.site_id,
            "v2x-mpc",
            start,
            9 * PER_DAY,
            0,
            WorldOptions(availability=a),
        )
        for a in ("learned", "schedule")
    ]
    assert np.array_equal(runs[0].power_kw, runs[1].power_kw)
    with pytest.raises(UnknownNameError, match="learned, schedule"):
        build_world(example_program, site, start, 4, 4, 0, WorldOptions(availability="guess"))
