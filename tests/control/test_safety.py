"""The safety layer: hand cases and invariants no requested setpoint can break."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightson.control.safety import SafetyRule, enforce_safety, operating_state
from lightson.domain.assets import (
    Building,
    Charger,
    HourlyProfile,
    PowerKind,
    Site,
    SiteKind,
    Vehicle,
)
from lightson.domain.plan import Setpoint
from lightson.domain.state import OperatingState, SiteObservation
from lightson.domain.tariffs import Tariff

NOW = datetime(2026, 7, 15, 19, tzinfo=UTC)
STEP_H = 0.25
UNTIL = NOW + timedelta(minutes=15)


def school(
    export_permitted: bool = False, service_limit_kw: float = 200.0, v2x: bool = True
) -> Site:
    buses = tuple(
        Vehicle(
            f"bus{i}",
            "thomas-jouley-226",
            f"evse{i}",
            226.0,
            soc_min=0.05,
            max_charge_kw=60.0,
            max_discharge_kw=60.0,
            v2x_capable=v2x,
            reserve_soc=0.2,
            departure_floor_soc=0.2,
        )
        for i in (1, 2)
    )
    chargers = (
        Charger("evse1", "dc-bidirectional-60", PowerKind.DC, 60.0, 60.0),
        Charger("evse2", "ac-level2-11", PowerKind.AC, 11.5, 0.0),  # charge-only
    )
    return Site(
        "school",
        SiteKind.SCHOOL,
        "national-grid",
        service_limit_kw,
        export_permitted,
        Tariff("t", 0.2),
        Building(HourlyProfile("flat", np.full(8760, 50.0))),
        chargers,
        buses,
    )


def observe(
    load_kw: float = 50.0, pv_kw: float = 0.0, energy: float = 150.0, **kw: object
) -> SiteObservation:
    fields: dict[str, object] = {
        "now": NOW,
        "energy_kwh": {"bus1": energy, "bus2": energy},
        "plugged": {"bus1": True, "bus2": True},
        "load_kw": load_kw,
        "pv_kw": pv_kw,
    }
    fields.update(kw)
    return SiteObservation(**fields)  # type: ignore[arg-type]


def powers(result) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {s.evse_id: s.power_kw for s in result.setpoints}


def test_without_export_permission_discharge_is_cut_to_the_building_load() -> None:
    result = enforce_safety(
        school(), observe(load_kw=50.0), [Setpoint("evse1", -60.0, UNTIL)], STEP_H, {}
    )
    assert powers(result) == {"evse1": pytest.approx(-50.0), "evse2": 0.0}
    assert [i.rule for i in result.interventions] == [SafetyRule.NO_EXPORT]


def test_with_export_permission_the_full_discharge_passes() -> None:
    result = enforce_safety(
        school(export_permitted=True), observe(), [Setpoint("evse1", -60.0, UNTIL)], STEP_H, {}
    )
    assert powers(result)["evse1"] == pytest.approx(-60.0)
    assert result.interventions == ()


def test_islanded_never_exports_even_with_permission() -> None:
    site = school(export_permitted=True)
    assert operating_state(site, islanded=True) is OperatingState.NON_PARALLEL
    result = enforce_safety(
        site, observe(load_kw=30.0, islanded=True), [Setpoint("evse1", -60.0, UNTIL)], STEP_H, {}
    )
    assert powers(result)["evse1"] == pytest.approx(-30.0)


def test_charge_only_equipment_and_unplugged_vehicles() -> None:
    observation = observe(plugged={"bus1": False, "bus2": True})
    result = enforce_safety(
        school(export_permitted=True),
        observation,
        [Setpoint("evse1", 20.0, UNTIL), Setpoint("evse2", -10.0, UNTIL)],
        STEP_H,
        {},
    )
    assert powers(result) == {"evse1": 0.0, "evse2": 0.0}
    assert {(i.evse_id, i.rule) for i in result.interventions} == {
        ("evse1", SafetyRule.NOT_PLUGGED),
        ("evse2", SafetyRule.EQUIPMENT_LIMIT),
    }


def test_discharge_stops_at_the_floor_of_reserve_and_next_route() -> None:
    # Floor: 20 % of 226 + a 15 kWh route = 60.2 kWh. At 65 kWh, 4.8 kWh remain above it:
    # at most 4.8 kWh × η_d / 0.25 h = 19.2 × 0.92 kW in the next 15 minutes.
    result = enforce_safety(
        school(export_permitted=True),
        observe(energy=65.0),
        [Setpoint("evse1", -60.0, UNTIL)],
        STEP_H,
        {"bus1": 15.0},
    )
    assert powers(result)["evse1"] == pytest.approx(-(65.0 - 60.2) * 0.92 / 0.25)
    assert result.interventions[0].rule is SafetyRule.VEHICLE_FLOOR


def test_in_a_declared_outage_the_floor_drops_to_the_usable_minimum() -> None:
    observation = observe(energy=65.0, islanded=True, outage_declared=True, load_kw=80.0)
    result = enforce_safety(
        school(), observation, [Setpoint("evse1", -60.0, UNTIL)], STEP_H, {"bus1": 15.0}
    )
    assert powers(result)["evse1"] == pytest.approx(-60.0)


def test_a_stale_plan_falls_back_to_charge_only() -> None:
    result = enforce_safety(
        school(export_permitted=True),
        observe(),
        [Setpoint("evse1", -40.0, UNTIL)],
        STEP_H,
        {},
        plan_stale=True,
    )
    assert powers(result)["evse1"] == 0.0
    assert result.interventions[0].rule is SafetyRule.STALE_PLAN


def test_charging_is_scaled_to_the_service_limit() -> None:
    result = enforce_safety(
        school(service_limit_kw=100.0),
        observe(load_kw=70.0, energy=100.0),
        [Setpoint("evse1", 60.0, UNTIL), Setpoint("evse2", 10.0, UNTIL)],
        STEP_H,
        {},
    )
    assert sum(powers(result).values()) == pytest.approx(30.0)
    assert powers(result)["evse1"] == pytest.approx(60.0 * 30 / 70)


def test_a_setpoint_for_an_unknown_evse_is_dropped() -> None:
    result = enforce_safety(school(), observe(), [Setpoint("evse9", 5.0, UNTIL)], STEP_H, {})
    assert powers(result) == {"evse1": 0.0, "evse2": 0.0}
    assert result.interventions[0].rule is SafetyRule.UNKNOWN_EVSE


@given(
    requests=st.lists(st.floats(-500, 500), min_size=2, max_size=2),
    load_kw=st.floats(0, 300),
    pv_kw=st.floats(0, 100),
    energy=st.floats(0, 226),
    plugged=st.lists(st.booleans(), min_size=2, max_size=2),
    export_permitted=st.booleans(),
    islanded=st.booleans(),
    outage=st.booleans(),
    stale=st.booleans(),
    next_trip=st.floats(0, 40),
)
def test_no_request_breaks_a_hard_rule(
    requests: list[float],
    load_kw: float,
    pv_kw: float,
    energy: float,
    plugged: list[bool],
    export_permitted: bool,
    islanded: bool,
    outage: bool,
    stale: bool,
    next_trip: float,
) -> None:
    site = school(export_permitted=export_permitted, service_limit_kw=150.0)
    observation = observe(
        load_kw=load_kw,
        pv_kw=pv_kw,
        energy=energy,
        islanded=islanded,
        outage_declared=outage and islanded,
        plugged={"bus1": plugged[0], "bus2": plugged[1]},
    )
    asked = [Setpoint("evse1", requests[0], UNTIL), Setpoint("evse2", requests[1], UNTIL)]
    got = powers(
        enforce_safety(
            site, observation, asked, STEP_H, {"bus1": next_trip, "bus2": next_trip}, stale
        )
    )
    tol = 1e-6
    assert -60.0 - tol <= got["evse1"] <= 60.0 + tol
    assert -tol <= got["evse2"] <= 11.5 + tol  # charge-only equipment
    for evse, is_plugged in zip(("evse1", "evse2"), plugged, strict=True):
        if not is_plugged:
            assert got[evse] == 0.0
    if stale:
        assert all(kw >= -tol for kw in got.values())
    net = load_kw - pv_kw + sum(got.values())
    if islanded or not export_permitted:
        assert net >= min(0.0, load_kw - pv_kw) - tol  # vehicles never push power out
    assert net <= max(150.0, load_kw - pv_kw) + tol
    floor = 0.05 * 226 if (outage and islanded) else max(0.2 * 226, 0.2 * 226 + next_trip)
    discharged_kwh = max(-got["evse1"], 0.0) * STEP_H / 0.92
    assert energy - discharged_kwh >= min(energy, floor) - 1e-6
    charged_kwh = max(got["evse1"], 0.0) * STEP_H * 0.92
    assert energy + charged_kwh <= max(energy, 226.0) + 1e-6


def test_a_non_v2x_vehicle_never_discharges_whatever_is_asked() -> None:
    result = enforce_safety(
        school(export_permitted=True, v2x=False),
        observe(),
        [Setpoint("evse1", -60.0, UNTIL)],
        STEP_H,
        {},
    )
    assert powers(result)["evse1"] == 0.0
    assert result.interventions[0].rule is SafetyRule.EQUIPMENT_LIMIT


def declaring(site: Site, **limits: float) -> Site:
    """The site with both buses declaring ``limits`` (kW) and both chargers bidirectional."""
    vehicles = tuple(replace(v, **limits) for v in site.vehicles)
    chargers = tuple(replace(c, max_charge_kw=60.0, max_discharge_kw=60.0) for c in site.chargers)
    return replace(site, vehicles=vehicles, chargers=chargers)


def test_a_discharge_far_below_the_declared_minimum_becomes_zero() -> None:
    # The reproduction: an EV declaring minDischargePower 1400 W was sent -230.9 W.
    site = declaring(school(export_permitted=True), min_discharge_kw=1.4)
    result = enforce_safety(site, observe(), [Setpoint("evse1", -0.2309, UNTIL)], STEP_H, {})
    assert powers(result)["evse1"] == 0.0
    assert [(i.rule, i.requested_kw, i.allowed_kw) for i in result.interventions] == [
        (SafetyRule.DECLARED_MINIMUM, -0.2309, 0.0)
    ]


def test_a_setpoint_nearer_the_minimum_than_zero_rises_to_it() -> None:
    site = declaring(school(export_permitted=True), min_charge_kw=1.0, min_discharge_kw=1.4)
    asked = [Setpoint("evse1", -1.0, UNTIL), Setpoint("evse2", 0.6, UNTIL)]
    result = enforce_safety(site, observe(), asked, STEP_H, {})
    assert powers(result) == {"evse1": -1.4, "evse2": 1.0}


def test_the_minimum_is_not_raised_past_the_battery_floor() -> None:
    # Floor 0.2 x 226 = 45.2 kWh; 0.326087 kWh above it allows 0.326087 x 0.92 / 0.25 = 1.2 kW
    # of discharge: -1.0 kW passes the floor, but its minimum (1.4 kW) would not: 0.
    site = declaring(school(export_permitted=True), min_discharge_kw=1.4)
    energy = 45.2 + 1.2 * 0.25 / 0.92
    result = enforce_safety(
        site, observe(energy=energy), [Setpoint("evse1", -1.0, UNTIL)], STEP_H, {}
    )
    assert powers(result)["evse1"] == 0.0
    assert result.interventions[-1].rule is SafetyRule.DECLARED_MINIMUM


def test_no_export_scaling_leaves_no_discharge_below_its_minimum() -> None:
    # 2 kW of load and two buses asked for 1.4 kW each: scaled in proportion both would give
    # 1.0 kW, below their 1.4 kW minimum. One stops (evse1: equal asks, the first by id) and
    # the other keeps its 1.4 kW; nothing is exported (2 - 1.4 = 0.6 kW imported).
    site = declaring(school(), min_discharge_kw=1.4)
    asked = [Setpoint("evse1", -1.4, UNTIL), Setpoint("evse2", -1.4, UNTIL)]
    result = enforce_safety(site, observe(load_kw=2.0), asked, STEP_H, {})
    assert powers(result) == {"evse1": 0.0, "evse2": -1.4}
    assert [(i.evse_id, i.rule) for i in result.interventions] == [
        ("evse1", SafetyRule.DECLARED_MINIMUM)
    ]


def test_the_service_limit_leaves_no_charge_below_its_minimum() -> None:
    # 95 kW of load under a 100 kW service: 5 kW left for 4 + 3 kW asked. In proportion
    # 2.86 and 2.14 kW; 2.14 is below the 2.5 kW minimum, so evse2 stops and evse1 keeps 4 kW.
    site = declaring(school(service_limit_kw=100.0), min_charge_kw=2.5)
    asked = [Setpoint("evse1", 4.0, UNTIL), Setpoint("evse2", 3.0, UNTIL)]
    result = enforce_safety(site, observe(load_kw=95.0, energy=100.0), asked, STEP_H, {})
    assert powers(result) == {"evse1": 4.0, "evse2": 0.0}


@given(
    requests=st.lists(st.floats(-80, 80), min_size=2, max_size=2),
    max_charge=st.floats(0, 70),
    max_discharge=st.floats(0, 70),
    min_charge=st.floats(0, 20),
    min_discharge=st.floats(0, 20),
    load_kw=st.floats(0, 150),
    pv_kw=st.floats(0, 50),
    energy=st.floats(0, 226),
    export_permitted=st.booleans(),
    islanded=st.booleans(),
)
def test_every_setpoint_is_zero_or_within_the_declared_limits(
    requests: list[float],
    max_charge: float,
    max_discharge: float,
    min_charge: float,
    min_discharge: float,
    load_kw: float,
    pv_kw: float,
    energy: float,
    export_permitted: bool,
    islanded: bool,
) -> None:
    site = declaring(
        school(export_permitted=export_permitted, service_limit_kw=100.0),
        max_charge_kw=max_charge,
        max_discharge_kw=max_discharge,
        min_charge_kw=min_charge,
        min_discharge_kw=min_discharge,
    )
    observation = observe(load_kw=load_kw, pv_kw=pv_kw, energy=energy, islanded=islanded)
    asked = [Setpoint("evse1", requests[0], UNTIL), Setpoint("evse2", requests[1], UNTIL)]
    got = powers(enforce_safety(site, observation, asked, STEP_H, {}))
    tol = 1e-6
    for kw in got.values():
        assert (
            kw == 0.0
            or min_charge - tol <= kw <= max_charge + tol
            or min_discharge - tol <= -kw <= max_discharge + tol
        )
    net = load_kw - pv_kw + sum(got.values())
    if islanded or not export_permitted:
        assert net >= min(0.0, load_kw - pv_kw) - tol
    assert net <= max(100.0, load_kw - pv_kw) + tol
