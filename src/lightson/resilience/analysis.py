"""Outage survival over a period: every hour as an outage start, from a site's interval
data (simulated or metered): load, PV, and each vehicle's energy and plug state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import LoadTier, Site
from lightson.domain.time import TimeGrid
from lightson.physics.trips import outage_floor_kwh, trip_schedule
from lightson.resilience.survival import BackupVehicle, hours_carried, survival_probability

SURVIVAL_DURATIONS_H = (4.0, 8.0, 24.0, 72.0)


@dataclass(frozen=True, eq=False)
class SurvivalResult:
    """``hours[tier][i]``: hours the tier is carried for an outage starting at ``starts[i]``
    (capped at ``max_hours``); ``probability[tier][d]``: share of starts lasting ≥ d hours."""

    site_id: str
    starts: list[datetime]
    max_hours: float
    hours: dict[LoadTier, NDArray[np.float64]]
    probability: dict[LoadTier, dict[float, float]]


def outage_survival(
    site: Site,
    start: datetime,
    step: timedelta,
    load_kw: NDArray[np.float64],
    pv_kw: NDArray[np.float64],
    energy_kwh: NDArray[np.float64],
    plugged: NDArray[np.bool_],
    next_trip_kwh: NDArray[np.float64],
    max_hours: float = 72.0,
) -> SurvivalResult:
    """Survival of each tier for outages starting at every whole hour with ``max_hours`` of
    data after it. Vehicle arrays are ``[vehicle, step]`` in ``site.vehicles`` order;
    ``energy_kwh[:, k]`` is the energy at the *start* of step ``k``."""
    step_h = step.total_seconds() / 3600
    per_hour, window = round(1 / step_h), round(max_hours / step_h)
    first_starts = range(0, max(len(load_kw) - window + 1, 0), per_hour)
    hours: dict[LoadTier, list[float]] = {tier: [] for tier in LoadTier}
    for k in first_starts:
        fleet = _fleet_at(site, energy_kwh[:, k], plugged[:, k], next_trip_kwh[:, k])
        for tier in LoadTier:
            share = site.building.tiers.share(tier)
            tier_kw = share * load_kw[k : k + window]
            hours[tier].append(hours_carried(tier_kw, pv_kw[k : k + window], fleet, step_h))
    arrays = {tier: np.array(values) for tier, values in hours.items()}
    return SurvivalResult(
        site_id=site.site_id,
        starts=[start + k * step for k in first_starts],
        max_hours=max_hours,
        hours=arrays,
        probability={
            tier: survival_probability(arrays[tier], SURVIVAL_DURATIONS_H) for tier in LoadTier
        },
    )


def _fleet_at(
    site: Site,
    energy_kwh: NDArray[np.float64],
    plugged: NDArray[np.bool_],
    next_trip_kwh: NDArray[np.float64],
) -> list[BackupVehicle]:
    fleet = []
    for i, vehicle in enumerate(site.vehicles):
        if not (plugged[i] and vehicle.v2x_capable):
            continue
        above_kwh = max(
            float(energy_kwh[i]) - outage_floor_kwh(vehicle, float(next_trip_kwh[i])), 0.0
        )
        limit_kw = min(vehicle.max_discharge_kw, site.charger(vehicle.evse_id).max_discharge_kw)
        fleet.append(BackupVehicle(above_kwh * vehicle.discharge_efficiency, limit_kw))
    return fleet


def survival_of_run(
    site: Site,
    start: datetime,
    step: timedelta,
    timezone: ZoneInfo,
    load_kw: NDArray[np.float64],
    pv_kw: NDArray[np.float64],
    energy_end_kwh: NDArray[np.float64],
    plugged: NDArray[np.bool_],
    max_hours: float = 72.0,
) -> SurvivalResult:
    """:func:`outage_survival` from a run's interval data (energy at the *end* of each step,
    as the simulator writes it; the vehicles' initial SoC comes first)."""
    n_steps = int(load_kw.shape[0])
    grid = TimeGrid(start, n_steps, step)
    n_vehicles = len(site.vehicles)
    next_trip = np.array(
        [trip_schedule(v.trips, grid, timezone).next_trip_kwh for v in site.vehicles]
    ).reshape(n_vehicles, n_steps)
    initial = np.array([v.initial_soc * v.battery_kwh for v in site.vehicles]).reshape(-1, 1)
    energy_end = np.asarray(energy_end_kwh, dtype=float).reshape(n_vehicles, n_steps)
    energy_start = np.concatenate([initial, energy_end[:, :-1]], axis=1)
    plugged_steps = np.asarray(plugged, dtype=bool).reshape(n_vehicles, n_steps)
    return outage_survival(
        site, start, step, load_kw, pv_kw, energy_start, plugged_steps, next_trip, max_hours
    )
