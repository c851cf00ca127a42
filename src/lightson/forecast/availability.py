"""Vehicle availability learned from a vehicle's recorded charging sessions: when it usually
leaves, when it is back and plugged in, and the energy its trips take, for weekdays and
weekends (``learn_availability``), as recurring trips the planner already understands
(``learned_trips``).

A *trip* is the time between two sessions of the vehicle: it leaves when one session ends
(the EV left) and is back when the next one starts (plugged in), and the next session's
charge is what the trip used (the energy it needs). Gaps longer than ``longest_trip_h`` (a
holiday) are left out. Each trip counts for the day type (weekday, weekend) of the local day
it leaves on.

For each day type: if the vehicle left on none of the last ``recent_days`` observed days of
that type it stays (a school bus in the summer break), if on each of them it leaves (back to
school); else if it left on fewer than ``min_share`` of the observed days of that type, it
usually stays (no trip); else it makes the median number of trips a day it
leaves on (a school bus: two routes), and the *i*-th trip of the day is the median departure
time, the median return time (counted from the departure day's midnight, so a return after
midnight stays after it) and the energy's quantiles over the *i*-th trips seen. Medians of
an even count are the mean of the middle two, quantiles numpy's linear ones.

Pure: sessions come in as data (``services.availability`` reads them from the store).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import numpy as np

from lightson.domain.assets import Trip

WEEKDAYS, WEEKENDS = frozenset(range(5)), frozenset({5, 6})
DAY_TYPES = {"weekday": WEEKDAYS, "weekend": WEEKENDS}
QUANTILES = (0.5, 0.9)
DEFAULT_MIN_SESSIONS = 10  # two working weeks of one session a day
LOOKBACK = timedelta(days=56)  # eight weeks: recent habits, and a season's change shows
NEED_QUANTILE = 0.9  # plan for nine trips in ten, not the average one
# A habit that changed shows within a working week: a vehicle that left on none (or on each)
# of the last five days of a type stays (leaves) whatever the share over the weeks before.
RECENT_DAYS = 5


@dataclass(frozen=True)
class RecordedSession:
    """One charging session: plugged in at ``plugged_in``, the EV left at ``left``, having
    taken ``energy_kwh`` (≥ 0: energy into the vehicle)."""

    plugged_in: datetime
    left: datetime
    energy_kwh: float


@dataclass(frozen=True)
class TypicalTrip:
    """The *i*-th trip of a day: leaves at ``depart_local``, back and plugged in at
    ``return_local`` (the next day when earlier), needing ``energy_kwh[q]`` at quantile ``q``;
    ``seen``: trips behind it."""

    depart_local: time
    return_local: time
    energy_kwh: dict[float, float]
    seen: int


@dataclass(frozen=True)
class DayPattern:
    """A day type's pattern: the share of its observed days the vehicle left on, and its
    trips (none: it usually stays)."""

    days_observed: int
    days_left: int
    trips: tuple[TypicalTrip, ...]


@dataclass(frozen=True)
class Availability:
    """What a vehicle's sessions say, by day type ("weekday", "weekend")."""

    sessions: int
    trips: int
    days: dict[str, DayPattern]


def learn_availability(
    sessions: Sequence[RecordedSession],
    tz: ZoneInfo,
    *,
    min_sessions: int = DEFAULT_MIN_SESSIONS,
    quantiles: Sequence[float] = QUANTILES,
    min_share: float = 0.5,
    longest_trip_h: float = 36.0,
    recent_days: int = RECENT_DAYS,
    observed_until: datetime | None = None,
) -> Availability | None:
    """The vehicle's pattern, or ``None`` with fewer than ``min_sessions`` sessions.
    ``observed_until``: when the sessions were read (the days before its local day count as
    observed, a vehicle plugged in since its last session stayed on them); without it the
    observed days end with the last session."""
    ordered = sorted(sessions, key=lambda s: s.plugged_in)
    if len(ordered) < max(min_sessions, 2):
        return None
    longest = timedelta(hours=longest_trip_h)
    by_day: dict[date, list[tuple[datetime, datetime, float]]] = {}
    for before, after in pairwise(ordered):
        if timedelta(0) < after.plugged_in - before.left <= longest:
            depart, back = before.left.astimezone(tz), after.plugged_in.astimezone(tz)
            by_day.setdefault(depart.date(), []).append((depart, back, max(after.energy_kwh, 0.0)))
    first = ordered[0].plugged_in.astimezone(tz).date()
    last = ordered[-1].left.astimezone(tz).date()
    if observed_until is not None:
        last = max(last, observed_until.astimezone(tz).date() - timedelta(days=1))
    days = {
        name: _pattern(weekdays, first, last, by_day, quantiles, min_share, recent_days)
        for name, weekdays in DAY_TYPES.items()
    }
    return Availability(len(ordered), sum(len(t) for t in by_day.values()), days)


def _pattern(
    weekdays: frozenset[int],
    first: date,
    last: date,
    by_day: dict[date, list[tuple[datetime, datetime, float]]],
    quantiles: Sequence[float],
    min_share: float,
    recent_days: int,
) -> DayPattern:
    days = [
        first + timedelta(n)
        for n in range((last - first).days + 1)
        if (first + timedelta(n)).weekday() in weekdays
    ]
    observed = len(days)
    left = {day: sorted(trips) for day, trips in by_day.items() if day.weekday() in weekdays}
    recent = [day in left for day in days[-recent_days:]] if recent_days > 0 else []
    changed = len(recent) == recent_days and recent_days > 0 and len(set(recent)) == 1
    leaves = recent[0] if changed else len(left) >= min_share * observed
    if observed == 0 or not left or not leaves:
        return DayPattern(observed, len(left), ())
    per_day = round(statistics.median(len(t) for t in left.values()))
    typical = []
    for i in range(per_day):
        nth = [(day, trips[i]) for day, trips in left.items() if len(trips) > i]
        depart_min = statistics.median(_minutes(d, depart) for d, (depart, _, _) in nth)
        back_min = statistics.median(_minutes(d, back) for d, (_, back, _) in nth)
        energy = np.array([kwh for _, (_, _, kwh) in nth])
        typical.append(
            TypicalTrip(
                _clock(depart_min),
                _clock(back_min),
                {q: float(np.quantile(energy, q)) for q in quantiles},
                len(nth),
            )
        )
    return DayPattern(observed, len(left), tuple(typical))


def _minutes(day: date, at: datetime) -> float:
    """Minutes from the local midnight starting ``day`` (wall clock; > 1440 the next day)."""
    return (at.date() - day).days * 1440 + at.hour * 60 + at.minute + at.second / 60


def _clock(minutes: float) -> time:
    whole = round(minutes) % 1440
    return time(whole // 60, whole % 60)


def learned_trips(availability: Availability, quantile: float = 0.9) -> tuple[Trip, ...]:
    """The pattern as recurring trips, each needing the energy at ``quantile`` (one of those
    learned): what ``Vehicle.trips`` holds for a program file's schedule."""
    return tuple(
        Trip(
            weekdays=DAY_TYPES[name],
            depart_local=trip.depart_local,
            return_local=trip.return_local,
            energy_kwh=trip.energy_kwh[quantile],
        )
        for name, pattern in availability.days.items()
        for trip in pattern.trips
    )
