"""Where a vehicle is, interval by interval, from its recurring trips.

A vehicle is plugged in whenever it is not away on a trip. A trip's energy is drawn
evenly over the intervals it is away. Before each departure the battery must hold the
trip's energy plus a floor: the *departure need*.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import Trip
from lightson.domain.time import TimeGrid


@dataclass(frozen=True, eq=False)
class TripSchedule:
    """Per-interval availability of one vehicle over a grid.

    ``away[t]``: on a trip during interval ``t``; ``trip_energy_kwh[t]``: energy used in
    interval ``t``; ``departure_trip_kwh[t]``: energy of a trip that departs at the end of
    interval ``t`` (0 where none departs)."""

    away: NDArray[np.bool_]
    trip_energy_kwh: NDArray[np.float64]
    departure_trip_kwh: NDArray[np.float64]


def trip_schedule(trips: tuple[Trip, ...], grid: TimeGrid, tz: ZoneInfo) -> TripSchedule:
    """Lay recurring ``trips`` (program-local times) onto the interval ``grid``."""
    away = np.zeros(grid.n_steps, dtype=bool)
    energy = np.zeros(grid.n_steps)
    departure = np.zeros(grid.n_steps)
    for depart, arrive, trip in _occurrences(trips, grid, tz):
        first = grid.first_index_from(depart)
        last = grid.first_index_from(arrive)
        if last <= first:
            continue
        window = slice(max(first, 0), min(last, grid.n_steps))
        if window.start >= window.stop:
            continue
        away[window] = True
        energy[window] += trip.energy_kwh / (last - first)
        if 1 <= first <= grid.n_steps:
            departure[first - 1] += trip.energy_kwh
    return TripSchedule(away=away, trip_energy_kwh=energy, departure_trip_kwh=departure)


def _occurrences(
    trips: tuple[Trip, ...], grid: TimeGrid, tz: ZoneInfo
) -> list[tuple[datetime, datetime, Trip]]:
    first_day = (grid.start.astimezone(tz) - timedelta(days=2)).date()
    last_day = grid.end.astimezone(tz).date()
    found = []
    day = first_day
    while day <= last_day:
        for trip in trips:
            if day.weekday() in trip.weekdays and day.month in trip.months:
                depart = datetime.combine(day, trip.depart_local, tzinfo=tz)
                found.append((depart, depart + trip.duration, trip))
        day += timedelta(days=1)
    return found
