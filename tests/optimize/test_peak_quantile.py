"""The demand-peak constraint planned on an upper quantile of the load (#16): hand-computed
headroom under the month's peak."""

from __future__ import annotations

import numpy as np
import pytest

from lightson.domain.plan import SolveStatus
from lightson.domain.state import SiteForecast
from lightson.forecast.history import QuantileForecast
from lightson.optimize import plan_site
from lightson.optimize.inputs import peak_margin_kw
from support import site, vehicle

MEDIAN_KW = np.array([10.0, 30.0, 10.0, 10.0])


def _inputs(upper_kw: np.ndarray | None):  # type: ignore[no-untyped-def]
    n = 4
    v = vehicle(
        n,
        initial_energy_kwh=40.0,
        max_discharge_kw=np.full(n, 15.0),
        charge_efficiency=0.8,
        terminal_value_usd_per_kwh=0.12,
    )
    forecast = SiteForecast(MEDIAN_KW, np.zeros(n), load_peak_kw=upper_kw)
    return site(
        n,
        0.25,
        (v,),
        load_kw=MEDIAN_KW,
        import_price_usd_per_kwh=np.full(n, 0.10),
        demand_usd_per_kw_month=20.0,
        peak_so_far_kw=20.0,
        peak_margin_kw=peak_margin_kw(forecast),
    )


def test_the_upper_quantile_raises_the_headroom_under_the_peak_by_its_margin() -> None:
    # The month reached 20 kW; the median load peaks at 30 kW in step 1, its 90 % at 34 kW.
    # On the median alone the car discharges 10 kW then (import 20 kW, no headroom); on the
    # 90 % it discharges 4 kW more (import 16 kW: 4 kW of headroom = 34 − 30). Step 0's
    # 12 kW upper load stays under 20 kW, so nothing changes there. A kWh kept is worth
    # 0.12 > the 0.10 price: no discharge beyond what the peak needs.
    median = plan_site(_inputs(None))
    upper = plan_site(_inputs(np.array([12.0, 34.0, 9.0, 10.0])))
    assert median.status is upper.status is SolveStatus.OPTIMAL
    np.testing.assert_allclose(median.site_net_power_kw, [10.0, 20.0, 10.0, 10.0], atol=1e-6)
    np.testing.assert_allclose(upper.site_net_power_kw, [10.0, 16.0, 10.0, 10.0], atol=1e-6)
    np.testing.assert_allclose(upper.vehicles[0].power_kw, [0.0, -14.0, 0.0, 0.0], atol=1e-6)
    assert upper.objective.demand_usd == pytest.approx(0.0, abs=1e-9)
    # energy 0.10·0.25·(10 + 16 + 10 + 10) − terminal 0.12·(40 − 14·0.25)
    assert upper.objective.total_usd == pytest.approx(1.15 - 0.12 * 36.5, abs=1e-9)


def test_a_margin_the_fleet_cannot_cover_is_planned_as_a_higher_peak() -> None:
    # The 90 % load reaches 40 kW in step 1 (margin 10 kW): holding 20 kW would need 20 kW
    # of discharge, the car gives its 15: the planned peak is 30 − 15 + 10 = 25 kW, 5 kW
    # above the 20 kW paid for, 5 × 20 $ = 100 $ of demand charge planned.
    plan = plan_site(_inputs(np.array([10.0, 40.0, 10.0, 10.0])))
    np.testing.assert_allclose(plan.vehicles[0].power_kw, [0.0, -15.0, 0.0, 0.0], atol=1e-6)
    assert plan.objective.demand_usd == pytest.approx(100.0, abs=1e-6)


def test_the_margin_is_the_upper_quantile_above_the_median_never_below() -> None:
    levels = {
        0.1: np.array([1.0, 2.0, 3.0]),
        0.5: np.array([2.0, 5.0, 4.0]),
        0.9: np.array([3.0, 9.0, 4.0]),
    }
    quantiles = QuantileForecast(levels, dict.fromkeys(levels, np.zeros(3)))
    made = quantiles.at(0.5, peak_level=0.9)
    np.testing.assert_allclose(peak_margin_kw(made), [1.0, 4.0, 0.0])
    below = SiteForecast(np.array([2.0, 5.0]), np.zeros(2), load_peak_kw=np.array([1.0, 6.0]))
    np.testing.assert_allclose(peak_margin_kw(below), [0.0, 1.0])
    assert peak_margin_kw(quantiles.at(0.5)) is None
