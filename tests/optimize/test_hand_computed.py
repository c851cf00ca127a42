"""Small LPs whose optimal powers and objective are computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lightson.domain.plan import SolveStatus
from lightson.optimize import plan_site
from support import site, vehicle


def test_charges_in_the_cheapest_hours_to_meet_a_departure() -> None:
    # 4 one-hour steps; the vehicle leaves after step 2 for a 20 kWh trip and must hold
    # 30 kWh then. From 10 kWh at η_c = 0.9 it needs 20/0.9 = 22.22 kWh from the grid:
    # 10 kWh at 0.10 (step 1), 10 kWh at 0.20 (step 2), 2.22 kWh at 0.30 (step 0).
    n = 4
    v = vehicle(
        n,
        initial_energy_kwh=10.0,
        max_energy_kwh=60.0,
        floor_kwh=np.array([0.0, 0.0, 30.0, 0.0]),
        departure_need_kwh=np.array([0.0, 0.0, 30.0, 0.0]),
        plugged=np.array([True, True, True, False]),
        max_charge_kw=np.array([10.0, 10.0, 10.0, 0.0]),
        max_discharge_kw=np.zeros(n),
        trip_energy_kwh=np.array([0.0, 0.0, 0.0, 20.0]),
        charge_efficiency=0.9,
    )
    plan = plan_site(
        site(n, 1.0, (v,), import_price_usd_per_kwh=np.array([0.30, 0.10, 0.20, 0.40]))
    )
    assert plan.status is SolveStatus.OPTIMAL
    np.testing.assert_allclose(plan.vehicles[0].power_kw, [20 / 9, 10, 10, 0], atol=1e-6)
    np.testing.assert_allclose(plan.vehicles[0].energy_kwh, [12.0, 21.0, 30.0, 10.0], atol=1e-6)
    assert plan.objective.energy_usd == pytest.approx(0.30 * 20 / 9 + 1.0 + 2.0, abs=1e-9)
    assert plan.objective.total_usd == pytest.approx(0.30 * 20 / 9 + 3.0, abs=1e-9)
    assert plan.vehicles[0].departure_shortfall_kwh == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("export_permitted", "discharge_kw", "total_usd"),
    [
        # No export: discharge in the event is capped by the 5 kW building load.
        # energy 0.5 + degradation 0.1/0.8·0.5·5 − DR 2·0.5·5 − terminal 0.2·(50 − 3.125)
        (False, 5.0, 0.5 + 0.3125 - 5.0 - 9.375),
        # Export permitted: full 10 kW; 5 kW exported at no credit.
        (True, 10.0, 0.5 + 0.625 - 10.0 - 8.75),
    ],
)
def test_event_discharge_capped_by_load_without_export_permission(
    export_permitted: bool, discharge_kw: float, total_usd: float
) -> None:
    n = 2
    v = vehicle(
        n,
        charge_efficiency=0.9,
        discharge_efficiency=0.8,
        degradation_usd_per_kwh=0.1,
        terminal_value_usd_per_kwh=0.2,
    )
    inputs = site(
        n,
        0.5,
        (v,),
        load_kw=np.array([5.0, 5.0]),
        dr_value_usd_per_kwh=np.array([0.0, 2.0]),
        export_permitted=export_permitted,
    )
    plan = plan_site(inputs)
    np.testing.assert_allclose(plan.vehicles[0].power_kw, [0.0, -discharge_kw], atol=1e-6)
    np.testing.assert_allclose(plan.site_net_power_kw, [5.0, 5.0 - discharge_kw], atol=1e-6)
    assert plan.objective.dr_revenue_usd == pytest.approx(2.0 * 0.5 * discharge_kw)
    assert plan.objective.total_usd == pytest.approx(total_usd, abs=1e-9)


def test_discharges_to_hold_the_peak_already_paid_for() -> None:
    # Load peaks at 30 kW in step 1 and the month already reached 20 kW: discharging
    # 10 kW then avoids 10 kW × 20 $/kW. A kWh kept is worth 0.12 > the 0.10 price, so it
    # discharges nowhere else; charging stores 0.8 kWh (worth 0.096) per 0.10 kWh bought, so
    # it never charges.
    n = 4
    v = vehicle(
        n,
        initial_energy_kwh=40.0,
        max_discharge_kw=np.full(n, 15.0),
        charge_efficiency=0.8,
        terminal_value_usd_per_kwh=0.12,
    )
    inputs = site(
        n,
        0.25,
        (v,),
        load_kw=np.array([10.0, 30.0, 10.0, 10.0]),
        import_price_usd_per_kwh=np.full(n, 0.10),
        demand_usd_per_kw_month=20.0,
        peak_so_far_kw=20.0,
    )
    plan = plan_site(inputs)
    np.testing.assert_allclose(plan.vehicles[0].power_kw, [0.0, -10.0, 0.0, 0.0], atol=1e-6)
    assert plan.objective.demand_usd == pytest.approx(0.0, abs=1e-9)
    assert plan.objective.energy_usd == pytest.approx(0.10 * 0.25 * 50.0)
    assert plan.objective.total_usd == pytest.approx(1.25 - 0.12 * 37.5, abs=1e-9)


def test_a_new_peak_costs_the_demand_rate_above_the_peak_so_far() -> None:
    # A non-V2X vehicle leaving after one 15-minute step needs 10 kWh (40 kW): import 50 kW,
    # 30 kW above the 20 kW already paid for. Missing the departure would cost
    # M·(Δt + 1) = 125 $/kWh, more than the 80 $/kWh the new peak costs.
    n = 1
    v = vehicle(
        n,
        initial_energy_kwh=0.0,
        floor_kwh=np.array([10.0]),
        departure_need_kwh=np.array([10.0]),
        max_charge_kw=np.array([40.0]),
        max_discharge_kw=np.zeros(n),
    )
    inputs = site(
        n, 0.25, (v,), load_kw=np.array([10.0]), demand_usd_per_kw_month=20.0, peak_so_far_kw=20.0
    )
    plan = plan_site(inputs)
    assert plan.objective.demand_usd == pytest.approx(20.0 * 30.0)
    assert plan.objective.total_usd == pytest.approx(0.20 * 0.25 * 50.0 + 600.0)


def test_an_unreachable_departure_need_is_planned_as_well_as_possible_and_reported() -> None:
    # From 10 kWh, 5 kW for 2 h reaches 20 kWh of a 30 kWh need: 10 kWh short.
    n = 2
    v = vehicle(
        n,
        initial_energy_kwh=10.0,
        floor_kwh=np.array([0.0, 30.0]),
        departure_need_kwh=np.array([0.0, 30.0]),
        max_charge_kw=np.full(n, 5.0),
    )
    plan = plan_site(site(n, 1.0, (v,)))
    assert plan.status is SolveStatus.OPTIMAL
    np.testing.assert_allclose(plan.vehicles[0].power_kw, [5.0, 5.0], atol=1e-6)
    assert plan.vehicles[0].departure_shortfall_kwh == pytest.approx(10.0)
    # 10 kWh short at a departure, 1-hour steps: M·(Δt + 1)·10 = 100·2·10.
    assert plan.objective.shortfall_penalty_usd == pytest.approx(2000.0)
    assert plan.objective.total_usd == pytest.approx(2.0 + 2000.0)


def test_trip_energy_the_battery_cannot_supply_is_reported_unserved() -> None:
    n = 2
    v = vehicle(
        n,
        initial_energy_kwh=5.0,
        plugged=np.array([False, False]),
        max_charge_kw=np.zeros(n),
        max_discharge_kw=np.zeros(n),
        trip_energy_kwh=np.array([10.0, 10.0]),
    )
    plan = plan_site(site(n, 1.0, (v,)))
    assert plan.vehicles[0].unserved_trip_kwh == pytest.approx(15.0)
    np.testing.assert_allclose(plan.vehicles[0].energy_kwh, [0.0, 0.0], atol=1e-9)


def test_pv_surplus_leaves_but_vehicles_never_add_to_it_without_permission() -> None:
    # 4 kW of PV surplus is exported through the PV system; a huge DR value still cannot
    # make the vehicle discharge, because every kW it gave would be exported.
    n = 1
    v = vehicle(n, terminal_value_usd_per_kwh=0.0)
    inputs = site(
        n,
        1.0,
        (v,),
        load_kw=np.array([2.0]),
        pv_kw=np.array([6.0]),
        dr_value_usd_per_kwh=np.array([50.0]),
    )
    plan = plan_site(inputs)
    assert plan.vehicles[0].power_kw[0] == pytest.approx(0.0, abs=1e-9)
    assert plan.site_net_power_kw[0] == pytest.approx(-4.0)


def test_setpoints_carry_the_first_interval_power_until_its_end() -> None:
    n = 2
    v = vehicle(n, initial_energy_kwh=0.0, floor_kwh=np.array([2.5, 2.5]))
    plan = plan_site(site(n, 0.25, (v,)))
    (setpoint,) = plan.setpoints(0)
    assert setpoint.evse_id == "evse1"
    assert setpoint.power_kw == pytest.approx(10.0)
    assert setpoint.valid_until == plan.start + plan.step


def test_inputs_with_an_export_credit_above_the_price_are_refused_by_name() -> None:
    from lightson.domain.errors import ConfigError

    with pytest.raises(ConfigError, match="export_credit_usd_per_kwh: must not exceed"):
        site(1, 1.0, (), export_credit_usd_per_kwh=np.array([0.5]))
    with pytest.raises(ConfigError, match=r"vehicles\[0\].plugged: must have 2 values"):
        site(2, 1.0, (vehicle(2, plugged=np.ones(3, dtype=bool)),))


def test_a_warm_start_reaches_the_same_optimum_and_ignores_a_basis_of_another_shape() -> None:
    from lightson.optimize import WarmStart

    n = 4
    v = vehicle(
        n, initial_energy_kwh=10.0, floor_kwh=np.array([0.0, 0.0, 30.0, 0.0]), charge_efficiency=0.9
    )
    prices = np.array([0.30, 0.10, 0.20, 0.40])
    warm = WarmStart()
    cold = plan_site(site(n, 1.0, (v,), import_price_usd_per_kwh=prices))
    first = plan_site(site(n, 1.0, (v,), import_price_usd_per_kwh=prices), warm=warm)
    again = plan_site(site(n, 1.0, (v,), import_price_usd_per_kwh=prices[::-1].copy()), warm=warm)
    other_shape = plan_site(site(2, 1.0, (vehicle(2),)), warm=warm)
    assert first.objective.total_usd == pytest.approx(cold.objective.total_usd, abs=1e-9)
    reversed_cold = plan_site(site(n, 1.0, (v,), import_price_usd_per_kwh=prices[::-1].copy()))
    assert again.objective.total_usd == pytest.approx(reversed_cold.objective.total_usd, abs=1e-9)
    assert other_shape.status is SolveStatus.OPTIMAL


@pytest.mark.parametrize("need_kwh", [5.0, 15.0, 25.0])
def test_among_equally_priced_hours_the_earliest_charge(need_kwh: float) -> None:
    """Flat price, no demand charge: any hours before the departure cost the same, and the
    plan takes the earliest (with forecasts, energy put off is energy that may not arrive in
    time or may land on a load peak nobody forecast). The tie-breaker is not a cost: the
    plan's objective is the energy's price alone."""
    n = 4
    v = vehicle(
        n,
        initial_energy_kwh=0.0,
        max_energy_kwh=60.0,
        floor_kwh=np.array([0.0, 0.0, 0.0, need_kwh]),
        departure_need_kwh=np.array([0.0, 0.0, 0.0, need_kwh]),
        max_charge_kw=np.full(n, 10.0),
        max_discharge_kw=np.zeros(n),
        terminal_value_usd_per_kwh=0.0,
    )
    plan = plan_site(site(n, 1.0, (v,)))
    expected = np.clip(need_kwh - 10.0 * np.arange(n), 0.0, 10.0)  # 10 kW from the start
    np.testing.assert_allclose(plan.vehicles[0].power_kw, expected, atol=1e-6)
    assert plan.objective.total_usd == pytest.approx(0.20 * need_kwh, abs=1e-9)


@pytest.mark.parametrize(
    ("n", "step_h"),
    [(4, 1.0), (720, 1.0)],  # four hours, and a 30-day plan (the tie-breaker is capped)
)
def test_the_tie_breaker_never_outweighs_a_cent(n: int, step_h: float) -> None:
    """The last hour is 0.01 $/kWh cheaper: the plan waits for it, however long the horizon
    (the tie-breaker counts at most 36 hours of delay: 0.0036 $/kWh)."""
    need_kwh = 5.0
    v = vehicle(
        n,
        initial_energy_kwh=0.0,
        max_energy_kwh=60.0,
        floor_kwh=np.r_[np.zeros(n - 1), need_kwh],
        departure_need_kwh=np.r_[np.zeros(n - 1), need_kwh],
        max_charge_kw=np.full(n, 10.0),
        max_discharge_kw=np.zeros(n),
        terminal_value_usd_per_kwh=0.0,
    )
    price = np.r_[np.full(n - 1, 0.20), 0.19]
    plan = plan_site(site(n, step_h, (v,), import_price_usd_per_kwh=price))
    assert plan.vehicles[0].power_kw[-1] == pytest.approx(need_kwh, abs=1e-6)
    assert plan.objective.total_usd == pytest.approx(0.19 * need_kwh, abs=1e-9)
    delay_h = min((n - 1) * step_h, 36.0)
    assert plan.objective.early_charge_usd == pytest.approx(1e-4 * delay_h * need_kwh)


@pytest.mark.parametrize("controller", ["v2x-mpc", "perfect-foresight"])
def test_perfect_foresight_plans_without_the_tie_breaker(controller: str) -> None:
    """It has no forecast to hedge: its plans carry no tie-breaker; v2x-mpc's do."""
    from datetime import UTC, datetime, timedelta

    from lightson.config import load_program
    from lightson.control.controllers import CONTROLLERS, ControlContext
    from lightson.domain.state import SiteObservation
    from lightson.domain.time import TimeGrid
    from lightson.forecast.profiles import profile_forecast

    program = load_program("example")
    site = program.site("school-beverly")
    now = datetime(2026, 7, 14, 4, tzinfo=UTC)  # midnight EDT: the buses plugged in
    energy = {v.vehicle_id: 0.3 * v.battery_kwh for v in site.vehicles}
    observation = SiteObservation(now, energy, dict.fromkeys(energy, True), 100.0, 0.0)
    forecast = profile_forecast(program, site, TimeGrid(now, 144, timedelta(minutes=15)))
    plan_maker = CONTROLLERS.lookup(controller, "controller")()
    plan_maker.setpoints(ControlContext(program, site, observation, forecast))
    plan = plan_maker.last_plan  # type: ignore[attr-defined]
    charged_kwh = sum(float(np.clip(v.power_kw, 0, None).sum()) * 0.25 for v in plan.vehicles)
    assert charged_kwh > 10.0  # the buses need charge for tomorrow's routes
    if controller == "perfect-foresight":
        assert plan.objective.early_charge_usd == 0.0
    else:
        assert plan.objective.early_charge_usd > 0.0
