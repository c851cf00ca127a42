"""Builders for small, hand-checkable optimizer inputs used across the tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from lightson.optimize.inputs import SiteInputs, VehicleInputs

START = datetime(2026, 7, 15, 4, 0, tzinfo=UTC)


def vehicle(n: int, **overrides: Any) -> VehicleInputs:
    """A plugged-in 100 kWh vehicle with 10 kW both ways unless overridden."""
    fields: dict[str, Any] = {
        "vehicle_id": "v1",
        "evse_id": "evse1",
        "battery_kwh": 100.0,
        "initial_energy_kwh": 50.0,
        "max_energy_kwh": 100.0,
        "floor_kwh": np.zeros(n),
        "departure_need_kwh": np.zeros(n),
        "plugged": np.ones(n, dtype=bool),
        "max_charge_kw": np.full(n, 10.0),
        "max_discharge_kw": np.full(n, 10.0),
        "trip_energy_kwh": np.zeros(n),
        "charge_efficiency": 1.0,
        "discharge_efficiency": 1.0,
        "degradation_usd_per_kwh": 0.0,
        "terminal_value_usd_per_kwh": 0.0,
    }
    fields.update(overrides)
    return VehicleInputs(**fields)


def site(
    n: int, step_h: float, vehicles: tuple[VehicleInputs, ...], **overrides: Any
) -> SiteInputs:
    """A site with no load, PV, events or demand charge and a flat 0.20 $/kWh price."""
    fields: dict[str, Any] = {
        "site_id": "s1",
        "start": START,
        "step_h": step_h,
        "load_kw": np.zeros(n),
        "pv_kw": np.zeros(n),
        "import_price_usd_per_kwh": np.full(n, 0.20),
        "export_credit_usd_per_kwh": np.zeros(n),
        "dr_value_usd_per_kwh": np.zeros(n),
        "service_limit_kw": 100.0,
        "export_permitted": False,
        "demand_usd_per_kw_month": 0.0,
        "billing_period": np.zeros(n, dtype=np.int64),
        "peak_so_far_kw": 0.0,
        "fixed_charge_usd": 0.0,
        "shortfall_penalty_usd_per_kwh": 100.0,
        "vehicles": vehicles,
    }
    fields.update(overrides)
    return SiteInputs(**fields)
