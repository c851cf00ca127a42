"""Controllers: the registry, re-planning triggers and the peak guard."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest

from lightson.control.controllers import (
    CONTROLLERS,
    ControlContext,
    LinearProgramController,
    guard_peak,
)
from lightson.domain.errors import UnknownNameError
from lightson.domain.plan import Setpoint
from lightson.domain.state import SiteForecast, SiteObservation


def _context(
    program,
    site_id: str,
    now: datetime,
    energy: dict[str, float],
    plugged: dict[str, bool],
    load_kw: float = 50.0,
    peak_kw: float = 0.0,
    n: int = 96,
) -> ControlContext:  # type: ignore[no-untyped-def]
    site = program.site(site_id)
    observation = SiteObservation(now, energy, plugged, load_kw, 0.0, peak_so_far_kw=peak_kw)
    return ControlContext(program, site, observation, SiteForecast(np.full(n, 50.0), np.zeros(n)))


def test_the_registry_names_the_four_controllers_and_refuses_others() -> None:
    assert list(CONTROLLERS) == ["unmanaged", "smart-charge", "v2x-mpc", "perfect-foresight"]
    with pytest.raises(
        UnknownNameError, match="unknown controller 'greedy'; known: perfect-foresight"
    ):
        CONTROLLERS.lookup("greedy")


def test_unmanaged_stops_at_full(example_program) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 7, 15, tzinfo=example_program.timezone)
    context = _context(
        example_program,
        "school-beverly",
        now,
        {"bus-7": 226.0, "bus-12": 100.0},
        {"bus-7": True, "bus-12": True},
    )
    setpoints = CONTROLLERS["unmanaged"]().setpoints(context)
    assert [s.power_kw for s in setpoints] == [0.0, 60.0]


def test_the_mpc_replans_on_the_hour_on_plug_changes_and_on_new_events(example_program) -> None:  # type: ignore[no-untyped-def]
    controller = LinearProgramController("v2x-mpc")
    now = datetime(2026, 7, 15, tzinfo=example_program.timezone)
    energy = {"bus-7": 150.0, "bus-12": 120.0}
    plugged = {"bus-7": True, "bus-12": True}
    without_events = replace(example_program, events=())
    controller.setpoints(_context(without_events, "school-beverly", now, energy, plugged))
    controller.setpoints(
        _context(without_events, "school-beverly", now + timedelta(minutes=15), energy, plugged)
    )
    assert controller.plans_made == 1
    controller.setpoints(
        _context(
            without_events,
            "school-beverly",
            now + timedelta(minutes=30),
            energy,
            {"bus-7": False, "bus-12": True},
        )
    )
    assert controller.plans_made == 2
    controller.setpoints(
        _context(
            example_program,
            "school-beverly",
            now + timedelta(minutes=45),
            energy,
            {"bus-7": False, "bus-12": True},
        )
    )
    assert controller.plans_made == 3  # the event became known
    controller.setpoints(
        _context(
            example_program,
            "school-beverly",
            now + timedelta(minutes=105),
            energy,
            {"bus-7": False, "bus-12": True},
        )
    )
    assert controller.plans_made == 4  # an hour after the last plan


def test_the_peak_guard_cuts_charging_then_discharges(example_program) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 7, 15, tzinfo=example_program.timezone)
    until = now + timedelta(minutes=15)
    plugged = {"bus-7": True, "bus-12": True}
    planned = [Setpoint("depot-evse1", 40.0, until), Setpoint("depot-evse2", 10.0, until)]
    # Load came in at 120 kW against a cap of 150 kW: 20 kW too much; the larger charge is cut.
    context = _context(
        example_program,
        "school-beverly",
        now,
        {"bus-7": 150.0, "bus-12": 120.0},
        plugged,
        load_kw=120.0,
    )
    guarded = guard_peak(context, planned, cap_kw=150.0, allow_discharge=True)
    assert [s.power_kw for s in guarded] == [pytest.approx(20.0), pytest.approx(10.0)]
    # At 200 kW of load: all charging stops and the buses give 50 kW between them.
    context = _context(
        example_program,
        "school-beverly",
        now,
        {"bus-7": 150.0, "bus-12": 120.0},
        plugged,
        load_kw=200.0,
    )
    guarded = guard_peak(context, planned, cap_kw=150.0, allow_discharge=True)
    assert sum(s.power_kw for s in guarded) == pytest.approx(-50.0)
    assert all(s.power_kw >= -60.0 for s in guarded)
    charge_only = guard_peak(context, planned, cap_kw=150.0, allow_discharge=False)
    assert [s.power_kw for s in charge_only] == [0.0, 0.0]


def test_the_mpc_replans_when_a_vehicles_power_limits_change(example_program) -> None:  # type: ignore[no-untyped-def]
    controller = LinearProgramController("v2x-mpc")
    now = datetime(2026, 7, 15, 9, tzinfo=example_program.timezone)
    energy, plugged = {"bus-7": 120.0, "bus-12": 100.0}, {"bus-7": True, "bus-12": True}
    context = _context(example_program, "school-beverly", now, energy, plugged)
    controller.setpoints(context)
    controller.setpoints(context)
    assert controller.plans_made == 1
    site = context.site
    bus7 = replace(site.vehicles[0], max_discharge_kw=0.0)  # its charger refused to discharge
    limited = replace(context, site=replace(site, vehicles=(bus7, site.vehicles[1])))
    controller.setpoints(limited)
    assert controller.plans_made == 2
    bus7 = replace(bus7, min_charge_kw=5.0)  # a minimum changes the plan's site too
    controller.setpoints(replace(limited, site=replace(site, vehicles=(bus7, site.vehicles[1]))))
    assert controller.plans_made == 3
