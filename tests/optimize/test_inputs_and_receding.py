"""From the program model to LP inputs, and the receding-horizon step."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from lightson.domain.plan import SolveStatus
from lightson.domain.state import SiteForecast, SiteState
from lightson.domain.time import TimeGrid
from lightson.forecast.profiles import profile_forecast, profile_peak_so_far_kw
from lightson.optimize import build_site_inputs, plan_at, plan_site


def _inputs(program, site_id: str, start: datetime, n: int = 96, state: SiteState | None = None):  # type: ignore[no-untyped-def]
    site = program.site(site_id)
    grid = TimeGrid(start, n, program.step)
    return build_site_inputs(program, site, grid, profile_forecast(program, site, grid), state)


def test_school_inputs_on_a_march_school_day(example_program) -> None:  # type: ignore[no-untyped-def]
    tz = example_program.timezone
    inputs = _inputs(example_program, "school-beverly", datetime(2026, 3, 11, tzinfo=tz))
    bus = inputs.vehicles[0]  # 226 kWh Jouley, 20 % reserve and departure floor, 12.5 mi routes
    route_kwh = 12.5 * 1.21
    assert bus.departure_need_kwh[25] == pytest.approx(0.2 * 226 + route_kwh)
    assert bus.floor_kwh[25] == pytest.approx(0.2 * 226 + route_kwh)
    # Plugged in between routes, the floor is the departure floor plus the next route.
    assert bus.floor_kwh[45] == pytest.approx(0.2 * 226 + route_kwh)
    assert bus.floor_kwh[30] == pytest.approx(0.05 * 226)  # away: only the window minimum
    assert not bus.plugged[26:36].any() and bus.plugged[36:56].all()
    assert bus.max_discharge_kw[40] == 60.0 and bus.max_discharge_kw[30] == 0.0
    assert inputs.demand_usd_per_kw_month == 27.0
    assert not inputs.dr_value_usd_per_kwh.any()  # no event that day


def test_event_value_and_pv_on_the_example_event_day(example_program) -> None:  # type: ignore[no-untyped-def]
    tz = example_program.timezone
    inputs = _inputs(example_program, "home-lowell", datetime(2026, 7, 15, tzinfo=tz))
    event = np.flatnonzero(inputs.dr_value_usd_per_kwh)
    assert list(event) == list(range(60, 72))  # 15:00-18:00 local
    assert inputs.dr_value_usd_per_kwh[60] == pytest.approx(275 / 135)
    assert inputs.pv_kw[:20].max() == 0.0 and inputs.pv_kw[44:56].max() > 2.0  # night vs midday
    assert inputs.fixed_charge_usd == pytest.approx(10.0 * 12 / 365.25)


def test_a_site_not_enrolled_sees_no_event_value(example_program) -> None:  # type: ignore[no-untyped-def]
    tz = example_program.timezone
    home = example_program.site("home-lowell")
    not_enrolled = type(home)(**{**home.__dict__, "enrollments": ()})
    grid = TimeGrid(datetime(2026, 7, 15, tzinfo=tz), 96, example_program.step)
    inputs = build_site_inputs(
        example_program, not_enrolled, grid, profile_forecast(example_program, home, grid)
    )
    assert not inputs.dr_value_usd_per_kwh.any()


def test_a_horizon_across_months_has_two_billing_periods(example_program) -> None:  # type: ignore[no-untyped-def]
    tz = example_program.timezone
    inputs = _inputs(example_program, "business-worcester", datetime(2026, 7, 31, 12, tzinfo=tz))
    assert inputs.n_billing_periods == 2
    assert inputs.billing_period[47] == 0 and inputs.billing_period[48] == 1
    plan = plan_site(inputs)
    assert plan.status is SolveStatus.OPTIMAL


def test_peak_so_far_from_profiles_is_zero_on_the_first_and_grows_in_the_month(
    example_program,
) -> None:  # type: ignore[no-untyped-def]
    tz = example_program.timezone
    school = example_program.site("school-beverly")
    assert profile_peak_so_far_kw(example_program, school, datetime(2026, 7, 1, tzinfo=tz)) == 0.0
    mid_july = profile_peak_so_far_kw(example_program, school, datetime(2026, 7, 15, tzinfo=tz))
    late_july = profile_peak_so_far_kw(example_program, school, datetime(2026, 7, 29, tzinfo=tz))
    assert 0.0 < mid_july <= late_july


def test_receding_step_plans_from_the_interval_holding_now_with_measured_state(
    example_program,
) -> None:  # type: ignore[no-untyped-def]
    tz = example_program.timezone
    school = example_program.site("school-beverly")
    now = datetime(2026, 7, 15, 14, 7, tzinfo=tz)
    n = 48
    forecast = SiteForecast(load_kw=np.full(n, 60.0), pv_kw=np.zeros(n))
    state = SiteState(energy_kwh={"bus-7": 0.9 * 226, "bus-12": 0.2 * 196}, peak_so_far_kw=300.0)
    plan = plan_at(example_program, school, now, state, forecast)
    assert plan.start == datetime(2026, 7, 15, 14, 0, tzinfo=tz)
    assert plan.n_steps == n and plan.step == timedelta(minutes=15)
    bus7, bus12 = plan.vehicles
    # The event starts at 15:00 (interval 4): both buses discharge at full power then.
    assert bus7.power_kw[4] == pytest.approx(-60.0)
    assert bus7.energy_kwh[0] >= 0.9 * 226 - 1e-6 or bus7.power_kw[0] >= -1e-6
    setpoints = plan.setpoints(0)
    assert [s.evse_id for s in setpoints] == ["depot-evse1", "depot-evse2"]
    assert setpoints[0].valid_until == datetime(2026, 7, 15, 14, 15, tzinfo=tz)
    assert bus12.soc[-1] >= 0.2 - 1e-6


def test_plugged_now_overrides_the_schedule_for_the_first_interval(example_program) -> None:  # type: ignore[no-untyped-def]
    tz = example_program.timezone
    state = SiteState(plugged_now={"bus-7": False})
    inputs = _inputs(
        example_program, "school-beverly", datetime(2026, 7, 15, tzinfo=tz), state=state
    )
    assert not inputs.vehicles[0].plugged[0] and inputs.vehicles[0].plugged[1]
    assert inputs.vehicles[0].max_charge_kw[0] == 0.0


def test_a_bus_back_early_has_finished_its_route(example_program) -> None:  # type: ignore[no-untyped-def]
    tz = example_program.timezone
    start = datetime(2026, 3, 11, 7, 0, tzinfo=tz)  # mid-route (06:30-09:00)
    state = SiteState(plugged_now={"bus-7": True})
    inputs = _inputs(example_program, "school-beverly", start, n=16, state=state)
    bus7, bus12 = inputs.vehicles
    assert bus7.plugged.all() and bus7.trip_energy_kwh.sum() == 0.0
    assert bus7.max_charge_kw[0] == 60.0
    assert not bus12.plugged[:8].any() and bus12.trip_energy_kwh.sum() > 0  # still on its route
