"""A live estimate of the backup left: how long each load tier can still be carried from now,
and when each tier will drop, from the vehicles plugged in now, their energy above the outage
floor, their discharge limits, and the load and PV forecast.

Used while islanded (and, before an outage, as "what if the grid failed now"). The arithmetic
is the outage-survival model's (:func:`lightson.resilience.survival.hours_carried`), so the
live figure and the year-long analysis agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from lightson.control.islanded import deliverable_kwh
from lightson.domain.assets import LoadTier, Site
from lightson.domain.state import SiteObservation
from lightson.resilience.survival import BackupVehicle, hours_carried


@dataclass(frozen=True)
class BackupEstimate:
    """``hours[tier]`` from ``at``; ``drops_at[tier]`` the moment the tier can no longer be
    carried, ``None`` when it lasts the whole forecast (``horizon_h``)."""

    at: datetime
    horizon_h: float
    hours: dict[LoadTier, float]
    drops_at: dict[LoadTier, datetime | None]


def backup_vehicles(
    site: Site, observation: SiteObservation, next_trip_kwh: Mapping[str, float]
) -> list[BackupVehicle]:
    """The plugged V2X vehicles as backup: deliverable energy above the outage floor (the
    usable minimum plus the next trip unless released) and discharge limit."""
    vehicles = []
    for vehicle in site.vehicles:
        deliverable = deliverable_kwh(
            vehicle, observation, next_trip_kwh.get(vehicle.vehicle_id, 0.0)
        )
        if deliverable <= 0:
            continue
        limit = min(vehicle.max_discharge_kw, site.charger(vehicle.evse_id).max_discharge_kw)
        vehicles.append(BackupVehicle(deliverable, limit))
    return vehicles


def backup_estimate(
    site: Site,
    observation: SiteObservation,
    load_forecast_kw: NDArray[np.float64],
    pv_forecast_kw: NDArray[np.float64],
    step_h: float,
    next_trip_kwh: Mapping[str, float],
) -> BackupEstimate:
    """Hours each tier lasts from ``observation.now`` over the forecast (arrays start now)."""
    if load_forecast_kw.shape != pv_forecast_kw.shape:
        raise ValueError("load and PV forecasts must cover the same intervals")
    vehicles = backup_vehicles(site, observation, next_trip_kwh)
    horizon_h = len(load_forecast_kw) * step_h
    hours = {}
    drops: dict[LoadTier, datetime | None] = {}
    for tier in LoadTier:
        tier_kw = site.building.tiers.share(tier) * load_forecast_kw
        carried = hours_carried(tier_kw, pv_forecast_kw, vehicles, step_h)
        hours[tier] = carried
        drops[tier] = (
            None if carried >= horizon_h - 1e-9 else observation.now + timedelta(hours=carried)
        )
    return BackupEstimate(observation.now, horizon_h, hours, drops)
