"""Drawing a site's failures from its failure model (``lightson.domain.failures``).

- Charger faults and communication losses: per charger, a Poisson number of spells over the
  simulated grid (and the month before it, so a spell may already be under way at the start),
  each starting uniformly and lasting a lognormal time; a known ``ChargerDowntime`` is added
  as given. A fault outranks a communication loss where both cover a step.
- Opt-outs: each event the site is called to, with the probability for the site's kind.
- Late plug-in and early departure: each trip, with the model's probability, arrives (is
  plugged in) later or departs earlier by a lognormal number of hours.
- Summer route: at school sites, each bus on each route day, with the model's probability,
  leaves for the route.

All draws come from their own stream, ``default_rng((seed, crc32(site_id), 1))``, so a world
without failures is exactly the world of before, and the same seed gives the same failures.
The result per vehicle and step is a cause code (``CAUSE_CODES``; 0: none): for a vehicle away,
the reason it is away when that reason is a failure (a trip on schedule is none), for a vehicle
at its charger, the charger's fault or communication loss.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import Program, Site, SiteKind
from lightson.domain.demand_response import DREvent
from lightson.domain.failures import (
    HOURS_PER_YEAR,
    Delay,
    Downtime,
    FailureCause,
    FailureModel,
    SummerRoute,
)
from lightson.domain.time import TimeGrid
from lightson.physics.trips import TripOccurrence, TripSchedule, lay_trips

FAILURE_STREAM = 1
CAUSE_CODES = {cause: i + 1 for i, cause in enumerate(FailureCause)}
CAUSES = {code: cause for cause, code in CAUSE_CODES.items()}
LEAD_IN = timedelta(days=30)
ROUTE_NOTICE_LOCAL = time(16, 0)  # spells that start this long before the grid may still run


@dataclass(frozen=True, eq=False)
class SiteFailureDraw:
    """One site's failures over a grid: ``cause[v, k]`` per vehicle and step, the true trip
    schedules with the failures in them, and the events the site opted out of."""

    cause: NDArray[np.int8]
    schedules: dict[str, TripSchedule]
    opted_out: frozenset[str]
    # Each vehicle's next-trip energy as the fleet knows it (the safety floor): a summer
    # route counts from its notice on, not weeks before it.
    next_trip_kwh: dict[str, NDArray[np.float64]]

    def code(self, cause: FailureCause) -> int:
        return CAUSE_CODES[cause]


def failure_rng(seed: int, site_id: str) -> np.random.Generator:
    return np.random.default_rng((seed, zlib.crc32(site_id.encode()), FAILURE_STREAM))


def draw_failures(
    program: Program,
    site: Site,
    grid: TimeGrid,
    trips: dict[str, list[TripOccurrence]],
    events: tuple[DREvent, ...],
    seed: int,
) -> SiteFailureDraw:
    """The site's failures over ``grid``; ``trips`` are each vehicle's true trips without
    failures (the jittered schedule)."""
    model = program.failures_at(site)
    rng = failure_rng(seed, site.site_id)
    charger_code = {
        c.evse_id: _charger_codes(program, site.site_id, c.evse_id, model, grid, rng)
        for c in site.chargers
    }
    p_out = model.opt_out(site.kind.value)
    opted_out = frozenset(e.event_id for e in events if p_out > 0 and rng.random() < p_out)
    cause = np.zeros((len(site.vehicles), grid.n_steps), dtype=np.int8)
    schedules, next_trip = {}, {}
    for i, vehicle in enumerate(site.vehicles):
        base = trips[vehicle.vehicle_id]
        layers = [base]
        layers.append(_shifted(layers[-1], model.early_departure, rng, early=True))
        layers.append(_shifted(layers[-1], model.late_plug_in, rng, early=False))
        route = model.summer_route if site.kind is SiteKind.SCHOOL else None
        routes = _route_trips(route, program, grid, rng)
        layers.append(layers[-1] + routes)
        laid = [lay_trips(layer, grid) for layer in layers]
        for layer, reason in enumerate(
            (FailureCause.EARLY_DEPARTURE, FailureCause.LATE_PLUG_IN, FailureCause.ROUTE)
        ):
            added = laid[layer + 1].away & ~laid[layer].away
            cause[i, added] = CAUSE_CODES[reason]
        at_charger = ~laid[-1].away
        cause[i, at_charger] = charger_code[vehicle.evse_id][at_charger]
        schedules[vehicle.vehicle_id] = laid[-1]
        next_trip[vehicle.vehicle_id] = _known_next_trip_kwh(
            laid[-1], laid[-2], routes, grid, program
        )
    return SiteFailureDraw(cause, schedules, opted_out, next_trip)


def _known_next_trip_kwh(
    truth: TripSchedule,
    without_routes: TripSchedule,
    routes: list[TripOccurrence],
    grid: TimeGrid,
    program: Program,
) -> NDArray[np.float64]:
    """The next trip's energy as known at each step: a summer route is known from
    ``ROUTE_NOTICE_LOCAL`` the day before it (a school's summer schedule is set, but the
    fleet is told which bus runs it the day before: an assumption); before that the next
    planned trip's energy holds."""
    result = without_routes.next_trip_kwh.copy()
    for trip in routes:
        day_before = trip.depart.astimezone(program.timezone).date() - timedelta(days=1)
        notice = datetime.combine(day_before, ROUTE_NOTICE_LOCAL, tzinfo=program.timezone)
        first = max(grid.first_index_from(notice), 0)
        last = min(grid.first_index_from(trip.depart), grid.n_steps)
        result[first:last] = truth.next_trip_kwh[first:last]
    return result


