"""The profile forecast: the site's typical-year load and PV profiles read at the plan's
intervals. In simulation with ``perfect-foresight`` this is also the truth."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from lightson.domain.assets import Program, Site
from lightson.domain.state import SiteForecast
from lightson.domain.time import TimeGrid
from lightson.physics.profiles import building_load_kw, profile_at
from lightson.physics.pv import pv_ac_power_kw_hourly


def profile_forecast(program: Program, site: Site, grid: TimeGrid) -> SiteForecast:
    """Load and PV of ``site`` over ``grid`` from its building profile and the program's
    weather (no PV when the site has none or the program has no weather)."""
    starts = grid.starts_utc()
    load_kw = building_load_kw(site.building, starts)
    if site.pv is None or program.weather is None:
        pv_kw = np.zeros(grid.n_steps)
    else:
        pv_kw = profile_at(pv_ac_power_kw_hourly(program.weather, site.pv), starts)
    return SiteForecast(load_kw=load_kw, pv_kw=pv_kw)


def profile_peak_so_far_kw(program: Program, site: Site, start: datetime) -> float:
    """The billing month's import peak before ``start`` as the profiles put it (building
    load less PV, no vehicles): a stand-in for the metered peak when none is measured."""
    local = start.astimezone(program.timezone)
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    steps = int((start.astimezone(UTC) - month_start.astimezone(UTC)) / program.step)
    if steps <= 0:
        return 0.0
    forecast = profile_forecast(program, site, TimeGrid(month_start, steps, program.step))
    return float(np.max(np.clip(forecast.load_kw - forecast.pv_kw, 0.0, None)))
