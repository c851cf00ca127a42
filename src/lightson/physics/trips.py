"""Where a vehicle is, interval by interval, from its recurring trips.

A vehicle is plugged in whenever it is not away on a trip. A trip's energy is drawn
evenly over the intervals it is away. Before each departure the battery must hold the
trip's energy plus a floor: the *departure need*; while plugged in, discharge never goes
below the floor of the *next* trip (``energy_floor_kwh``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import Trip, Vehicle
from lightson.domain.time import TimeGrid


@dataclass(frozen=True, eq=False)
class TripSchedule:
    """Per-interval availability of one vehicle over a grid.

    ``away[t]``: on a trip during interval ``t``; ``trip_energy_kwh[t]``: energy used in
    interval ``t``; ``departure_trip_kwh[t]``: scheduled energy of a trip that departs at the
    end of interval ``t`` (0 where none departs); ``next_trip_kwh[t]``: scheduled energy of the
    next trip that departs at or after the end of interval ``t``, looking up to ``LOOKAHEAD``
    past the grid (0 if none)."""

    away: NDArray[np.bool_]
    trip_energy_kwh: NDArray[np.float64]
    departure_trip_kwh: NDArray[np.float64]
    next_trip_kwh: NDArray[np.float64]


LOOKAHEAD = timedelta(days=8)


def energy_floor_kwh(vehicle: Vehicle, next_trip_kwh: float, plugged: bool) -> float:
    """Energy the battery keeps at least: the usable-window minimum; while plugged in also
    the backup reserve and the next trip's energy on top of the departure floor (DOMAIN.md:
    "a floor of 20 % plus the next route's energy"). Capped at the window maximum."""
    floor = vehicle.min_energy_kwh
    if plugged:
        floor = max(floor, vehicle.reserve_soc * vehicle.battery_kwh)
        if next_trip_kwh > 0:
            floor = max(floor, vehicle.departure_floor_soc * vehicle.battery_kwh + next_trip_kwh)
    return min(floor, vehicle.max_energy_kwh)


def energy_floor_kwh_array(
    vehicle: Vehicle, next_trip_kwh: NDArray[np.float64], plugged: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """:func:`energy_floor_kwh` for every interval at once (the same rule, vectorized)."""
    next_trip = np.asarray(next_trip_kwh, dtype=float)
    plugged_now = np.asarray(plugged, dtype=bool)
    departure = np.where(
        next_trip > 0, vehicle.departure_floor_soc * vehicle.battery_kwh + next_trip, -np.inf
    )
    when_plugged = np.maximum(
        max(vehicle.min_energy_kwh, vehicle.reserve_soc * vehicle.battery_kwh), departure
    )
    floor = np.where(plugged_now, when_plugged, vehicle.min_energy_kwh)
    return np.minimum(floor, vehicle.max_energy_kwh)


@dataclass(frozen=True)
class TripOccurrence:
    """One trip on one day: away from ``depart`` to ``arrive`` using ``energy_kwh``;
    ``planned_kwh`` is what the driver scheduled (the departure need), when it differs."""

    depart: datetime
    arrive: datetime
    energy_kwh: float
    planned_kwh: float | None = None

    @property
    def need_kwh(self) -> float:
        return self.energy_kwh if self.planned_kwh is None else self.planned_kwh


def outage_floor_kwh(vehicle: Vehicle, next_trip_kwh: float) -> float:
    """Energy a vehicle keeps during an outage: its usable minimum plus its next trip (a bus
    keeps its next route)."""
    return min(vehicle.min_energy_kwh + next_trip_kwh, vehicle.max_energy_kwh)


def trip_schedule(trips: tuple[Trip, ...], grid: TimeGrid, tz: ZoneInfo) -> TripSchedule:
    """Lay recurring ``trips`` (program-local times) onto the interval ``grid``."""
    return lay_trips(
        occurrences(trips, grid.start - timedelta(days=2), grid.end + LOOKAHEAD, tz), grid
    )


def occurrences(
    trips: tuple[Trip, ...], first: datetime, last: datetime, tz: ZoneInfo
) -> list[TripOccurrence]:
    """Every occurrence of ``trips`` departing on the local days from ``first`` to ``last``."""
    found = []
    day, last_day = first.astimezone(tz).date(), last.astimezone(tz).date()
    while day <= last_day:
        for trip in trips:
            if trip.runs_on(day):
                depart = datetime.combine(day, trip.depart_local, tzinfo=tz)
                found.append(TripOccurrence(depart, depart + trip.duration, trip.energy_kwh))
        day += timedelta(days=1)
    return found


NO_RETURN_KNOWN = timedelta(hours=1)  # a departure with no trip behind it: away this long


def with_departure(
    found: list[TripOccurrence],
    depart: datetime,
    need_kwh: float | None,
    tz: ZoneInfo,
    now: datetime,
) -> list[TripOccurrence]:
    """``found`` with a departure someone asked for (the owner, or the vehicle itself over
    ISO 15118). Of the trips that leave the same local day and have not left by ``now``, the
    one nearest ``depart`` moves there, keeping its length and energy (a trip under way or
    over is never touched). With none, a trip of no energy leaves then (away
    ``NO_RETURN_KNOWN``), needing what the vehicle's largest usual trip needs.
    ``need_kwh`` is the energy to leave with above the departure floor (``None``: the trip's
    own); the trip's need still counts if it is more. A departure that would need nothing is
    left out: a zero need would hide the next real trip's."""
    day = depart.astimezone(tz).date()
    candidates = [t for t in found if t.depart.astimezone(tz).date() == day and t.depart > now]
    moved = min(candidates, key=lambda t: abs(t.depart - depart), default=None)
    kept = [t for t in found if t is not moved]
    if moved is None:
        usual = max((t.need_kwh for t in found), default=0.0)
        moved = TripOccurrence(depart, depart + NO_RETURN_KNOWN, 0.0, usual)
    need = moved.need_kwh if need_kwh is None else max(need_kwh, moved.need_kwh)
    if need <= 0 and moved.energy_kwh <= 0:
        return found
    shifted = TripOccurrence(depart, depart + (moved.arrive - moved.depart), moved.energy_kwh, need)
    return sorted([*kept, shifted], key=lambda t: t.depart)


