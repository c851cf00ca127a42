from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightson.domain.assets import Trip
from lightson.domain.time import TimeGrid
from lightson.physics.battery import next_energy_kwh
from lightson.physics.trips import (
    LOOKAHEAD,
    lay_trips,
    occurrences,
    trip_schedule,
    with_departure,
)

NY = ZoneInfo("America/New_York")


def test_charging_stores_eta_c_and_discharging_draws_over_eta_d() -> None:
    assert next_energy_kwh(50.0, 10.0, 0.5, 0.9, 0.8) == pytest.approx(54.5)
    assert next_energy_kwh(50.0, -10.0, 0.5, 0.9, 0.8) == pytest.approx(50.0 - 6.25)
    assert next_energy_kwh(50.0, 0.0, 0.5, 0.9, 0.8, trip_energy_kwh=12.0) == pytest.approx(38.0)


def test_a_school_day_has_two_routes_and_a_need_before_each() -> None:
    routes = (
        Trip(frozenset(range(5)), time(6, 30), time(9, 0), 15.0),
        Trip(frozenset(range(5)), time(14, 0), time(16, 30), 15.0),
    )
    grid = TimeGrid(datetime(2026, 3, 11, tzinfo=NY), 96)  # a Wednesday
    schedule = trip_schedule(routes, grid, NY)
    away = np.flatnonzero(schedule.away)
    assert list(away) == list(range(26, 36)) + list(range(56, 66))
    assert schedule.trip_energy_kwh.sum() == pytest.approx(30.0)
    assert schedule.trip_energy_kwh[26] == pytest.approx(1.5)
    assert list(np.flatnonzero(schedule.departure_trip_kwh)) == [25, 55]


def test_no_routes_on_weekends_or_in_months_left_out() -> None:
    route = Trip(frozenset(range(5)), time(6, 30), time(9, 0), 15.0, months=frozenset({9, 10}))
    saturday = trip_schedule((route,), TimeGrid(datetime(2026, 10, 3, tzinfo=NY), 96), NY)
    july = trip_schedule((route,), TimeGrid(datetime(2026, 7, 15, tzinfo=NY), 96), NY)
    assert not saturday.away.any() and not july.away.any()


def test_an_overnight_trip_started_before_the_horizon_is_away_at_the_start() -> None:
    night_shift = Trip(frozenset(range(7)), time(22, 0), time(6, 0), 16.0)
    schedule = trip_schedule((night_shift,), TimeGrid(datetime(2026, 7, 15, tzinfo=NY), 96), NY)
    assert schedule.away[:24].all() and not schedule.away[24:88].any() and schedule.away[88:].all()
    # 8 h trip over 32 intervals: 0.5 kWh each; the one that leaves at 22:00 needs 16 kWh.
    assert schedule.trip_energy_kwh[0] == pytest.approx(0.5)
    assert schedule.departure_trip_kwh[87] == pytest.approx(16.0)


@given(
    st.integers(0, 23),
    st.sampled_from([0, 15, 30, 45]),
    st.integers(1, 10),
    st.floats(0.5, 50.0),
)
def test_a_whole_trip_inside_the_horizon_uses_its_whole_energy(
    depart_hour: int, depart_minute: int, hours_away: int, energy_kwh: float
) -> None:
    depart = time(depart_hour, depart_minute)
    back = time((depart_hour + hours_away) % 24, depart_minute)
    trip = Trip(frozenset({2}), depart, back, energy_kwh)  # Wednesdays only
    grid = TimeGrid(datetime(2026, 3, 10, 12, tzinfo=NY), 4 * 72)  # Tue noon + 3 days
    schedule = trip_schedule((trip,), grid, NY)
    assert schedule.trip_energy_kwh.sum() == pytest.approx(energy_kwh)
    assert schedule.away.sum() == 4 * hours_away
    assert schedule.departure_trip_kwh.sum() == pytest.approx(energy_kwh)
    assert np.all(schedule.trip_energy_kwh[~schedule.away] == 0)


