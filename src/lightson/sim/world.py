"""The truth a simulated site lives through, and the nominal forecast it is planned with.

- Building load: the typical-year profile times a mean-one AR(1) lognormal factor
  (ρ = ``LOAD_NOISE_RHO`` per step, σ = ``LOAD_NOISE_SIGMA``): the forecast is the profile.
- PV: from the weather with pvlib; the forecast equals the truth (day-ahead irradiance
  forecasts are good; a known simplification).
- Trips: each occurrence of the program file's trips departs N(0, 15 min) and returns
  N(0, 30 min) from schedule and uses the trip energy × a mean-one lognormal factor; the
  controller forecasts with the schedule itself.
- Events: announced the day before at ``ANNOUNCE_LOCAL`` when the program file gives no
  announcement time (ConnectedSolutions' day-ahead notice).
- Failures (``lightson.sim.failures``): the program's or the site's failure model; trips
  moved by late plug-ins, early departures and summer routes are in the true schedules, the
  controller still plans with the program file's.

Everything random comes from ``numpy.random.default_rng((seed, crc32(site_id)))``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import Program, Site, Vehicle
from lightson.domain.demand_response import DREvent
from lightson.domain.time import TimeGrid
from lightson.forecast.profiles import profile_forecast
from lightson.physics.trips import LOOKAHEAD, TripOccurrence, TripSchedule, lay_trips, occurrences
from lightson.sim.failures import SiteFailureDraw, draw_failures

LOAD_NOISE_RHO = 0.95
LOAD_NOISE_SIGMA = 0.15
DEPART_JITTER = timedelta(minutes=15)
RETURN_JITTER = timedelta(minutes=30)
TRIP_ENERGY_SIGMA = 0.2
ANNOUNCE_LOCAL = time(16, 0)


@dataclass(frozen=True, eq=False)
class SiteWorld:
    """Truth and nominal forecast over ``grid`` (the simulated period plus one horizon)."""

    site: Site
    grid: TimeGrid
    n_sim_steps: int
    load_kw: NDArray[np.float64]
    pv_kw: NDArray[np.float64]
    forecast_load_kw: NDArray[np.float64]
    forecast_pv_kw: NDArray[np.float64]
    schedules: dict[str, TripSchedule]
    nominal_schedules: dict[str, TripSchedule]
    events: tuple[DREvent, ...]
    # The site's failures (lightson.sim.failures): cause codes [vehicle, step], opt-outs.
    failures: SiteFailureDraw | None = None


def build_world(
    program: Program, site: Site, start: datetime, n_sim_steps: int, horizon_steps: int, seed: int
) -> SiteWorld:
    rng = np.random.default_rng((seed, zlib.crc32(site.site_id.encode())))
    grid = TimeGrid(start, n_sim_steps + horizon_steps, program.step)
    nominal = profile_forecast(program, site, grid)
    first, last = grid.start - timedelta(days=2), grid.end + LOOKAHEAD
    schedules, nominal_schedules, true_trips = {}, {}, {}
    for vehicle in site.vehicles:
        planned = occurrences(vehicle.trips, first, last, program.timezone)
        nominal_schedules[vehicle.vehicle_id] = lay_trips(planned, grid)
        true_trips[vehicle.vehicle_id] = _jittered(planned, vehicle, rng)
        schedules[vehicle.vehicle_id] = lay_trips(true_trips[vehicle.vehicle_id], grid)
    events = tuple(
        _announced(e, program) for e in program.events if e.program_id in site.enrollments
    )
    failures = None
    if program.failures_at(site).any or any(
        d.site_id == site.site_id for d in program.charger_downtime
    ):
        # Its own random stream: the draws above are the same with failures on or off.
        failures = draw_failures(program, site, grid, true_trips, events, seed)
        schedules = failures.schedules
    return SiteWorld(
        site=site,
        grid=grid,
        n_sim_steps=n_sim_steps,
        load_kw=nominal.load_kw * _load_factor(grid.n_steps, rng),
        pv_kw=nominal.pv_kw,
        forecast_load_kw=nominal.load_kw,
        forecast_pv_kw=nominal.pv_kw,
        schedules=schedules,
        nominal_schedules=nominal_schedules,
        events=events,
        failures=failures,
    )


def _load_factor(n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """Mean-one lognormal AR(1) multiplier."""
    shocks = rng.normal(0.0, LOAD_NOISE_SIGMA * np.sqrt(1 - LOAD_NOISE_RHO**2), n)
    x = np.empty(n)
    previous = rng.normal(0.0, LOAD_NOISE_SIGMA)
    for k in range(n):
        previous = LOAD_NOISE_RHO * previous + shocks[k]
        x[k] = previous
    return np.exp(x - LOAD_NOISE_SIGMA**2 / 2)


def _jittered(
    planned: list[TripOccurrence], vehicle: Vehicle, rng: np.random.Generator
) -> list[TripOccurrence]:
    result = []
    for trip in planned:
        depart = trip.depart + _minutes(rng, DEPART_JITTER)
        arrive = max(trip.arrive + _minutes(rng, RETURN_JITTER), depart + timedelta(minutes=15))
        factor = rng.lognormal(-(TRIP_ENERGY_SIGMA**2) / 2, TRIP_ENERGY_SIGMA)
        result.append(
            TripOccurrence(depart, arrive, trip.energy_kwh * float(factor), trip.need_kwh)
        )
    return result


def _minutes(rng: np.random.Generator, sigma: timedelta) -> timedelta:
    minutes = float(
        np.clip(
            rng.normal(0.0, sigma.total_seconds() / 60),
            -3 * sigma.total_seconds() / 60,
            3 * sigma.total_seconds() / 60,
        )
    )
    return timedelta(minutes=round(minutes))


def _announced(event: DREvent, program: Program) -> DREvent:
    if event.announced_at is not None:
        return event
    day_before = event.start.astimezone(program.timezone).date() - timedelta(days=1)
    return replace(
        event, announced_at=datetime.combine(day_before, ANNOUNCE_LOCAL, tzinfo=program.timezone)
    )
