"""Availability learned from a vehicle's recorded sessions, on hand-made histories with the
medians and quantiles computed by hand in the comments."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from lightson.domain.assets import Trip
from lightson.forecast.availability import (
    WEEKDAYS,
    RecordedSession,
    learn_availability,
    learned_trips,
)

TZ = ZoneInfo("America/New_York")
# Monday to Friday: when the commuter leaves, is back, and what the next session charges.
DEPART = ["07:00", "07:30", "08:00", "07:30", "07:30"]
BACK = ["17:00", "18:00", "18:30", "18:00", "19:00"]
KWH = [8.0, 10.0, 12.0, 10.0, 20.0]


def at(day: int, clock: str) -> datetime:
    """A local time on day ``day`` of March 2026 (Monday 2 March is a weekday)."""
    hour, minute = (int(x) for x in clock.split(":"))
    return datetime(2026, 3, day, hour, minute, tzinfo=TZ)


def commuter() -> list[RecordedSession]:
    """Plugged in Sunday 1 March 20:00; two working weeks (2-6, 9-13 March) leaving and
    coming back as DEPART/BACK; the second Friday's return charges 16 kWh, not 20; on
    Saturday 14 March an outing 10:00-12:00 (4 kWh); leaves again Monday 16 March 07:00.
    12 sessions, 10 weekday trips, 1 weekend trip."""
    days = [2, 3, 4, 5, 6, 9, 10, 11, 12, 13]
    sessions = []
    plugged, plugged_kwh = at(1, "20:00"), 0.0
    for n, day in enumerate(days):
        weekday = n % 5
        sessions.append(RecordedSession(plugged, at(day, DEPART[weekday]), plugged_kwh))
        plugged = at(day, BACK[weekday])
        plugged_kwh = 16.0 if day == 13 else KWH[weekday]
    sessions.append(RecordedSession(plugged, at(14, "10:00"), plugged_kwh))
    sessions.append(RecordedSession(at(14, "12:00"), at(16, "07:00"), 4.0))
    return sessions


def test_a_commuters_weekdays_and_stay_at_home_weekends() -> None:
    learned = learn_availability(commuter(), TZ, min_sessions=12)
    assert learned is not None
    assert (learned.sessions, learned.trips) == (12, 11)
    weekday, weekend = learned.days["weekday"], learned.days["weekend"]
    # 11 weekdays from Sunday 1 to Monday 16 March, left on 10 (not on Monday 16: no return)
    assert (weekday.days_observed, weekday.days_left) == (11, 10)
    (trip,) = weekday.trips
    # departures 07:00 ×2, 07:30 ×6, 08:00 ×2: median 07:30
    assert trip.depart_local == time(7, 30)
    # returns 17:00 ×2, 18:00 ×4, 18:30 ×2, 19:00 ×2: the 5th and 6th are 18:00
    assert trip.return_local == time(18, 0)
    # energies 8 8 10 10 10 10 12 12 16 20: median 10; 90 %: 16 + 0.1 × (20 − 16) = 16.4
    assert trip.energy_kwh == {0.5: 10.0, 0.9: pytest.approx(16.4)}
    assert trip.seen == 10
    # weekend days 1, 7, 8, 14, 15 March: out on 1 of 5, under half: stays
    assert (weekend.days_observed, weekend.days_left, weekend.trips) == (5, 1, ())
    assert learned_trips(learned) == (
        Trip(WEEKDAYS, time(7, 30), time(18, 0), pytest.approx(16.4)),
    )
    assert learned_trips(learned, 0.5)[0].energy_kwh == 10.0


def test_too_few_sessions_learn_nothing() -> None:
    assert learn_availability(commuter(), TZ, min_sessions=13) is None
    assert learn_availability(commuter()[:1], TZ, min_sessions=0) is None


def test_a_school_bus_makes_two_routes_a_day() -> None:
    """Monday 2 to Friday 6 March: 06:30-09:00 (the session after charges 30 kWh) and
    14:00-16:30 (25 kWh), every day alike."""
    sessions = [RecordedSession(at(1, "16:30"), at(2, "06:30"), 0.0)]
    for day in range(2, 7):
        sessions.append(RecordedSession(at(day, "09:00"), at(day, "14:00"), 30.0))
        following = at(day + 1, "06:30") if day < 6 else at(9, "06:30")
        sessions.append(RecordedSession(at(day, "16:30"), following, 25.0))
    learned = learn_availability(sessions, TZ, min_sessions=5)
    assert learned is not None
    morning, afternoon = learned.days["weekday"].trips
    assert (morning.depart_local, morning.return_local, morning.energy_kwh[0.9]) == (
        time(6, 30),
        time(9, 0),
        30.0,
    )
    assert (afternoon.depart_local, afternoon.return_local, afternoon.energy_kwh[0.5]) == (
        time(14, 0),
        time(16, 30),
        25.0,
    )


def test_a_return_around_midnight_stays_after_it() -> None:
    """A night shift leaving 22:00, back at 23:50 twice and at 00:10 the next day twice:
    the median return is 00:00 (the middle of 1430 and 1450 minutes after the departure
    day's midnight), not noon (the middle of 23:50 and 00:10 as times of day)."""
    sessions = [RecordedSession(at(1, "12:00"), at(2, "22:00"), 0.0)]
    backs = [(2, "23:50"), (4, "00:10"), (4, "23:50"), (6, "00:10")]
    departs = [(3, "22:00"), (4, "22:00"), (5, "22:00"), (6, "22:00")]
    for (day, back), (next_day, depart) in zip(backs, departs, strict=True):
        sessions.append(RecordedSession(at(day, back), at(next_day, depart), 5.0))
    learned = learn_availability(sessions, TZ, min_sessions=5)
    assert learned is not None
    (trip,) = learned.days["weekday"].trips
    assert (trip.depart_local, trip.return_local) == (time(22, 0), time(0, 0))
    (as_trip,) = learned_trips(learned)
    assert as_trip.duration == timedelta(hours=2)


def test_a_holiday_longer_than_the_longest_trip_is_no_trip() -> None:
    """The commuter away from Saturday 10:00 to Monday 07:00 (45 h) is no trip when trips
    are at most 36 h: 10 trips, not 11."""
    sessions = commuter()
    sessions[-2:] = [
        RecordedSession(sessions[-2].plugged_in, at(14, "10:00"), sessions[-2].energy_kwh),
        RecordedSession(at(16, "07:00"), at(16, "08:00"), 4.0),
    ]
    learned = learn_availability(sessions, TZ, min_sessions=12)
    assert learned is not None and learned.trips == 10


def _bus_days(first_day: int, days: int, start: datetime) -> list[RecordedSession]:
    """A school bus out 06:30-09:00 and 14:00-16:30 on each weekday of ``days`` days from
    day ``first_day`` of March 2026, plugged in from ``start`` (each return charges 20 kWh)."""
    sessions, plugged = [], start
    for day in range(first_day, first_day + days):
        if at(day, "00:00").weekday() >= 5:
            continue
        for leave, back in (("06:30", "09:00"), ("14:00", "16:30")):
            sessions.append(RecordedSession(plugged, at(day, leave), 20.0))
            plugged = at(day, back)
    sessions.append(RecordedSession(plugged, plugged + timedelta(days=40), 20.0))
    return sessions


def test_a_habit_that_changed_shows_within_a_working_week() -> None:
    """Two school weeks (2-13 March: 20 sessions, 2 routes a weekday), then the bus stays
    plugged in (the summer break) in a session still open when learned: it is read only up
    to its last departure, so without ``observed_until`` the routes go on. Learned on
    Friday 20 March with it (the 20th not yet over), the last five weekdays (13, 16, 17, 18,
    19 March) hold one departure: the share decides, 10 of 14. On Monday 23 March none of
    16-20 March: it stays, though it left on 10 of the 15 weekdays observed (over half)."""
    sessions = _bus_days(2, 12, at(1, "20:00"))[:-1]  # the last session is still open
    stale = learn_availability(sessions, TZ)
    assert stale is not None and len(stale.days["weekday"].trips) == 2
    friday = learn_availability(sessions, TZ, observed_until=at(20, "12:00"))
    assert friday is not None
    assert (friday.days["weekday"].days_observed, friday.days["weekday"].days_left) == (14, 10)
    assert len(friday.days["weekday"].trips) == 2  # 10 of 14 left; 13 March among the last 5
    monday = learn_availability(sessions, TZ, observed_until=at(23, "00:00"))
    assert monday is not None
    assert (monday.days["weekday"].days_observed, monday.days["weekday"].days_left) == (15, 10)
    assert monday.days["weekday"].trips == ()
    # Back to school: three weeks plugged in, then routes each weekday of 23-27 March. At
    # Saturday 28 March it left on 5 of the 19 weekdays observed, each of the last five.
    back = [RecordedSession(at(1, "20:00"), at(2, "06:30"), 0.0)]
    back += _bus_days(23, 5, at(2, "09:00"))[:-1]
    learned = learn_availability(back, TZ, observed_until=at(28, "12:00"))
    assert learned is not None
    weekday = learned.days["weekday"]
    assert (weekday.days_observed, weekday.days_left) == (20, 6)
    assert [(t.depart_local, t.return_local) for t in weekday.trips] == [
        (time(6, 30), time(9, 0)),
        (time(14, 0), time(16, 30)),
    ]
    # without the rule (recent_days=0): 6 of 20 is under half, it stays
    without = learn_availability(back, TZ, observed_until=at(28, "12:00"), recent_days=0)
    assert without is not None and without.days["weekday"].trips == ()
