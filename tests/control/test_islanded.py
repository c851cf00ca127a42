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


def _with_minimums(site, min_discharge_kw: float = 0.0, min_charge_kw: float = 0.0):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    vehicles = tuple(
        replace(v, min_discharge_kw=min_discharge_kw, min_charge_kw=min_charge_kw)
        for v in site.vehicles
    )
    return replace(site, vehicles=vehicles)


def _decide(site, observation: SiteObservation, held_kw: float = 0.0):  # type: ignore[no-untyped-def]
    from lightson.control.controllers import Unmanaged
    from lightson.control.step import decide

    return decide(
        site,
        observation,
        {},
        0.25,
        UNTIL,
        controller=Unmanaged(),
        context=lambda _: None,  # type: ignore[arg-type,return-value]
        islanded=True,
        held_supply_kw=held_kw,
    )


def test_declared_minimums_pick_the_buses_and_what_cannot_be_served_is_said(
    example_program,
) -> None:  # type: ignore[no-untyped-def]
    """Both buses declare 20 kW of minimum discharge. 30 kW of load: one bus gives all 30
    (not 15 + 15, which the minimums forbid, nor 0 + 20 reported as served). 18 kW: no bus
    can run that low, and the status says the critical load is not carried."""
    school = _with_minimums(example_program.site("school-beverly"), min_discharge_kw=20.0)
    energy = {"bus-7": 200.0, "bus-12": 180.0}
    decision = _decide(school, _observe(30.0, 0.0, energy))
    assert sorted(s.power_kw for s in decision.setpoints) == [pytest.approx(-30.0), 0.0]
    assert decision.tier is LoadTier.FULL and decision.critical_unserved_kw == 0.0
    decision = _decide(school, _observe(18.0, 0.0, energy))
    assert [s.power_kw for s in decision.setpoints] == [0.0, 0.0]
    assert decision.tier is None
    assert decision.critical_unserved_kw == pytest.approx(0.2 * 18.0)


def test_islanded_a_charge_minimum_is_never_a_reason_to_import(example_program) -> None:  # type: ignore[no-untyped-def]
    """5 kW of PV beyond the load and a bus that takes at least 8 kW: it takes none (raised to
    8 kW it would draw 3 kW the island does not have)."""
    school = _with_minimums(example_program.site("school-beverly"), min_charge_kw=8.0)
    decision = _decide(school, _observe(10.0, 15.0, {"bus-7": 100.0, "bus-12": 100.0}))
    assert [s.power_kw for s in decision.setpoints] == [0.0, 0.0]


def test_what_a_held_setpoint_gives_carries_load_and_is_no_surplus_to_charge_from(
    example_program,  # type: ignore[no-untyped-def]
) -> None:
    """bus-7 is silent, holding -30 kW; the building draws 20 kW: bus-12 gives nothing and
    takes nothing (charging it from bus-7 would move energy from one bus to another)."""
    school = example_program.site("school-beverly")
    observation = _observe(
        20.0, 0.0, {"bus-7": 200.0, "bus-12": 180.0}, {"bus-7": False, "bus-12": True}
    )
    decision = _decide(school, observation, held_kw=30.0)
    assert [s.power_kw for s in decision.setpoints] == [0.0, 0.0]
    decision = _decide(school, replace_load(observation, 50.0), held_kw=30.0)
    assert [s.power_kw for s in decision.setpoints] == [0.0, pytest.approx(-20.0)]
    assert decision.tier is LoadTier.FULL


def replace_load(observation: SiteObservation, load_kw: float) -> SiteObservation:
    from dataclasses import replace

    return replace(observation, load_kw=load_kw)


@given(
    load_kw=st.floats(0.0, 200.0),
    pv_kw=st.floats(0.0, 80.0),
    held_kw=st.floats(0.0, 40.0),
    min_discharge_kw=st.floats(0.0, 50.0),
    min_charge_kw=st.floats(0.0, 30.0),
    soc=st.tuples(st.floats(0.1, 1.0), st.floats(0.1, 1.0)),
    plugged=st.tuples(st.booleans(), st.booleans()),
)
def test_islanded_setpoints_keep_minimums_import_nothing_and_report_what_they_serve(
    example_program,  # type: ignore[no-untyped-def]
    load_kw: float,
    pv_kw: float,
    held_kw: float,
    min_discharge_kw: float,
    min_charge_kw: float,
    soc: tuple[float, float],
    plugged: tuple[bool, bool],
) -> None:
    school = _with_minimums(example_program.site("school-beverly"), min_discharge_kw, min_charge_kw)
    energy = {v.vehicle_id: s * v.battery_kwh for v, s in zip(school.vehicles, soc, strict=True)}
    states = {v.vehicle_id: p for v, p in zip(school.vehicles, plugged, strict=True)}
    decision = _decide(school, _observe(load_kw, pv_kw, energy, states), held_kw)
    vehicles_kw = sum(s.power_kw for s in decision.setpoints)
    served_kw = decision.observation.load_kw
    for setpoint in decision.setpoints:
        kw = setpoint.power_kw
        minimum = min_charge_kw if kw > 0 else min_discharge_kw
        assert kw == 0.0 or abs(kw) >= minimum - 1e-6, (setpoint, minimum)
    # No grid: what is served and charged comes from PV, the held setpoint and the buses.
    assert served_kw + vehicles_kw <= pv_kw + held_kw + 1e-6
    assert served_kw <= load_kw + 1e-6
    critical_kw = school.building.tiers.critical_share * load_kw
    assert decision.critical_unserved_kw == pytest.approx(max(critical_kw - served_kw, 0.0))


def test_share_discharge_by_hand() -> None:
    from lightson.control.islanded import share_discharge

    give = {"a": 60.0, "b": 30.0}
    # No minimums: in proportion to what each can give.
    assert share_discharge(45.0, give, {}) == {"a": pytest.approx(30.0), "b": pytest.approx(15.0)}
    # Minimums 20 and 10: each its minimum, then the 20 kW left in proportion to the room
    # above it (40 and 20 kW).
    shares = share_discharge(50.0, give, {"a": 20.0, "b": 10.0})
    assert shares == {"a": pytest.approx(20 + 20 * 40 / 60), "b": pytest.approx(10 + 20 * 20 / 60)}
    # 25 kW: both minimums (30) give too much; the most able alone gives it.
    assert share_discharge(25.0, give, {"a": 20.0, "b": 10.0}) == {"a": 25.0, "b": 0.0}
    # 15 kW: below a's minimum; b alone.
    assert share_discharge(15.0, give, {"a": 20.0, "b": 10.0}) == {"a": 0.0, "b": 15.0}
    # More than both can give: all they can.
    assert share_discharge(200.0, give, {"a": 20.0}) == {"a": 60.0, "b": 30.0}