def test_next_trip_looks_past_the_horizon_and_over_the_weekend() -> None:
    route = Trip(frozenset(range(5)), time(6, 30), time(9, 0), 15.0)
    friday_evening = TimeGrid(datetime(2026, 3, 13, 18, tzinfo=NY), 8)
    schedule = trip_schedule((route,), friday_evening, NY)
    assert np.all(schedule.next_trip_kwh == 15.0)  # Monday 06:30, beyond the grid
    wednesday = trip_schedule((route,), TimeGrid(datetime(2026, 3, 11, tzinfo=NY), 96), NY)
    assert wednesday.next_trip_kwh[0] == 15.0 and wednesday.next_trip_kwh[25] == 15.0
    assert wednesday.next_trip_kwh[40] == 15.0  # Thursday's route
    assert trip_schedule((), friday_evening, NY).next_trip_kwh.sum() == 0.0


def test_the_energy_floor_keeps_reserve_and_next_trip_only_while_plugged() -> None:
    from lightson.domain.assets import Vehicle
    from lightson.physics.trips import energy_floor_kwh

    bus = Vehicle("bus", "thomas-jouley-226", "evse", 226.0, soc_min=0.05, reserve_soc=0.3)
    assert energy_floor_kwh(bus, 15.0, plugged=True) == pytest.approx(0.3 * 226)  # reserve wins
    assert energy_floor_kwh(bus, 60.0, plugged=True) == pytest.approx(0.2 * 226 + 60.0)
    assert energy_floor_kwh(bus, 60.0, plugged=False) == pytest.approx(0.05 * 226)
    assert energy_floor_kwh(bus, 500.0, plugged=True) == pytest.approx(226.0)  # capped


@pytest.mark.parametrize(
    "first_day", [datetime(2026, 3, 6, tzinfo=NY), datetime(2026, 10, 30, tzinfo=NY)]
)
def test_trips_stay_at_their_local_times_across_daylight_saving_changes(
    first_day: datetime,
) -> None:
    # Four days across 8 March (spring forward) or 1 November (fall back): every away
    # interval starts between 06:30 and 09:00 local time, every day.
    route = Trip(frozenset(range(7)), time(6, 30), time(9, 0), 10.0)
    grid = TimeGrid(first_day, 4 * 96)
    schedule = trip_schedule((route,), grid, NY)
    starts = grid.starts_local(NY)
    away_local = [starts[t] for t in np.flatnonzero(schedule.away)]
    assert len(away_local) == 4 * 10
    assert all(time(6, 30) <= s.time() < time(9, 0) for s in away_local)
    assert {s.date() for s in away_local} == {
        (first_day + timedelta(days=d)).date() for d in range(4)
    }


def test_a_trip_shorter_than_a_step_still_takes_its_interval_and_energy() -> None:
    errand = Trip(frozenset(range(7)), time(6, 10), time(6, 50), 12.0)
    grid = TimeGrid(datetime(2026, 3, 11, tzinfo=NY), 24, timedelta(hours=1))
    schedule = trip_schedule((errand,), grid, NY)
    assert list(np.flatnonzero(schedule.away)) == [6]
    assert schedule.trip_energy_kwh.sum() == pytest.approx(12.0)
    assert schedule.departure_trip_kwh[5] == pytest.approx(12.0)


@given(
    next_trip=st.lists(st.floats(0, 300, allow_nan=False), min_size=1, max_size=30),
    plugged_seed=st.integers(0, 2**16),
    reserve=st.floats(0, 0.9),
    soc_min=st.floats(0, 0.3),
)
def test_the_vectorized_floor_is_the_scalar_rule(
    next_trip: list[float], plugged_seed: int, reserve: float, soc_min: float
) -> None:
    from lightson.domain.assets import Vehicle
    from lightson.physics.trips import energy_floor_kwh, energy_floor_kwh_array

    bus = Vehicle("bus", "thomas-jouley-226", "evse", 226.0, soc_min=soc_min, reserve_soc=reserve)
    plugged = np.random.default_rng(plugged_seed).random(len(next_trip)) < 0.6
    expected = [energy_floor_kwh(bus, k, bool(p)) for k, p in zip(next_trip, plugged, strict=True)]
    assert energy_floor_kwh_array(bus, np.array(next_trip), plugged).tolist() == expected