def _charger_codes(
    program: Program,
    site_id: str,
    evse_id: str,
    model: FailureModel,
    grid: TimeGrid,
    rng: np.random.Generator,
) -> NDArray[np.int8]:
    codes = np.zeros(grid.n_steps, dtype=np.int8)
    spells = {
        FailureCause.COMMS: _spells(model.communication_losses, grid, rng),
        FailureCause.FAULT: _spells(model.charger_faults, grid, rng),
    }
    for known in program.charger_downtime:
        if known.site_id == site_id and known.evse_id == evse_id:
            spells[known.cause].append((known.start, known.end))
    for cause in (FailureCause.COMMS, FailureCause.FAULT):  # a fault outranks a link loss
        for start, end in spells[cause]:
            first, last = max(grid.first_index_from(start), 0), grid.first_index_from(end)
            if last > first:
                codes[first : min(last, grid.n_steps)] = CAUSE_CODES[cause]
    return codes


def _spells(
    downtime: Downtime | None, grid: TimeGrid, rng: np.random.Generator
) -> list[tuple[datetime, datetime]]:
    """Random spells out of service overlapping ``grid`` (drawn over the grid and its lead-in)."""
    if downtime is None or downtime.per_charger_year <= 0:
        return []
    span_h = (grid.end - grid.start + LEAD_IN).total_seconds() / 3600
    count = int(rng.poisson(downtime.per_charger_year * span_h / HOURS_PER_YEAR))
    starts_h = rng.uniform(0.0, span_h, count)
    hours = downtime.median_hours * np.exp(rng.normal(0.0, downtime.sigma, count))
    origin = grid.start - LEAD_IN
    return [
        (origin + timedelta(hours=float(s)), origin + timedelta(hours=float(s + h)))
        for s, h in zip(starts_h, hours, strict=True)
    ]


def _shifted(
    trips: list[TripOccurrence], delay: Delay | None, rng: np.random.Generator, early: bool
) -> list[TripOccurrence]:
    """Each trip, with the delay's probability, leaves earlier (``early``) or is plugged in
    later after it returns, by a lognormal number of hours (at most ``max_hours``; an early
    departure never before the previous trip's return)."""
    if delay is None or delay.probability <= 0:
        return trips
    hit = rng.random(len(trips)) < delay.probability
    hours = np.minimum(
        delay.median_hours * np.exp(rng.normal(0.0, delay.sigma, len(trips))), delay.max_hours
    )
    result, previous_arrive = [], None
    for trip, shifted, h in zip(trips, hit, hours, strict=True):
        if shifted:
            by = timedelta(minutes=round(float(h) * 60))
            if early:
                depart = trip.depart - by
                if previous_arrive is not None:
                    depart = max(depart, min(previous_arrive, trip.depart))
                trip = replace(trip, depart=depart)
            else:
                trip = replace(trip, arrive=trip.arrive + by)
        result.append(trip)
        previous_arrive = trip.arrive
    return result


def _route_trips(
    route: SummerRoute | None, program: Program, grid: TimeGrid, rng: np.random.Generator
) -> list[TripOccurrence]:
    if route is None or route.probability <= 0:
        return []
    tz = program.timezone
    day, last = grid.start.astimezone(tz).date(), grid.end.astimezone(tz).date()
    found = []
    while day <= last:
        route_day = day.month in route.months and day.weekday() in route.weekdays
        if route_day and rng.random() < route.probability:
            depart = datetime.combine(day, route.depart_local, tzinfo=tz)
            arrive = datetime.combine(day, route.return_local, tzinfo=tz)
            if arrive <= depart:
                arrive += timedelta(days=1)
            found.append(TripOccurrence(depart, arrive, route.energy_kwh))
        day += timedelta(days=1)
    return found
