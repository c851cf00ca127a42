"""The month's peak valued over the month (#16): a peak the month reaches anyway costs the
plan no demand charge, so the first event of a month is not starved by early shaving."""

from __future__ import annotations

import numpy as np
import pytest

from lightson.forecast.month_peak import shaved_peak_kw
from lightson.optimize import plan_site
from support import site, vehicle


@pytest.mark.parametrize(
    ("peak_expected_kw", "shave_kw", "event_kw"),
    [
        # Before (#16): the month so far reached 10 kW (a weekend). Hour 0 (25 kW, no event)
        # and hour 1 (25 kW, event at 1 $/kWh) would set a new 25 kW peak at 20 $/kW; the
        # vehicle has 20 kWh above its floor, each kWh worth 0.5 $ kept. Holding both hours
        # at 15 kW (10 kWh each) saves 200 $ of demand charge for 10 $ of energy: the event
        # gets 10 kW. Giving the event all 20 kWh would earn 10 $ more and cost 200 $.
        (0.0, 10.0, 10.0),
        # After: the month is expected to reach 25 kW anyway, so shaving saves nothing and
        # the event gets all 20 kW (1 $/kWh > the 0.5 $/kWh a kept kWh is worth).
        (25.0, 0.0, 20.0),
    ],
)
def test_first_event_of_the_month_with_and_without_the_expected_peak(
    peak_expected_kw: float, shave_kw: float, event_kw: float
) -> None:
    n = 2
    v = vehicle(
        n,
        initial_energy_kwh=40.0,
        floor_kwh=np.full(n, 20.0),
        max_discharge_kw=np.full(n, 20.0),
        terminal_value_usd_per_kwh=0.5,
    )
    inputs = site(
        n,
        1.0,
        (v,),
        load_kw=np.array([25.0, 25.0]),
        import_price_usd_per_kwh=np.full(n, 0.20),
        dr_value_usd_per_kwh=np.array([0.0, 1.0]),
        demand_usd_per_kw_month=20.0,
        peak_so_far_kw=10.0,
        peak_expected_kw=peak_expected_kw,
    )
    plan = plan_site(inputs)
    np.testing.assert_allclose(plan.vehicles[0].power_kw, [-shave_kw, -event_kw], atol=1e-6)
    peak_kw = 25.0 - min(shave_kw, event_kw)
    assert plan.objective.demand_usd == pytest.approx(
        20.0 * (peak_kw - max(10.0, peak_expected_kw)), abs=1e-6
    )


def test_shaved_peak_by_hand() -> None:
    # Net load 10, 10, 30, 30 kW over 1-hour steps; 15 kW and 10 kWh to give, 20 kW to
    # recharge, no losses. Energy: 2·(30 − L) ≤ 10 → L ≥ 25; power: 30 − L ≤ 15 → L ≥ 15;
    # recharge: 2·(L − 10) ≥ 2·(30 − L) → L ≥ 20. The lowest level is 25 kW.
    net = np.array([10.0, 10.0, 30.0, 30.0])
    assert shaved_peak_kw(net, 1.0, 15.0, 10.0, 20.0, 1.0) == pytest.approx(25.0, abs=1e-6)
    # Without V2X the day's peak stands; with plenty of energy the recharge room binds (20).
    assert shaved_peak_kw(net, 1.0, 0.0, 10.0, 20.0, 1.0) == pytest.approx(30.0)
    assert shaved_peak_kw(net, 1.0, 15.0, 1e3, 20.0, 1.0) == pytest.approx(20.0, abs=1e-6)
