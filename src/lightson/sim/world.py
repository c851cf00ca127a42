"""The truth a simulated site lives through, and the nominal forecast it is planned with.

- Building load: the typical-year profile times a mean-one AR(1) lognormal factor
  (ρ = ``LOAD_NOISE_RHO`` per step, σ = ``LOAD_NOISE_SIGMA``): the forecast is the profile.
- PV: from the weather with pvlib; the forecast equals the truth (day-ahead irradiance
  forecasts are good; a known simplification).
- Trips: each occurrence of the program file's trips departs N(0, 15 min) and returns
  N(0, 30 min) from schedule and uses the trip energy × a mean-one lognormal factor; the
  controller forecasts with the schedule itself.
- Forecasts (#16, ``WorldOptions.forecast``): ``profile`` as above; with another forecaster of
  ``lightson.forecast.registry`` the building load is forecast afresh at the start and at each
  local midnight, from ``HISTORY_DAYS`` of truth before the simulated period (drawn from a
  stream of its own, so the simulated truth is the same whatever the forecaster) and the
  simulated truth up to that midnight: trained only on data before each plan. PV stays the
  profile (here the truth).
- A building of its own (``WorldOptions.truth_shift_h``): the truth is the profile read
  ``truth_shift_h`` hours later (a building whose day runs that much earlier), so the
  profile is not the truth.
- Events: announced the day before at ``ANNOUNCE_LOCAL`` when the program file gives no
  announcement time (ConnectedSolutions' day-ahead notice).
- Vehicle availability (``WorldOptions.availability``, ``lightson.sim.availability``): by
  default, as the live loop, each vehicle is planned on the trips learned from the sessions
  the twin recorded before the plan once it has enough, else on the schedule; the owners'
  stated departures move that day's trip.
- Failures (``lightson.sim.failures``): the program's or the site's failure model; trips
  moved by late plug-ins, early departures and summer routes are in the true schedules, the
  controller plans with the program file's or the learned ones.

Everything random comes from ``numpy.random.default_rng((seed, crc32(site_id)))``.
"""

from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import Program, Site, Vehicle
from lightson.domain.demand_response import DREvent
from lightson.domain.errors import ConfigError, UnknownNameError
from lightson.domain.time import TimeGrid
from lightson.forecast.history import LEVELS, PEAK_LEVEL, History
from lightson.forecast.month_peak import MONTH_PEAK_CHOICES
from lightson.forecast.profiles import profile_forecast
from lightson.forecast.registry import forecast, get
from lightson.physics.trips import LOOKAHEAD, TripOccurrence, TripSchedule, lay_trips, occurrences
from lightson.sim.availability import AVAILABILITY_CHOICES, StatedDeparture
from lightson.sim.failures import SiteFailureDraw, draw_failures

LOAD_NOISE_RHO = 0.95
LOAD_NOISE_SIGMA = 0.15
DEPART_JITTER = timedelta(minutes=15)
RETURN_JITTER = timedelta(minutes=30)
TRIP_ENERGY_SIGMA = 0.2
ANNOUNCE_LOCAL = time(16, 0)
HISTORY_DAYS = 28


@dataclass(frozen=True)
class WorldOptions:
    """How the world differs from the default: the load forecaster the controller is given
    (a name in ``lightson.forecast.registry``), the truth's shift from the profile, the load
    quantile the controller's demand-peak constraint plans for (``peak_quantile``, one of
    ``forecast.history.LEVELS``; the median plans the peak on the median), and how the
    controller knows the vehicles' trips."""

    forecast: str = "profile"
    truth_shift_h: float = 0.0
    peak_quantile: float = PEAK_LEVEL
    # "learned": plan each vehicle on the trips learned from the sessions the twin recorded
    # before each plan once it has enough (the live loop's default); "schedule": the program
    # file's (``lightson.sim.availability``).
    availability: str = "learned"
    # Departures the owners stated (``sim.availability.StatedDeparture``): they move that
    # day's trip, learned or scheduled, as in the live loop.
    stated_departures: tuple[StatedDeparture, ...] = ()
    # How the controller values the month's peak (``forecast.month_peak.MONTH_PEAK_CHOICES``):
    # "expected" tells it the peak the month reaches anyway, "so-far" only the peak reached.
    month_peak: str = "expected"

    def __post_init__(self) -> None:
        if self.month_peak not in MONTH_PEAK_CHOICES:
            raise UnknownNameError("month_peak", self.month_peak, MONTH_PEAK_CHOICES)
        if self.peak_quantile not in LEVELS:
            choices = ", ".join(f"{level:g}" for level in LEVELS)
            raise ConfigError.at("peak_quantile", f"must be one of {choices}")


