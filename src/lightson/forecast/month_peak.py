"""The import peak a billing month is expected to reach anyway, from forecasts (#16).

The demand charge is paid once a month, on the month's highest import. A 36-hour plan that
counts every kW above the month-to-date peak as a new cost spends the vehicles, early in a
month, holding the import under peaks the rest of the month will set anyway (a weekend's
30 kW at a school whose weekdays reach 200 kW), and then has less for the month's first
demand-response event. The month's peak is valued over the month instead: a peak the month
reaches anyway, whatever the vehicles do, is a floor below which import costs no demand
charge (``SiteInputs.peak_expected_kw``).

That floor must be one the vehicles cannot beat, or the plan would stop shaving a peak it
could have shaved: for each remaining day of the month it is the lowest level the site's
V2X fleet could hold that day's forecast net load to, using all of its energy above the
backup reserve and recharging it the same day below that level (:func:`shaved_peak_kw`).
The month's floor is the highest of those days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import Program, Site
from lightson.domain.time import TimeGrid
from lightson.forecast.profiles import profile_forecast

BISECTION_STEPS = 50


def shaved_peak_kw(
    net_load_kw: NDArray[np.float64],
    step_h: float,
    discharge_kw: float,
    energy_kwh: float,
    charge_kw: float,
    round_trip_efficiency: float,
) -> float:
    """The lowest import level ``L`` (kW ≥ 0) to which a fleet could hold one day's
    ``net_load_kw`` (building load less PV, per interval of ``step_h`` hours):

    - power: ``max_t (net_t − L) ≤ discharge_kw``;
    - energy: ``Σ_t (net_t − L)⁺·Δt ≤ energy_kwh`` (kWh the fleet can give at the meter);
    - recharge the same day below ``L``: ``Σ_t min((L − net_t)⁺, charge_kw)·Δt·η ≥
      Σ_t (net_t − L)⁺·Δt`` with ``η = round_trip_efficiency``.

    Each condition holds from some level up, so ``L`` is found by bisection. Without V2X
    (``discharge_kw = 0``) it is the day's peak net load."""
    net = np.asarray(net_load_kw, dtype=float)
    if net.size == 0:
        return 0.0
    high = max(float(net.max()), 0.0)
    low = max(high - discharge_kw, 0.0)

    def holds(level_kw: float) -> bool:
        above_kwh = float(np.clip(net - level_kw, 0.0, None).sum()) * step_h
        room_kwh = float(np.clip(level_kw - net, 0.0, charge_kw).sum()) * step_h
        return above_kwh <= energy_kwh and above_kwh <= room_kwh * round_trip_efficiency

    if holds(low):
        return low
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        low, high = (low, middle) if holds(middle) else (middle, high)
    return high


def daily_shaved_peaks_kw(program: Program, site: Site, now: datetime) -> dict[date, float]:
    """:func:`shaved_peak_kw` of each local day from ``now``'s to the end of its month, on the
    site's profile forecast, with the site's V2X vehicles (their and their chargers' limits,
    the energy above the higher of their usable minimum and backup reserve)."""
    tz = program.timezone
    local = now.astimezone(tz)
    first = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month_end = (first.replace(day=1) + timedelta(days=32)).replace(day=1)
    n_steps = round((month_end - first) / program.step)  # aware: DST days are 23 or 25 h
    grid = TimeGrid(first, n_steps, program.step)
    forecast = profile_forecast(program, site, grid)
    net_kw = forecast.load_kw - forecast.pv_kw
    discharge_kw = energy_kwh = charge_kw = 0.0
    efficiencies = []
    for vehicle in site.vehicles:
        if not vehicle.v2x_capable:
            continue
        charger = site.charger(vehicle.evse_id)
        discharge_kw += min(vehicle.max_discharge_kw, charger.max_discharge_kw)
        charge_kw += min(vehicle.max_charge_kw, charger.max_charge_kw)
        floor_kwh = max(vehicle.min_energy_kwh, vehicle.reserve_soc * vehicle.battery_kwh)
        usable_kwh = max(vehicle.max_energy_kwh - floor_kwh, 0.0)
        energy_kwh += usable_kwh * vehicle.discharge_efficiency
        efficiencies.append(vehicle.charge_efficiency * vehicle.discharge_efficiency)
    round_trip = min(efficiencies, default=1.0)
    days = np.array([s.date() for s in grid.starts_local(tz)])
    return {
        day: shaved_peak_kw(
            net_kw[days == day], grid.step_h, discharge_kw, energy_kwh, charge_kw, round_trip
        )
        for day in dict.fromkeys(days)
    }


def expected_month_peak_kw(program: Program, site: Site, now: datetime) -> float:
    """The import peak ``site``'s billing month is expected to reach from ``now`` to its end
    whatever its vehicles do (0 for a site without a demand charge): the highest of
    :func:`daily_shaved_peaks_kw`."""
    if site.tariff.demand_usd_per_kw_month <= 0:
        return 0.0
    return max(daily_shaved_peaks_kw(program, site, now).values(), default=0.0)


# How a controller values the billing month's peak (``simulate``/``serve --month-peak``):
# "expected": the peak the month is expected to reach anyway is a floor below which import
# costs no demand charge (:class:`MonthPeakFloor`); "so-far": only the peak already reached.
MONTH_PEAK_CHOICES = ("expected", "so-far")


@dataclass
class MonthPeakFloor:
    """The expected month peak a site's controller is told at each instant: the highest of
    :func:`daily_shaved_peaks_kw` over the days from today to the end of the month. The days'
    levels are computed once a month per site, and again when a vehicle's or charger's power
    limits change (live: what a vehicle declared, what a charger refused)."""

    _key: tuple[object, ...] | None = field(default=None, repr=False)
    _days: dict[date, float] = field(default_factory=dict, repr=False)

    def kw(self, program: Program, site: Site, now: datetime) -> float:
        """The floor at ``now`` (0 for a site without a demand charge)."""
        if site.tariff.demand_usd_per_kw_month <= 0:
            return 0.0
        today = now.astimezone(program.timezone).date()
        key = (site.site_id, today.year, today.month, _fleet_limits(site))
        if key != self._key:
            self._key, self._days = key, daily_shaved_peaks_kw(program, site, now)
        return max((kw for day, kw in self._days.items() if day >= today), default=0.0)


def _fleet_limits(site: Site) -> tuple[tuple[object, ...], ...]:
    return tuple(
        (v.vehicle_id, v.v2x_capable, v.max_charge_kw, v.max_discharge_kw) for v in site.vehicles
    ) + tuple((c.evse_id, c.max_charge_kw, c.max_discharge_kw) for c in site.chargers)