def test_a_departure_asked_for_moves_that_days_trip_or_adds_one() -> None:
    commute = (Trip(frozenset(range(5)), time(8, 0), time(17, 0), 12.0),)
    grid = TimeGrid(datetime(2026, 3, 11, tzinfo=NY), 96)  # a Wednesday
    found = occurrences(commute, grid.start - timedelta(days=2), grid.end, NY)
    dawn = datetime(2026, 3, 11, 5, 0, tzinfo=NY)
    # Leaving at 06:30 instead of 08:00, with 30 kWh above the departure floor.
    early = datetime(2026, 3, 11, 6, 30, tzinfo=NY)
    schedule = lay_trips(with_departure(found, early, 30.0, NY, dawn), grid)
    assert list(np.flatnonzero(schedule.departure_trip_kwh)) == [25]  # ends at 06:30
    assert schedule.departure_trip_kwh[25] == pytest.approx(30.0)
    assert list(np.flatnonzero(schedule.away)) == list(range(26, 62))  # still 9 h away
    assert schedule.trip_energy_kwh.sum() == pytest.approx(12.0)
    # Less than the trip needs: the trip's own energy still counts.
    less = lay_trips(with_departure(found, early, 5.0, NY, dawn), grid)
    assert less.departure_trip_kwh[25] == 12.0


def test_a_departure_on_a_day_without_a_trip_needs_the_usual_trip() -> None:
    commute = (Trip(frozenset(range(5)), time(8, 0), time(17, 0), 12.0),)
    saturday = TimeGrid(datetime(2026, 3, 14, tzinfo=NY), 96)
    found = occurrences(commute, saturday.start - timedelta(days=2), saturday.end + LOOKAHEAD, NY)
    at_ten = datetime(2026, 3, 14, 10, tzinfo=NY)
    # No target given: it needs what the usual trip needs, and Monday's commute still counts.
    added = lay_trips(with_departure(found, at_ten, None, NY, saturday.start), saturday)
    assert list(np.flatnonzero(added.away)) == [40, 41, 42, 43]
    assert added.departure_trip_kwh[39] == 12.0 and added.trip_energy_kwh.sum() == 0.0
    assert added.next_trip_kwh[0] == 12.0 and added.next_trip_kwh[50] == 12.0  # Monday's
    # A target below the departure floor needs no more than the usual trip either.
    low = lay_trips(with_departure(found, at_ten, -5.0, NY, saturday.start), saturday)
    assert low.departure_trip_kwh[39] == 12.0


def test_a_departure_moves_the_nearest_trip_not_yet_left_and_never_one_under_way() -> None:
    routes = (
        Trip(frozenset(range(5)), time(6, 30), time(9, 0), 15.0),
        Trip(frozenset(range(5)), time(14, 0), time(16, 30), 15.0),
    )
    grid = TimeGrid(datetime(2026, 3, 11, tzinfo=NY), 96)  # a Wednesday, two routes
    found = occurrences(routes, grid.start - timedelta(days=2), grid.end, NY)
    early_morning = datetime(2026, 3, 11, 5, 0, tzinfo=NY)
    # 14:30 moves the afternoon route (the nearest), not the morning one.
    moved = with_departure(found, datetime(2026, 3, 11, 14, 30, tzinfo=NY), None, NY, early_morning)
    today = [t for t in moved if t.depart.date() == grid.start.date()]
    assert [t.depart.time() for t in today] == [time(6, 30), time(14, 30)]
    assert sum(t.energy_kwh for t in today) == 30.0
    # At 07:00 the morning route is under way: a 19:00 departure moves the afternoon one.
    under_way = datetime(2026, 3, 11, 7, 0, tzinfo=NY)
    later = with_departure(found, datetime(2026, 3, 11, 19, 0, tzinfo=NY), None, NY, under_way)
    today = [t for t in later if t.depart.date() == grid.start.date()]
    assert [t.depart.time() for t in today] == [time(6, 30), time(19, 0)]
