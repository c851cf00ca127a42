"""The live backup estimate: hours left per tier and when each tier drops, by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lightson.control.backup import backup_estimate
from lightson.domain.assets import LoadTier
from lightson.domain.state import SiteObservation

NOW = datetime(2026, 7, 16, 14, tzinfo=UTC)


def _school(example_program):  # type: ignore[no-untyped-def]
    site = example_program.site("school-beverly")
    bus_a, bus_b = site.vehicles
    return site, bus_a, bus_b


def test_one_bus_carries_the_critical_tier_for_a_computable_time(example_program) -> None:  # type: ignore[no-untyped-def]
    site, bus_a, bus_b = _school(example_program)
    assert site.building.tiers.share(LoadTier.CRITICAL) == 0.2
    observation = SiteObservation(
        NOW,
        {bus_a.vehicle_id: 0.8 * bus_a.battery_kwh, bus_b.vehicle_id: bus_b.min_energy_kwh},
        {bus_a.vehicle_id: True, bus_b.vehicle_id: True},
        load_kw=225.0,
        pv_kw=0.0,
        islanded=True,
    )
    load = np.full(4 * 24, 225.0)  # critical 0.2 × 225 = 45 kW; essential 112.5; full 225
    route_kwh = 15.0
    estimate = backup_estimate(
        site, observation, load, np.zeros_like(load), 0.25, {bus_a.vehicle_id: route_kwh}
    )
    deliverable = (0.8 * bus_a.battery_kwh - bus_a.min_energy_kwh - route_kwh) * (
        bus_a.discharge_efficiency
    )
    hours = deliverable / 45.0
    assert estimate.hours[LoadTier.CRITICAL] == pytest.approx(hours)
    assert estimate.drops_at[LoadTier.CRITICAL] == NOW + timedelta(hours=hours)
    # 112.5 kW and 225 kW are beyond one 60 kW charger: those tiers drop at once.
    assert estimate.hours[LoadTier.ESSENTIAL] == 0.0
    assert estimate.drops_at[LoadTier.FULL] == NOW
    # The operator releases the route reserve: 15 kWh more at the charger, after losses.
    released = backup_estimate(site, observation, load, np.zeros_like(load), 0.25, {})
    assert released.hours[LoadTier.CRITICAL] == pytest.approx(
        hours + route_kwh * bus_a.discharge_efficiency / 45.0
    )


def test_a_tier_that_lasts_the_forecast_has_no_drop_time(example_program) -> None:  # type: ignore[no-untyped-def]
    site, bus_a, bus_b = _school(example_program)
    observation = SiteObservation(
        NOW,
        {bus_a.vehicle_id: bus_a.battery_kwh, bus_b.vehicle_id: bus_b.battery_kwh},
        {bus_a.vehicle_id: True, bus_b.vehicle_id: True},
        load_kw=50.0,
        pv_kw=0.0,
    )
    load = np.full(8, 50.0)  # 2 hours of 10 kW critical load
    estimate = backup_estimate(site, observation, load, np.zeros(8), 0.25, {})
    assert estimate.horizon_h == 2.0
    assert estimate.hours[LoadTier.CRITICAL] == 2.0
    assert estimate.drops_at[LoadTier.CRITICAL] is None
    with pytest.raises(ValueError, match="same intervals"):
        backup_estimate(site, observation, load, np.zeros(4), 0.25, {})