DEFAULT_WORLD = WorldOptions()


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
    # Forecasts issued: (step, median load, the load at the peak quantile), in step order.
    issued: tuple[tuple[int, NDArray[np.float64], NDArray[np.float64]], ...] = field(default=())
    options: WorldOptions = DEFAULT_WORLD

    def load_forecast_kw(self, k: int, n: int) -> NDArray[np.float64]:
        """The load forecast the controller has at step ``k`` for steps ``k … k+n−1``: the
        one issued last at or before ``k`` (the profile when none is issued)."""
        if not self.issued:
            return self.forecast_load_kw[k : k + n]
        issue, values, _ = self._last_issued(k)
        return values[k - issue : k - issue + n]

    def load_peak_forecast_kw(self, k: int, n: int) -> NDArray[np.float64] | None:
        """The peak-quantile load of the same forecast (``None`` for the profile, which has
        no spread: the peak is planned on the load itself)."""
        if not self.issued:
            return None
        issue, _, upper = self._last_issued(k)
        return upper[k - issue : k - issue + n]

    def _last_issued(self, k: int) -> tuple[int, NDArray[np.float64], NDArray[np.float64]]:
        at = bisect.bisect_right([i for i, _, _ in self.issued], k) - 1
        return self.issued[max(at, 0)]


def build_world(
    program: Program,
    site: Site,
    start: datetime,
    n_sim_steps: int,
    horizon_steps: int,
    seed: int,
    options: WorldOptions = DEFAULT_WORLD,
) -> SiteWorld:
    get(options.forecast)  # an unknown name fails before any work
    if options.availability not in AVAILABILITY_CHOICES:
        raise UnknownNameError("availability", options.availability, AVAILABILITY_CHOICES)
    rng = np.random.default_rng((seed, zlib.crc32(site.site_id.encode())))
    grid = TimeGrid(start, n_sim_steps + horizon_steps, program.step)
    nominal = profile_forecast(program, site, grid)
    truth_kw = _truth_profile_kw(program, site, grid, options.truth_shift_h)
    first, last = grid.start - timedelta(days=2), grid.end + LOOKAHEAD
    schedules, nominal_schedules, true_trips = {}, {}, {}
    for vehicle in site.vehicles:
        planned = occurrences(vehicle.trips, first, last, program.timezone)
        nominal_schedules[vehicle.vehicle_id] = lay_trips(planned, grid)
        true_trips[vehicle.vehicle_id] = _jittered(planned, vehicle, rng)
        schedules[vehicle.vehicle_id] = lay_trips(true_trips[vehicle.vehicle_id], grid)
    load_kw = truth_kw * _load_factor(grid.n_steps, rng)
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
    issued: tuple[tuple[int, NDArray[np.float64], NDArray[np.float64]], ...] = ()
    if options.forecast != "profile":
        issued = _issued(program, site, grid, n_sim_steps, horizon_steps, load_kw, seed, options)
    return SiteWorld(
        site=site,
        grid=grid,
        n_sim_steps=n_sim_steps,
        load_kw=load_kw,
        pv_kw=nominal.pv_kw,
        forecast_load_kw=nominal.load_kw,
        forecast_pv_kw=nominal.pv_kw,
        schedules=schedules,
        nominal_schedules=nominal_schedules,
        events=events,
        failures=failures,
        issued=issued,
        options=options,
    )


def _truth_profile_kw(
    program: Program, site: Site, grid: TimeGrid, shift_h: float
) -> NDArray[np.float64]:
    if shift_h == 0:
        return profile_forecast(program, site, grid).load_kw
    shifted = TimeGrid(grid.start + timedelta(hours=shift_h), grid.n_steps, grid.step)
    return profile_forecast(program, site, shifted).load_kw


def _issued(
    program: Program,
    site: Site,
    grid: TimeGrid,
    n_sim_steps: int,
    horizon_steps: int,
    load_kw: NDArray[np.float64],
    seed: int,
    options: WorldOptions,
) -> tuple[tuple[int, NDArray[np.float64], NDArray[np.float64]], ...]:
    """Load forecasts (median and ``options.peak_quantile``) issued at step 0 and each local
    midnight of the simulated period, each from the history before it (``HISTORY_DAYS``
    before the period, then the truth)."""
    per_day = round(timedelta(days=1) / grid.step)
    before = TimeGrid(
        grid.start - HISTORY_DAYS * timedelta(days=1), HISTORY_DAYS * per_day, grid.step
    )
    history_rng = np.random.default_rng((seed, zlib.crc32(site.site_id.encode()), 1))
    past_kw = _truth_profile_kw(program, site, before, options.truth_shift_h) * _load_factor(
        before.n_steps, history_rng
    )
    tz = program.timezone
    issues = [0] + [
        k
        for k, s in enumerate(grid.starts_utc()[:n_sim_steps])
        if k > 0 and s.astimezone(tz).time() == time(0, 0)
    ]
    made = []
    for i, issue in enumerate(issues):
        until = issues[i + 1] if i + 1 < len(issues) else n_sim_steps
        n = min(until - issue + horizon_steps, grid.n_steps - issue)
        known = np.concatenate([past_kw, load_kw[:issue]])
        history = History(
            TimeGrid(before.start, len(known), grid.step), known, np.full(len(known), np.nan)
        )
        target = TimeGrid(grid.start + issue * grid.step, n, grid.step)
        quantiles = forecast(options.forecast, program, site, history, target).load_kw
        made.append(
            (
                issue,
                np.asarray(quantiles[0.5], dtype=np.float64),
                np.asarray(quantiles[options.peak_quantile], dtype=np.float64),
            )
        )
    return tuple(made)


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
