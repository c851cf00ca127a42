"""What a site plans on, and the plans kept (``services.live``): the control context of a
tick (the demand-response events known by then, the load and PV forecast with the interval
under way as observed, each vehicle's trips and the departures asked for), the cautious view
of load and PV the no-export rule is checked against where no site meter reports, and the
plans stored as they are made, the old ones deleted after ``keep_plans``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from lightson.control.controllers import ControlContext
from lightson.domain.assets import Program, Site
from lightson.domain.demand_response import DREvent
from lightson.domain.plan import Plan
from lightson.domain.state import SiteForecast, SiteObservation
from lightson.domain.time import TimeGrid
from lightson.forecast.profiles import profile_forecast
from lightson.physics.trips import TripSchedule
from lightson.services.forecasts import SiteForecasts
from lightson.services.live_departures import Departures
from lightson.services.plans import prune_plans, rounded
from lightson.store import Store
from lightson.store import schema as db

LOGGER = logging.getLogger("lightson.live")
PRUNE_EVERY = timedelta(hours=1)  # with keep_plans: old plans are deleted at most this often


def control_context(
    program: Program,
    site: Site,
    grid: TimeGrid,
    observation: SiteObservation,
    events: Sequence[DREvent],
    forecasts: SiteForecasts | None,
    schedules: dict[str, TripSchedule],
    departures: Departures,
    peak_expected_kw: float = 0.0,
) -> ControlContext:
    """The context ``site`` plans on over ``grid``: the ``events`` known at the observation,
    the forecast (``forecasts``' best for the site, else its profile) with the interval
    under way as observed, each vehicle's trip ``schedules`` and asked ``departures``, and
    the peak the billing month is expected to reach anyway (``forecast.month_peak``; 0:
    the peak so far only)."""
    known = tuple(e for e in events if e.known_at(observation.now))
    if forecasts is None:
        forecast = profile_forecast(program, site, grid)
    else:
        forecast = forecasts.forecast(site, grid)
    # The interval under way is known: what the meter (or the profile plus a silent
    # charger's default) says now, not what the profile guessed.
    load_kw, pv_kw = forecast.load_kw.copy(), forecast.pv_kw.copy()
    load_kw[0], pv_kw[0] = observation.load_kw, observation.pv_kw
    upper_kw = None if forecast.load_peak_kw is None else forecast.load_peak_kw.copy()
    if upper_kw is not None:
        upper_kw[0] = observation.load_kw  # known: no margin on the interval under way
    return ControlContext(
        replace(program, events=known),
        site,
        observation,
        SiteForecast(load_kw, pv_kw, upper_kw),
        schedules,
        frozenset((v, at, need) for v, (at, need) in departures.items()),
        peak_expected_kw,
    )


def no_export_view(site: Site, load_kw: float, pv_kw: float) -> tuple[float, float]:
    """The building load and PV the no-export rule is checked against at a site without a
    site meter: only the critical share of the forecast load (the part that is on whatever
    the day is like), and PV at its rated output whenever the forecast has any sun. A
    forecast can miss a cool day or a clear sky; these cannot be missed by much."""
    critical_kw = site.building.tiers.critical_share * load_kw
    if site.pv is None or pv_kw <= 0:
        return critical_kw, pv_kw
    rated_kw = site.pv.inverter_kw_ac or site.pv.kw_dc
    return critical_kw, max(pv_kw, rated_kw)


class PlanKeeper:
    """Stores each plan a site's controller makes; with ``keep_plans``, deletes the plans
    older than that, at most once every ``PRUNE_EVERY`` (``None``: every plan is kept)."""

    def __init__(self, store: Store, keep_plans: timedelta | None) -> None:
        self.store = store
        self.keep_plans = keep_plans
        self._pruned_at: datetime | None = None

    def keep(self, site_id: str, controller: str, plan: Plan, now: datetime) -> None:
        """Store a plan just made (before its setpoints go out), rounded to what matters."""
        row = {
            "site_id": site_id,
            "made_at": now,
            "start": plan.start,
            "step_s": int(plan.step.total_seconds()),
            "controller": controller,
            "solve_time_s": float(plan.solve_time_s),
            **rounded(plan),
        }
        self.store.write([(db.plans, row)]).result(30)
        if self.keep_plans is not None and (
            self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY
        ):
            self._pruned_at = now  # tried once an hour, whatever comes of it
            try:
                gone = prune_plans(self.store, now - self.keep_plans)
            except Exception as error:  # housekeeping must not stop the site's control
                LOGGER.warning("old plans not deleted: %s", error)
                return
            if gone:
                LOGGER.info("%d plans older than %s deleted", gone, self.keep_plans)
