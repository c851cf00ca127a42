"""Invariants of every plan over random sites (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightson.domain.plan import Plan, SolveStatus
from lightson.optimize import SiteInputs, VehicleInputs, plan_site
from lightson.physics.battery import next_energy_kwh
from support import site, vehicle

TOL = 1e-6


@st.composite
def random_vehicle(draw: st.DrawFn, n: int, index: int) -> VehicleInputs:
    battery_kwh = draw(st.floats(20.0, 250.0))
    soc_min, soc_max = sorted(draw(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2)))
    soc_max = max(soc_max, soc_min + 0.1)
    plugged = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    v2x = draw(st.booleans())
    charge_kw = draw(st.floats(1.0, 60.0))
    discharge_kw = draw(st.floats(1.0, 60.0)) if v2x else 0.0
    trip = np.where(plugged, 0.0, draw(st.floats(0.0, 15.0)))
    departure = np.zeros(n)
    for t in range(n - 1):
        if plugged[t] and not plugged[t + 1]:
            departure[t] = min(battery_kwh * soc_max, draw(st.floats(0.0, 1.0)) * battery_kwh)
    floor = np.maximum(soc_min * battery_kwh, departure)
    return vehicle(
        n,
        vehicle_id=f"v{index}",
        evse_id=f"evse{index}",
        battery_kwh=battery_kwh,
        initial_energy_kwh=draw(st.floats(0.0, 1.0)) * battery_kwh * soc_max,
        max_energy_kwh=soc_max * battery_kwh,
        floor_kwh=np.minimum(floor, soc_max * battery_kwh),
        departure_need_kwh=departure,
        plugged=plugged,
        max_charge_kw=np.where(plugged, charge_kw, 0.0),
        max_discharge_kw=np.where(plugged, discharge_kw, 0.0),
        trip_energy_kwh=trip,
        charge_efficiency=draw(st.floats(0.8, 0.99)),
        discharge_efficiency=draw(st.floats(0.8, 0.99)),
        degradation_usd_per_kwh=draw(st.floats(0.001, 0.1)),
        terminal_value_usd_per_kwh=draw(st.floats(0.0, 0.4)),
    )


@st.composite
def random_site(draw: st.DrawFn) -> SiteInputs:
    n = draw(st.integers(1, 24))
    n_vehicles = draw(st.integers(0, 3))
    values = st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n).map(np.array)
    event = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    periods = np.sort(np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))))
    return site(
        n,
        draw(st.sampled_from([0.25, 0.5, 1.0])),
        tuple(draw(random_vehicle(n, i)) for i in range(n_vehicles)),
        load_kw=draw(values) * draw(st.floats(0.0, 300.0)),
        pv_kw=draw(values) * draw(st.floats(0.0, 50.0)),
        import_price_usd_per_kwh=0.05 + 0.5 * draw(values),
        export_credit_usd_per_kwh=0.04 * draw(values),  # below the 0.05 $/kWh price floor
        dr_value_usd_per_kwh=np.where(event, draw(st.floats(0.0, 5.0)), 0.0),
        service_limit_kw=draw(st.floats(20.0, 500.0)),
        export_permitted=draw(st.booleans()),
        demand_usd_per_kw_month=draw(st.sampled_from([0.0, 27.0])),
        billing_period=periods - periods[0],
        peak_so_far_kw=draw(st.floats(0.0, 100.0)),
        fixed_charge_usd=draw(st.floats(0.0, 5.0)),
    )


@dataclass
class Checked:
    inputs: SiteInputs
    plan: Plan


def _planned(inputs: SiteInputs) -> Checked:
    plan = plan_site(inputs)
    assert plan.status is SolveStatus.OPTIMAL
    return Checked(inputs, plan)


@given(random_site())
def test_power_stays_within_charger_and_vehicle_limits(inputs: SiteInputs) -> None:
    c = _planned(inputs)
    for vin, vp in zip(inputs.vehicles, c.plan.vehicles, strict=True):
        assert np.all(vp.power_kw <= vin.max_charge_kw + TOL)
        assert np.all(vp.power_kw >= -vin.max_discharge_kw - TOL)
        assert np.all(np.abs(vp.power_kw[~vin.plugged]) <= TOL), "power while away"
        if not vin.max_discharge_kw.any():
            assert np.all(vp.power_kw >= -TOL), "non-V2X equipment discharged"


@given(random_site())
def test_soc_follows_the_battery_physics_and_stays_in_its_window(inputs: SiteInputs) -> None:
    c = _planned(inputs)
    for vin, vp in zip(inputs.vehicles, c.plan.vehicles, strict=True):
        energy = vin.initial_energy_kwh
        # With unserved trip energy, which interval went short is not unique: bounds only.
        for t in range(inputs.n_steps if vp.unserved_trip_kwh <= TOL else 0):
            energy = next_energy_kwh(
                energy,
                vp.power_kw[t],
                inputs.step_h,
                vin.charge_efficiency,
                vin.discharge_efficiency,
                vin.trip_energy_kwh[t],
            )
            assert abs(vp.energy_kwh[t] - energy) <= 1e-5 * max(1.0, energy)
        upper = max(vin.max_energy_kwh, vin.initial_energy_kwh)
        assert np.all(vp.energy_kwh >= -TOL)
        assert np.all(vp.energy_kwh <= upper + TOL)
        assert np.all(vp.energy_kwh >= vin.floor_kwh - vp.floor_shortfall_kwh - TOL)


@given(random_site())
def test_site_power_balances_and_respects_export_and_service_limits(inputs: SiteInputs) -> None:
    c = _planned(inputs)
    vehicles_kw = sum((vp.power_kw for vp in c.plan.vehicles), np.zeros(inputs.n_steps))
    uncontrolled_kw = inputs.load_kw - inputs.pv_kw
    np.testing.assert_allclose(c.plan.site_net_power_kw, uncontrolled_kw + vehicles_kw, atol=1e-5)
    np.testing.assert_array_equal(c.plan.pv_kw, inputs.pv_kw)  # PV is never curtailed
    net = c.plan.site_net_power_kw
    assert np.all(net <= np.maximum(inputs.service_limit_kw, uncontrolled_kw) + TOL)
    if inputs.export_permitted:
        assert np.all(net >= np.minimum(-inputs.service_limit_kw, uncontrolled_kw) - TOL)
    else:
        # Vehicles never push power out: the only export is the PV surplus itself.
        assert np.all(net >= np.minimum(0.0, uncontrolled_kw) - TOL), "V2X exported"


def _greedy_max_energy(vin: VehicleInputs, step_h: float) -> np.ndarray:
    """The most energy the battery can hold at each interval end: charge flat out."""
    energy, out = vin.initial_energy_kwh, []
    upper = max(vin.max_energy_kwh, vin.initial_energy_kwh)
    for t in range(len(vin.plugged)):
        energy = min(upper, energy + vin.charge_efficiency * vin.max_charge_kw[t] * step_h)
        energy -= vin.trip_energy_kwh[t]
        out.append(energy)
    return np.array(out)


@given(random_site())
def test_needs_are_met_whenever_charging_flat_out_could_meet_them(inputs: SiteInputs) -> None:
    roomy = SiteInputs(**{**inputs.__dict__, "service_limit_kw": 10_000.0})
    c = _planned(roomy)
    for vin, vp in zip(roomy.vehicles, c.plan.vehicles, strict=True):
        if np.all(_greedy_max_energy(vin, roomy.step_h) >= vin.floor_kwh - 1e-9):
            assert vp.floor_shortfall_kwh <= 1e-5
            assert vp.departure_shortfall_kwh <= 1e-5
            assert vp.unserved_trip_kwh <= 1e-5


@given(random_site())
def test_objective_terms_add_up_and_match_the_flows(inputs: SiteInputs) -> None:
    c = _planned(inputs)
    dt = inputs.step_h
    imports = np.clip(c.plan.site_net_power_kw, 0.0, None)
    terms = c.plan.objective
    # Export credit < import price, so no interval both imports and exports.
    expected_energy_usd = float(inputs.import_price_usd_per_kwh @ imports) * dt
    assert abs(terms.energy_usd - expected_energy_usd) <= 1e-5 * max(1.0, terms.energy_usd)
    net_discharge = -sum((vp.power_kw for vp in c.plan.vehicles), np.zeros(inputs.n_steps))
    assert abs(
        terms.dr_revenue_usd - float(inputs.dr_value_usd_per_kwh @ net_discharge) * dt
    ) <= 1e-5 * max(1.0, abs(terms.dr_revenue_usd))
    assert terms.fixed_usd == inputs.fixed_charge_usd
    assert terms.demand_usd >= -TOL


def test_a_demand_charge_never_outweighs_a_floor() -> None:
    """Found by the property above: an empty car (η 0.875, 1 kW) whose floor is 0.15625 kWh
    from the first interval on, at a site with a 27 $/kW-month demand charge and no peak yet.
    Charging 0.15625/0.875/0.25 = 0.714 kW in the first interval costs 19.29 $ of demand
    charge; with the configured M = 100 $/kWh the shortfall would have cost only 7.81 $."""
    from lightson.optimize.model import shortfall_penalty

    vehicle = VehicleInputs(
        vehicle_id="v0",
        evse_id="evse0",
        battery_kwh=20.0,
        initial_energy_kwh=0.0,
        max_energy_kwh=20.0,
        floor_kwh=np.full(2, 0.15625),
        departure_need_kwh=np.zeros(2),
        plugged=np.ones(2, dtype=bool),
        max_charge_kw=np.ones(2),
        max_discharge_kw=np.zeros(2),
        trip_energy_kwh=np.zeros(2),
        charge_efficiency=0.875,
        discharge_efficiency=0.875,
        degradation_usd_per_kwh=0.0625,
        terminal_value_usd_per_kwh=0.0,
    )
    inputs = SiteInputs(
        site_id="s1",
        start=datetime(2026, 7, 15, 4, tzinfo=UTC),
        step_h=0.25,
        load_kw=np.zeros(2),
        pv_kw=np.zeros(2),
        import_price_usd_per_kwh=np.full(2, 0.05),
        export_credit_usd_per_kwh=np.zeros(2),
        dr_value_usd_per_kwh=np.zeros(2),
        service_limit_kw=10_000.0,
        export_permitted=False,
        demand_usd_per_kw_month=27.0,
        billing_period=np.zeros(2, dtype=int),
        peak_so_far_kw=0.0,
        fixed_charge_usd=0.0,
        shortfall_penalty_usd_per_kwh=100.0,
        vehicles=(vehicle,),
    )
    # 2 · (0.05/0.875 + 27/(0.25·0.875)) / 0.25
    assert shortfall_penalty(inputs) == pytest.approx(2 * (0.05 / 0.875 + 27 / 0.21875) / 0.25)
    plan = plan_site(inputs)
    assert plan.vehicles[0].floor_shortfall_kwh == pytest.approx(0.0, abs=1e-9)
    assert plan.vehicles[0].power_kw[0] == pytest.approx(0.15625 / 0.875 / 0.25)
    assert plan.objective.demand_usd == pytest.approx(27 * 0.15625 / 0.875 / 0.25)
