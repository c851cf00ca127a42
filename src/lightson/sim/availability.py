"""The twin plans its vehicles the way the live loop does (#16): on the trips learned from the
sessions it has itself recorded, once a vehicle has enough of them, else on the program
file's schedule; a departure the owner stated moves that day's trip either way.

- **Sessions** are the runs of steps a vehicle spent plugged in (at its charger, whatever the
  charger's state) that ended before the plan: plugged in at the first step's start, left at
  the end of the last, and the energy the net of what its charger metered over it (charged
  less discharged, ≥ 0: the registers' rise, as ``services.availability`` reads them). A
  session still open is not counted, nor one that started more than ``lookback`` before.
- **Learning** is ``forecast.availability.learn_availability`` with the live loop's
  constants, once a local day (the live loop's ``LearnedAvailability.refresh``): the trips of
  that day's plans are laid once, from its midnight over a day and the plan horizon.
- **Stated departures** (``StatedDeparture``): the owner's next departure known at the plan
  (stated at or before it, not yet left) moves the nearest trip of its day
  (``physics.trips.with_departure``), as the live loop does with the ``departures`` table.

Pure: reads the engine's recorded arrays, never the truth ahead of the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import Program, Site, Trip
from lightson.domain.time import TimeGrid
from lightson.forecast.availability import (
    DEFAULT_MIN_SESSIONS,
    LOOKBACK,
    NEED_QUANTILE,
    Availability,
    RecordedSession,
    learn_availability,
    learned_trips,
)
from lightson.physics.trips import LOOKAHEAD, TripSchedule, lay_trips, occurrences, with_departure

AVAILABILITY_CHOICES = ("learned", "schedule")


@dataclass(frozen=True)
class StatedDeparture:
    """The owner of ``vehicle_id`` said at ``stated_at`` that it leaves at ``depart``, with
    ``need_kwh`` above the departure floor (``None``: the trip's own need)."""

    vehicle_id: str
    stated_at: datetime
    depart: datetime
    need_kwh: float | None = None


def recorded_sessions(
    plugged: NDArray[np.bool_],
    power_kw: NDArray[np.float64],
    grid: TimeGrid,
    k: int,
    since: datetime,
) -> list[RecordedSession]:
    """The sessions a vehicle finished before step ``k`` (``plugged``, ``power_kw``: its
    recorded steps) that started at or after ``since``."""
    seen = np.asarray(plugged[:k], dtype=bool)
    if not seen.any():
        return []
    edges = np.diff(np.concatenate([[False], seen, [False]]).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    found = []
    for first, last in zip(starts, ends, strict=True):
        if last >= k:  # still plugged in at the plan: not finished
            continue
        plugged_in = grid.start + int(first) * grid.step
        if plugged_in < since:
            continue
        energy_kwh = float(power_kw[first:last].sum()) * grid.step_h
        found.append(
            RecordedSession(plugged_in, grid.start + int(last) * grid.step, max(energy_kwh, 0.0))
        )
    return found


class TwinAvailability:
    """Each vehicle's trips as the twin's controller is told them, from the engine's recorded
    ``plugged`` and ``power_kw`` arrays (vehicle × step, filled up to the current step)."""

    def __init__(
        self,
        program: Program,
        site: Site,
        grid: TimeGrid,
        horizon_steps: int,
        plugged: NDArray[np.bool_],
        power_kw: NDArray[np.float64],
        nominal: dict[str, TripSchedule],
        *,
        learn: bool = True,
        stated: Sequence[StatedDeparture] = (),
        min_sessions: int = DEFAULT_MIN_SESSIONS,
    ) -> None:
        self._program, self._site, self._grid = program, site, grid
        self._horizon = horizon_steps
        self._plugged, self._power, self._nominal = plugged, power_kw, nominal
        self._learn, self._min_sessions = learn, min_sessions
        self._stated = sorted(stated, key=lambda d: d.depart)
        self._day: date | None = None
        self._usual: dict[str, tuple[Trip, ...]] = {}
        self.learned: dict[str, Availability] = {}

    def schedules(self, k: int) -> dict[str, TripSchedule]:
        """Each vehicle's schedule over the plan at step ``k`` (``horizon_steps`` long): the
        nominal one (the program file's, laid once) where it learned nothing and was told
        no departure."""
        now = self._grid.start + k * self._grid.step
        tz = self._program.timezone
        today = now.astimezone(tz).date()
        if self._day != today:
            self._refresh(k, now)
            self._day = today
        plan = TimeGrid(now, self._horizon, self._grid.step)
        result = {}
        for vehicle in self._site.vehicles:
            asked = self._next_stated(vehicle.vehicle_id, now)
            if asked is None and vehicle.vehicle_id not in self._usual:
                result[vehicle.vehicle_id] = window_of(
                    self._nominal[vehicle.vehicle_id], slice(k, k + self._horizon)
                )
                continue
            trips = self._usual.get(vehicle.vehicle_id, vehicle.trips)
            found = occurrences(trips, plan.start - timedelta(days=2), plan.end + LOOKAHEAD, tz)
            if asked is not None:
                found = with_departure(found, asked.depart, asked.need_kwh, tz, now)
            result[vehicle.vehicle_id] = lay_trips(found, plan)
        return result

    def _refresh(self, k: int, now: datetime) -> None:
        if not self._learn:
            return
        self.learned = {}
        for i, vehicle in enumerate(self._site.vehicles):
            sessions = recorded_sessions(
                self._plugged[i], self._power[i], self._grid, k, now - LOOKBACK
            )
            found = learn_availability(
                sessions,
                self._program.timezone,
                min_sessions=self._min_sessions,
                observed_until=now,
            )
            if found is not None:
                self.learned[vehicle.vehicle_id] = found
        self._usual = {v: learned_trips(a, NEED_QUANTILE) for v, a in self.learned.items()}

    def departures(self, now: datetime) -> frozenset[tuple[str, datetime, float | None]]:
        """The stated departures in force at ``now`` (``ControlContext.departures``)."""
        found = (self._next_stated(v.vehicle_id, now) for v in self._site.vehicles)
        return frozenset((d.vehicle_id, d.depart, d.need_kwh) for d in found if d is not None)

    def _next_stated(self, vehicle_id: str, now: datetime) -> StatedDeparture | None:
        return next(
            (
                d
                for d in self._stated
                if d.vehicle_id == vehicle_id and d.stated_at <= now < d.depart
            ),
            None,
        )


def window_of(schedule: TripSchedule, window: slice) -> TripSchedule:
    """``schedule`` over the steps of ``window``."""
    return TripSchedule(
        away=schedule.away[window],
        trip_energy_kwh=schedule.trip_energy_kwh[window],
        departure_trip_kwh=schedule.departure_trip_kwh[window],
        next_trip_kwh=schedule.next_trip_kwh[window],
    )