def lay_trips(trips: list[TripOccurrence], grid: TimeGrid) -> TripSchedule:
    """Per-interval schedule of explicit trip occurrences (an interval is away if it starts
    while the vehicle is away; a trip too short to hold an interval start takes the interval
    it departs in). Departures after the grid feed ``next_trip_kwh``."""
    away = np.zeros(grid.n_steps, dtype=bool)
    energy = np.zeros(grid.n_steps)
    departures: dict[int, float] = {}  # interval whose end a trip leaves at -> kWh
    for trip in trips:
        first = grid.first_index_from(trip.depart)
        last = grid.first_index_from(trip.arrive)
        if last <= first:  # shorter than a step, between two interval starts
            first, last = grid.index_of(trip.depart), grid.index_of(trip.depart) + 1
        if first >= 1:
            departures[first - 1] = departures.get(first - 1, 0.0) + trip.need_kwh
        window = slice(max(first, 0), min(last, grid.n_steps))
        if window.start >= window.stop:
            continue
        away[window] = True
        energy[window] += trip.energy_kwh / (last - first)
    departure = np.zeros(grid.n_steps)
    inside = [t for t in departures if t < grid.n_steps]
    departure[inside] = [departures[t] for t in inside]
    return TripSchedule(
        away=away,
        trip_energy_kwh=energy,
        departure_trip_kwh=departure,
        next_trip_kwh=_next_departure_kwh(departures, grid.n_steps),
    )


def _next_departure_kwh(departures: dict[int, float], n_steps: int) -> NDArray[np.float64]:
    """For each interval, the energy of the first departure at or after its end."""
    result = np.zeros(n_steps)
    upcoming = 0.0
    beyond = [i for i in departures if i >= n_steps]
    if beyond:
        upcoming = departures[min(beyond)]
    for t in range(n_steps - 1, -1, -1):
        if t in departures:
            upcoming = departures[t]
        result[t] = upcoming
    return result
