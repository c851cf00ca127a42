"""Islanded operation: tiers shed in order, routes kept, nothing exported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightson.control.islanded import islanded_setpoints
from lightson.domain.assets import LoadTier
from lightson.domain.state import SiteObservation
from lightson.physics.trips import outage_floor_kwh

NOW = datetime(2026, 7, 16, 14, tzinfo=UTC)
UNTIL = NOW + timedelta(minutes=15)


def _observe(
    load_kw: float, pv_kw: float, energy: dict[str, float], plugged: dict[str, bool] | None = None
) -> SiteObservation:
    return SiteObservation(
        NOW,
        energy,
        plugged or dict.fromkeys(energy, True),
        load_kw,
        pv_kw,
        islanded=True,
        outage_declared=True,
    )


def test_a_full_bus_carries_the_whole_school_when_it_can(example_program) -> None:  # type: ignore[no-untyped-def]
    school = example_program.site("school-beverly")  # tiers: critical 20 %, essential 50 %
    decision = islanded_setpoints(
        school, _observe(100.0, 0.0, {"bus-7": 200.0, "bus-12": 180.0}), 0.25, {}, UNTIL
    )
    assert decision.tier is LoadTier.FULL and decision.served_kw == 100.0
    # Shared in proportion to what each bus can give (both 60 kW limited here): 50/50.
    assert [s.power_kw for s in decision.setpoints] == [pytest.approx(-50.0), pytest.approx(-50.0)]


def test_tiers_are_shed_in_order_when_power_runs_short(example_program) -> None:  # type: ignore[no-untyped-def]
    school = example_program.site("school-beverly")
    # One bus plugged: 60 kW. Load 150 kW: full 150 > 60, essential 75 > 60, critical 30 fits.
    observation = _observe(
        150.0, 0.0, {"bus-7": 200.0, "bus-12": 180.0}, {"bus-7": True, "bus-12": False}
    )
    decision = islanded_setpoints(school, observation, 0.25, {}, UNTIL)
    assert decision.tier is LoadTier.CRITICAL and decision.served_kw == pytest.approx(30.0)
    assert decision.critical_unserved_kw == 0.0
    # With 20 kW of PV, essential (75) needs 55 from the bus: the power fits, but the bus's
    # 173.6 kWh (above its floor, after losses) are less than 8 h of the 30 kW critical load,
    # so it keeps them for the critical load; with a 4-hour target it serves essential.
    with_pv = _observe(150.0, 20.0, observation.energy_kwh, dict(observation.plugged))
    assert islanded_setpoints(school, with_pv, 0.25, {}, UNTIL).tier is LoadTier.CRITICAL
    decision = islanded_setpoints(school, with_pv, 0.25, {}, UNTIL, backup_target_h=4.0)
    assert decision.tier is LoadTier.ESSENTIAL and decision.served_kw == pytest.approx(75.0)


def test_a_bus_keeps_its_next_route_and_the_shortfall_is_reported(example_program) -> None:  # type: ignore[no-untyped-def]
    school = example_program.site("school-beverly")
    bus7 = school.vehicles[0]
    floor = outage_floor_kwh(bus7, 15.0)
    assert floor == pytest.approx(0.05 * 226 + 15.0)
    # 2 kWh above its floor: at most 2 × 0.92 / 0.25 = 7.36 kW; critical 30 kW goes short.
    observation = _observe(150.0, 0.0, {"bus-7": floor + 2.0, "bus-12": 0.0})
    decision = islanded_setpoints(school, observation, 0.25, {"bus-7": 15.0}, UNTIL)
    assert decision.tier is None
    assert decision.served_kw == pytest.approx(7.36)
    assert decision.critical_unserved_kw == pytest.approx(30.0 - 7.36)


@given(
    load_kw=st.floats(0, 400),
    pv_kw=st.floats(0, 200),
    e7=st.floats(0, 226),
    e12=st.floats(0, 196),
    plugged=st.lists(st.booleans(), min_size=2, max_size=2),
)
def test_islanded_supply_never_exceeds_the_served_load(
    example_program, load_kw, pv_kw, e7, e12, plugged
) -> None:  # type: ignore[no-untyped-def]
    school = example_program.site("school-beverly")
    observation = _observe(
        load_kw, pv_kw, {"bus-7": e7, "bus-12": e12}, {"bus-7": plugged[0], "bus-12": plugged[1]}
    )
    decision = islanded_setpoints(school, observation, 0.25, {}, UNTIL)
    vehicles_kw = sum(s.power_kw for s in decision.setpoints)
    assert decision.served_kw <= load_kw + 1e-9
    if decision.served_kw > pv_kw:  # vehicles cover exactly the rest: balanced, nothing out
        assert decision.served_kw - pv_kw + vehicles_kw == pytest.approx(0.0, abs=1e-6)
    else:  # PV surplus: vehicles may soak some of it up, never add to it
        assert -1e-9 <= vehicles_kw <= pv_kw - decision.served_kw + 1e-6
    for setpoint, is_plugged in zip(decision.setpoints, plugged, strict=True):
        if not is_plugged:
            assert setpoint.power_kw == 0.0
