"""Cross-check: our scipy.sparse + highspy route and an independent linopy route
(``linopy_reference``, written from ``docs/formulation.md``) reach the same optimum."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from linopy_reference import solve_with_linopy
from numpy.typing import NDArray

from lightson.domain.plan import SolveStatus
from lightson.optimize import SiteInputs, VehicleInputs, plan_site
from support import site, vehicle

REL_TOL = 1e-6
ABS_TOL_USD = 1e-6
STEP_H = 0.25

unit = st.floats(0.0, 1.0, allow_subnormal=False)


def _ours_usd(inputs: SiteInputs) -> float:
    plan = plan_site(inputs)
    assert plan.status is SolveStatus.OPTIMAL
    return float(plan.objective.total_usd + plan.objective.early_charge_usd)  # the whole LP


def assert_routes_agree(inputs: SiteInputs) -> float:
    ours_usd, reference_usd = _ours_usd(inputs), solve_with_linopy(inputs)
    assert math.isclose(ours_usd, reference_usd, rel_tol=REL_TOL, abs_tol=ABS_TOL_USD), (
        f"plan_site {ours_usd!r} USD vs linopy {reference_usd!r} USD"
    )
    return ours_usd


def _window(draw: st.DrawFn, n: int, first: int = 0) -> NDArray[np.bool_]:
    """A contiguous run of intervals (possibly empty) starting at or after ``first``."""
    mask = np.zeros(n, dtype=bool)
    if first < n and draw(st.booleans()):
        start = draw(st.integers(first, n - 1))
        mask[start : draw(st.integers(start + 1, n))] = True
    return mask


@st.composite
def random_vehicle(draw: st.DrawFn, n: int, index: int) -> VehicleInputs:
    """A vehicle away on one trip (or none), with floors that may not be reachable."""
    battery_kwh = draw(st.floats(20.0, 250.0))
    max_energy_kwh = draw(st.floats(0.6, 1.0)) * battery_kwh
    away = _window(draw, n, first=1)
    plugged = ~away
    trip_kwh = np.where(away, draw(st.floats(0.0, 25.0)), 0.0)
    departure_need_kwh = np.zeros(n)
    if away.any():
        leaves = int(np.argmax(away)) - 1
        departure_need_kwh[leaves] = draw(unit) * max_energy_kwh
    base_floor_kwh = draw(st.floats(0.0, 0.3)) * battery_kwh
    reserve_kwh = np.where(plugged, draw(st.floats(0.0, 0.6)) * battery_kwh, 0.0)
    floor_kwh = np.minimum(
        np.maximum.reduce([np.full(n, base_floor_kwh), reserve_kwh, departure_need_kwh]),
        max_energy_kwh,
    )
    charge_kw = draw(st.floats(0.5, 60.0))
    discharge_kw = draw(st.floats(0.5, 60.0)) if draw(st.booleans()) else 0.0
    return vehicle(
        n,
        vehicle_id=f"v{index}",
        evse_id=f"evse{index}",
        battery_kwh=battery_kwh,
        initial_energy_kwh=draw(unit) * battery_kwh,  # may sit above max_energy_kwh
        max_energy_kwh=max_energy_kwh,
        floor_kwh=floor_kwh,
        departure_need_kwh=departure_need_kwh,
        plugged=plugged,
        max_charge_kw=np.where(plugged, charge_kw, 0.0),
        max_discharge_kw=np.where(plugged, discharge_kw, 0.0),
        trip_energy_kwh=trip_kwh,
        charge_efficiency=draw(st.floats(0.8, 1.0)),
        discharge_efficiency=draw(st.floats(0.8, 1.0)),
        degradation_usd_per_kwh=draw(st.floats(0.0, 0.1)),
        terminal_value_usd_per_kwh=draw(st.floats(0.0, 0.4)),
    )


@st.composite
def random_site(draw: st.DrawFn) -> SiteInputs:
    n = draw(st.integers(4, 24))
    profile = st.lists(unit, min_size=n, max_size=n).map(np.array)
    import_price = 0.05 + 0.5 * draw(profile)
    billing_period = np.zeros(n, dtype=np.int64)
    if draw(st.booleans()):
        billing_period[draw(st.integers(1, n - 1)) :] = 1
    demand = draw(st.one_of(st.just(0.0), st.floats(1.0, 30.0)))
    return site(
        n,
        STEP_H,
        tuple(draw(random_vehicle(n, i)) for i in range(draw(st.integers(1, 3)))),
        load_kw=draw(profile) * draw(st.floats(0.0, 200.0)),
        pv_kw=draw(profile) * draw(st.floats(0.0, 60.0)),
        import_price_usd_per_kwh=import_price,
        export_credit_usd_per_kwh=draw(profile) * import_price,
        dr_value_usd_per_kwh=np.where(_window(draw, n), draw(st.floats(0.0, 3.0)), 0.0),
        service_limit_kw=draw(st.floats(10.0, 300.0)),  # sometimes below the load
        export_permitted=draw(st.booleans()),
        demand_usd_per_kw_month=demand,
        billing_period=billing_period,
        peak_so_far_kw=draw(st.floats(0.0, 100.0)),
        peak_expected_kw=draw(st.sampled_from([0.0, 30.0, 120.0])),
        # the load's upper-quantile margin under the peak (sometimes none)
        peak_margin_kw=draw(st.one_of(st.none(), profile.map(lambda p: p * 15.0))),
        fixed_charge_usd=draw(st.floats(0.0, 5.0)),
        shortfall_penalty_usd_per_kwh=draw(st.sampled_from([100.0, 20.0])),
    )


@settings(max_examples=40, deadline=None)
@given(random_site())
def test_plan_site_and_linopy_reach_the_same_optimum(inputs: SiteInputs) -> None:
    assert_routes_agree(inputs)


def test_unserved_trip_and_demand_charge_over_two_billing_periods() -> None:
    # Away all horizon (no power), 8 kWh aboard, trips of 5 + 5 kWh: 2 kWh unserved at
    # M = 2·(0.3 + 10·2/0.25)/0.25 = 642.4 $/kWh (η = 1, two months: the demand charge raises M
    # from the configured 100), 1284.8 $.
    # Imports 10, 6, 10, 10 kW: energy 0.25·(0.2·10 + 0.2·6 + 0.3·10 + 0.3·10) = 2.3 $;
    # peaks 10 kW in both months, 8 kW already paid: 10·(10 + 10 − 8) = 120 $; fixed 1.5 $.
    n = 4
    away = vehicle(
        n,
        initial_energy_kwh=8.0,
        plugged=np.zeros(n, dtype=bool),
        max_charge_kw=np.zeros(n),
        max_discharge_kw=np.zeros(n),
        trip_energy_kwh=np.array([0.0, 5.0, 5.0, 0.0]),
        terminal_value_usd_per_kwh=0.3,
    )
    inputs = site(
        n,
        STEP_H,
        (away,),
        load_kw=np.full(n, 10.0),
        pv_kw=np.array([0.0, 4.0, 0.0, 0.0]),
        import_price_usd_per_kwh=np.array([0.2, 0.2, 0.3, 0.3]),
        demand_usd_per_kw_month=10.0,
        peak_so_far_kw=8.0,
        billing_period=np.array([0, 0, 1, 1]),
        fixed_charge_usd=1.5,
    )
    assert assert_routes_agree(inputs) == pytest.approx(2.3 + 120.0 + 1.5 + 1284.8, abs=1e-6)


def test_energy_above_the_window_is_kept_and_an_unreachable_floor_is_penalized() -> None:
    # 90 kWh aboard above the 80 kWh window, no charging, floor 95 kWh at t = 0: 5 kWh short
    # (500 $). Discharge saves 0.1 $/kWh at t = 0 (< 0.2 terminal value: keep 90 kWh) and
    # 0.3 $/kWh at t = 1 (serve the 10 kW load): energy 0.1·10 = 1 $, terminal 0.2·80 = 16 $.
    n = 2
    v2x = vehicle(
        n,
        initial_energy_kwh=90.0,
        max_energy_kwh=80.0,
        floor_kwh=np.array([95.0, 0.0]),
        max_charge_kw=np.zeros(n),
        terminal_value_usd_per_kwh=0.2,
    )
    inputs = site(
        n,
        1.0,
        (v2x,),
        load_kw=np.full(n, 10.0),
        import_price_usd_per_kwh=np.array([0.1, 0.3]),
    )
    assert assert_routes_agree(inputs) == pytest.approx(500.0 + 1.0 - 16.0, abs=1e-6)


def test_a_commuter_day_with_a_dr_event_and_export() -> None:
    # 96 quarter hours; away 07:00–17:00 with 30 kWh of driving, 60 kWh needed at 07:00;
    # DR event 15:00–18:00 (the vehicle is back for the last hour of it).
    n = 96
    hour = np.arange(n) * STEP_H
    away = (hour >= 7.0) & (hour < 17.0)
    departure = np.where(hour == 6.75, 60.0, 0.0)
    ev = vehicle(
        n,
        battery_kwh=131.0,
        initial_energy_kwh=40.0,
        max_energy_kwh=0.9 * 131.0,
        floor_kwh=np.maximum(np.where(away, 0.1, 0.2) * 131.0, departure),
        departure_need_kwh=departure,
        plugged=~away,
        max_charge_kw=np.where(away, 0.0, 19.2),
        max_discharge_kw=np.where(away, 0.0, 9.6),
        trip_energy_kwh=np.where(away, 30.0 / away.sum(), 0.0),
        charge_efficiency=0.92,
        discharge_efficiency=0.92,
        degradation_usd_per_kwh=0.03,
        terminal_value_usd_per_kwh=0.25,
    )
    inputs = site(
        n,
        STEP_H,
        (ev,),
        load_kw=1.0 + 1.5 * np.exp(-(((hour - 18.5) / 2.5) ** 2)),
        pv_kw=np.clip(6.0 * np.sin(np.pi * (hour - 6.0) / 14.0), 0.0, None),
        import_price_usd_per_kwh=np.where((hour >= 12) & (hour < 20), 0.35, 0.22),
        export_credit_usd_per_kwh=np.full(n, 0.05),
        dr_value_usd_per_kwh=np.where((hour >= 15) & (hour < 18), 1.2, 0.0),
        service_limit_kw=48.0,
        export_permitted=True,
    )
    assert_routes_agree(inputs)
