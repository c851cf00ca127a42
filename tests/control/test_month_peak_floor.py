"""The month's peak valued over the month in the controller (#16): on a hand-made July the
expected peak lets the plan give the first event of the month what it otherwise spends
holding the morning under a peak the month sets anyway."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import numpy as np
import pytest

from lightson.control.controllers import ControlContext, LinearProgramController
from lightson.domain.assets import Program, Site
from lightson.domain.demand_response import DREvent
from lightson.domain.state import SiteForecast, SiteObservation
from lightson.domain.time import TimeGrid
from lightson.forecast import month_peak
from lightson.forecast.month_peak import MonthPeakFloor, daily_shaved_peaks_kw

# school-beverly of the example program: bus-7 (226 kWh) and bus-12 (196 kWh), reserve 20 %,
# 60 kW bidirectional chargers, 92 % each way; 27 $/kW-month demand charge; no routes in July.


def hand_made_july(program: Program, site: Site, grid: TimeGrid) -> SiteForecast:
    """100 kW; 08:00–15:00 on Wednesday the 1st and all day on the 20th (a heat wave's
    chillers) 200 kW."""
    starts = grid.starts_local(program.timezone)
    load = np.full(len(starts), 100.0)
    for i, s in enumerate(starts):
        if (s.month, s.day) == (7, 20) or ((s.month, s.day) == (7, 1) and 8 <= s.hour < 15):
            load[i] = 200.0
    return SiteForecast(load, np.zeros(len(starts)))


@pytest.fixture
def july(example_program, monkeypatch: pytest.MonkeyPatch) -> Program:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(month_peak, "profile_forecast", hand_made_july)
    tz = example_program.timezone
    event = DREvent(
        "cs-2026-07-01",
        "cs-ci-daily",
        datetime(2026, 7, 1, 15, tzinfo=tz),
        datetime(2026, 7, 1, 18, tzinfo=tz),
    )
    return replace(example_program, events=(event,), outages=())  # type: ignore[no-any-return]


def test_the_floor_of_a_hand_made_month(july: Program) -> None:
    site, tz = july.site("school-beverly"), july.timezone
    floor = MonthPeakFloor()
    # The 1st alone: 7 h at 200 kW, (226 + 196)·0.8·0.92 = 310.592 kWh to give, 120 kW
    # each way; energy: 7·(200 − L) ≤ 310.592 → L ≥ 155.63; recharge over the 17 other
    # hours at 0.92²: 17·(L − 100)·0.8464 ≥ 7·(200 − L) → L ≥ 132.73. So 155.63 kW.
    days = daily_shaved_peaks_kw(july, site, datetime(2026, 7, 1, 8, tzinfo=tz))
    assert days[date(2026, 7, 1)] == pytest.approx(200.0 - 310.592 / 7, abs=1e-6)
    # The 20th draws 200 kW all day: no hour below it to recharge in, so it stands, and it
    # is the month's floor from the 1st to the 20th.
    assert days[date(2026, 7, 20)] == 200.0
    for day in (1, 2, 20):
        assert floor.kw(july, site, datetime(2026, 7, day, 8, tzinfo=tz)) == 200.0
    # From the 21st every day is a flat 100 kW: no room to recharge below it, so 100 kW.
    assert floor.kw(july, site, datetime(2026, 7, 21, tzinfo=tz)) == pytest.approx(100.0)
    # No demand charge: no floor.
    flat = replace(site, tariff=replace(site.tariff, demand_usd_per_kw_month=0.0))
    assert MonthPeakFloor().kw(july, flat, datetime(2026, 7, 1, 8, tzinfo=tz)) == 0.0


@pytest.mark.parametrize("valued_over", ["horizon", "month"])
def test_the_first_event_of_the_month_gets_what_the_morning_would_have_had(
    july: Program, valued_over: str
) -> None:
    site, tz = july.site("school-beverly"), july.timezone
    now = datetime(2026, 7, 1, 8, tzinfo=tz)
    # Each bus 30 kWh above its reserve: 60·0.92 = 55.2 kWh to give at the meter.
    energy = {v.vehicle_id: v.reserve_soc * v.battery_kwh + 30.0 for v in site.vehicles}
    plugged = dict.fromkeys(energy, True)
    n = 144  # 36 h from 08:00
    forecast = hand_made_july(july, site, TimeGrid(now, n, july.step))
    expected_kw = MonthPeakFloor().kw(july, site, now) if valued_over == "month" else 0.0
    context = ControlContext(
        july,
        site,
        SiteObservation(now, energy, plugged, 200.0, 0.0, peak_so_far_kw=100.0),
        forecast,
        peak_expected_kw=expected_kw,
    )
    controller = LinearProgramController("v2x-mpc")
    controller.setpoints(context)
    plan = controller.last_plan
    assert plan is not None
    fleet_kw = sum(v.power_kw for v in plan.vehicles)
    morning, event = fleet_kw[:28], fleet_kw[28:40]  # 08:00–15:00, 15:00–18:00
    if valued_over == "horizon":
        # The month so far peaked at 100 kW: every kW above it at 27 $/kW costs more than
        # the event pays for the 7 kWh that hold it, so the 55.2 kWh hold the 7-hour
        # 200 kW morning 55.2/7 = 7.886 kW lower and the event gets nothing.
        np.testing.assert_allclose(morning, -55.2 / 7, atol=1e-3)
        np.testing.assert_allclose(event, 0.0, atol=1e-3)
    else:
        # The 20th sets 200 kW anyway: the morning's 200 kW costs nothing (and leaves no
        # room to charge under the floor) and the event gets all 55.2 kWh, 18.4 kW over its
        # 3 hours.
        np.testing.assert_allclose(morning, 0.0, atol=1e-3)
        assert float(-event.mean()) == pytest.approx(55.2 / 3, abs=1e-3)
