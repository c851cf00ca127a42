"""The live control loop (lightson.services.live): observe from storage, decide, send."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lightson.config import load_program
from lightson.control.grid import GridSignal
from lightson.control.safety import SafetyRule
from lightson.csms.auth import hash_password
from lightson.csms.clock import AcceleratedClock
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.csms.wire import OcppVersion
from lightson.domain.assets import Program
from lightson.domain.time import SimClock
from lightson.emulator import EmulatedEv, EmulatedStation, Evse
from lightson.physics.trips import energy_floor_kwh
from lightson.services import live as live_module
from lightson.services import live_peaks, live_plans
from lightson.services.departures import set_departure
from lightson.services.live import LiveControl
from lightson.services.live_plans import no_export_view
from lightson.store import StationRecord, Store
from lightson.store import schema as db
from lightson.store.live import station_states
from live_support import IN_EVENT, FakeSink, events_of, plugged, school
from net_support import run

PASSWORD = "correct horse battery"
SCHOOL = "school-beverly"


@pytest.fixture
def store(tmp_path: Path) -> Any:
    store = Store(f"sqlite:///{tmp_path / 'live.db'}")
    yield store
    store.close()


def test_buses_discharge_into_an_announced_event(store: Store) -> None:
    program = school()
    for station in ("depot-evse1", "depot-evse2"):
        plugged(store, station, 0.8, IN_EVENT - timedelta(minutes=2), tx=f"tx-{station}")
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    status = run(loop.tick("school-beverly"))

    assert status.mode == "grid" and status.plugged == {"bus-7": True, "bus-12": True}
    assert status.soc == {"bus-7": 0.8, "bus-12": 0.8}
    power = {s.evse_id: s.power_kw for s in status.setpoints}
    assert power["depot-evse1"] < -1.0 and power["depot-evse2"] < -1.0  # into the event
    assert all(kw >= -60.0 - 1e-6 for kw in power.values())  # the charger's rating
    # Each goes to its own station as a transaction profile, valid for two ticks.
    assert sorted((s, e, tx) for s, e, _, tx in sink.sent) == [
        ("depot-evse1", 1, "tx-depot-evse1"),
        ("depot-evse2", 1, "tx-depot-evse2"),
    ]
    assert {sp.valid_until for _, _, sp, _ in sink.sent} == {IN_EVENT + timedelta(minutes=10)}
    assert status.answers == {"depot-evse1": "Accepted", "depot-evse2": "Accepted"}


def test_without_the_event_nothing_is_exported_for_it(store: Store) -> None:
    program = school()
    for station in ("depot-evse1", "depot-evse2"):
        plugged(store, station, 0.8, IN_EVENT - timedelta(minutes=2), tx=f"tx-{station}")
    loop = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT))  # no events known
    with_event = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), events_of(program))
    quiet = run(loop.tick("school-beverly"))
    called = run(with_event.tick("school-beverly"))
    assert called.vehicles_kw < quiet.vehicles_kw - 10.0


def test_stale_readings_fall_back_to_the_charge_only_default(store: Store) -> None:
    program = school()
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=16))
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    status = run(loop.tick("school-beverly"))
    assert status.mode == "fallback"  # the only plugged vehicle is left to the default
    assert status.reason == "charge-only default: no meter values from depot-evse1 for 16 min"
    assert (
        sink.sent == [] and sink.cleared == ["depot-evse1"] and status.fallback == ("depot-evse1",)
    )


def test_one_silent_charger_falls_back_alone_and_counts_as_load(store: Store) -> None:
    program = school()
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=16), tx="a")
    plugged(store, "depot-evse2", 0.8, IN_EVENT - timedelta(minutes=1), tx="b")
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    status = run(loop.tick("school-beverly"))
    assert status.mode == "grid" and status.fallback == ("depot-evse1",)
    assert status.reason.endswith(
        "charge-only default: no meter values from depot-evse1 for 16 min"
    )
    assert sink.cleared == ["depot-evse1"] and [s for s, *_ in sink.sent] == ["depot-evse2"]
    assert [s.evse_id for s in status.setpoints] == ["depot-evse2"]
    assert status.setpoints[0].power_kw < 0  # bus-12 still serves the event


def test_a_reading_from_before_the_session_is_not_this_vehicles(store: Store) -> None:
    program = school()
    plugged(store, "depot-evse1", 0.9, IN_EVENT - timedelta(minutes=3), tx="earlier")
    ended = {
        "station_id": "depot-evse1",
        "evse_id": 1,
        "transaction_id": "earlier",
        "seq_no": 1,
        "event_type": "Ended",
        "at": IN_EVENT - timedelta(minutes=2),
        "received_at": IN_EVENT - timedelta(minutes=2),
        "payload": {},
    }
    started = {**ended, "transaction_id": "now", "seq_no": 0, "event_type": "Started"}
    started["at"] = started["received_at"] = IN_EVENT - timedelta(minutes=1)
    store.write([(db.transaction_events, ended), (db.transaction_events, started)]).result(5)
    status = run(LiveControl(program, store, FakeSink(), SimClock(IN_EVENT)).tick("school-beverly"))
    assert status.mode == "fallback"
    assert "no state of charge from depot-evse1 since its session started" in status.reason


def test_a_charger_with_nothing_plugged_gets_no_profile(store: Store) -> None:
    program = school()
    plugged(store, "depot-evse2", 0.8, IN_EVENT - timedelta(minutes=1))
    sink = FakeSink()
    status = run(LiveControl(program, store, sink, SimClock(IN_EVENT)).tick("school-beverly"))
    # A 0 kW default profile would hold back a bus that plugs in before the next tick.
    assert status.answers["depot-evse1"] == "idle"
    assert "not accepted" not in status.reason
    assert [s for s, *_ in sink.sent] == ["depot-evse2"]


def test_a_plugged_vehicle_without_state_of_charge_is_not_planned_on_a_guess(
    store: Store,
) -> None:
    program = school()
    plugged(store, "depot-evse2", 0.5, IN_EVENT)
    store.write(
        [(db.meter_samples, {"station_id": "depot-evse2", "evse_id": 1, "at": IN_EVENT})]
    ).result(5)
    status = run(LiveControl(program, store, FakeSink(), SimClock(IN_EVENT)).tick("school-beverly"))
    assert status.mode == "grid"  # the latest reading with a SoC counts, not the latest row

    empty = Store(store.url.replace("live.db", "empty.db"))
    try:
        at = IN_EVENT
        event = {
            "station_id": "depot-evse1",
            "evse_id": 1,
            "transaction_id": "t",
            "seq_no": 0,
            "event_type": "Started",
            "at": at,
            "received_at": at,
            "payload": {},
        }
        empty.write([(db.transaction_events, event)]).result(5)
        blind = run(LiveControl(program, empty, FakeSink(), SimClock(at)).tick("school-beverly"))
        assert blind.mode == "fallback"
        assert blind.reason == "charge-only default: no state of charge from depot-evse1 for bus-7"
    finally:
        empty.close()


def test_an_ended_transaction_means_unplugged_and_nothing_flows(store: Store) -> None:
    program = school()
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=5))
    ended = {
        "station_id": "depot-evse1",
        "evse_id": 1,
        "transaction_id": "tx-1",
        "seq_no": 1,
        "event_type": "Ended",
        "at": IN_EVENT,
        "received_at": IN_EVENT,
        "payload": {},
    }
    store.write([(db.transaction_events, ended)]).result(5)
    loop = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), events_of(program))
    status = run(loop.tick("school-beverly"))
    assert status.plugged == {"bus-7": False, "bus-12": False}
    assert all(s.power_kw == 0.0 for s in status.setpoints)


def test_an_outage_islands_the_site_until_the_enter_service_delay_ends(store: Store) -> None:
    program = school()
    for station in ("depot-evse1", "depot-evse2"):
        plugged(store, station, 0.8, IN_EVENT - timedelta(minutes=1), tx=f"tx-{station}")
    clock = SimClock(IN_EVENT)
    loop = LiveControl(program, store, FakeSink(), clock, events_of(program))
    loop.report_grid("school-beverly", "operator", GridSignal.LOST)
    status = run(loop.tick("school-beverly"))
    site = program.site("school-beverly")
    assert status.mode == "islanded"
    # The vehicles carry the building: what they give equals the load served, less PV.
    assert -status.vehicles_kw == pytest.approx(status.load_kw - status.pv_kw, abs=1e-6)
    assert status.load_kw > 0 and status.critical_unserved_kw == 0.0
    assert status.load_kw <= site.service_limit_kw

    loop.report_grid("school-beverly", "operator", GridSignal.RESTORED)
    clock.advance(timedelta(minutes=4))
    assert run(loop.tick("school-beverly")).mode == "islanded"  # IEEE 1547 delay: 300 s
    clock.advance(timedelta(minutes=2))
    assert run(loop.tick("school-beverly")).mode == "grid"


def test_an_offline_charger_does_not_stop_the_others(store: Store) -> None:
    program = school()
    for station in ("depot-evse1", "depot-evse2"):
        plugged(store, station, 0.8, IN_EVENT - timedelta(minutes=1), tx=f"tx-{station}")
    sink = FakeSink(offline=frozenset({"depot-evse1"}))
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    status = run(loop.tick("school-beverly"))
    assert status.answers["depot-evse1"].startswith("not sent: station 'depot-evse1'")
    assert status.answers["depot-evse2"] == "Accepted"
    assert "not accepted by depot-evse1" in status.reason
    assert [s for s, *_ in sink.sent] == ["depot-evse2"]


def test_the_floor_holds_even_in_an_event(store: Store) -> None:
    program = school()
    # bus-7 at its 20 % reserve: the event may not take it lower.
    plugged(store, "depot-evse1", 0.2, IN_EVENT - timedelta(minutes=1))
    loop = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), events_of(program))
    status = run(loop.tick("school-beverly"))
    power = {s.evse_id: s.power_kw for s in status.setpoints}
    assert power["depot-evse1"] >= -1e-6
    assert all(i.rule is not SafetyRule.NO_EXPORT for i in status.interventions)


def test_unknown_site_and_bad_interval_are_refused(store: Store) -> None:
    program = school()
    with pytest.raises(ValueError, match="every"):
        LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), every=timedelta(0))
    loop = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT))
    with pytest.raises(KeyError, match="no site 'nowhere'"):
        loop.report_grid("nowhere", "operator", GridSignal.LOST)


def test_on_loopback_the_setpoint_reaches_an_emulated_charger(tmp_path: Path) -> None:
    """CSMS + emulated OCPP 2.1 chargers + the loop: the buses discharge into the event."""
    program = school()
    clock = SimClock(IN_EVENT)
    store = Store(f"sqlite:///{tmp_path / 'csms.db'}")
    digest = hash_password(PASSWORD, salt=b"0123456789abcdef")
    for station_id in ("depot-evse1", "depot-evse2"):
        store.add_station(StationRecord(station_id, digest, "2.1", "central-setpoint", 60.0))

    async def scenario() -> None:
        async with CsmsServer(store, clock, CsmsSettings(port=0)) as server:
            stations = [
                EmulatedStation(
                    station_id,
                    PASSWORD,
                    OcppVersion.V21,
                    server.url,
                    clock,
                    {1: Evse(1, max_charge_kw=60.0, max_discharge_kw=60.0)},
                    dialect="central-setpoint",
                )
                for station_id in ("depot-evse1", "depot-evse2")
            ]
            tasks = [asyncio.create_task(s.run()) for s in stations]
            for station in stations:
                await asyncio.wait_for(station.connected.wait(), 10)
                bus = EmulatedEv(battery_kwh=226.0, soc=0.8, max_charge_kw=60, max_discharge_kw=60)
                await station.plug_in(1, bus)
                await station.send_meter_values()
            loop = LiveControl(program, store, server, clock, events_of(program))
            status = await loop.tick("school-beverly")
            assert status.mode == "grid", status.reason
            assert set(status.answers.values()) == {"Accepted"}
            for station in stations:
                station.advance(60)
                planned = next(s for s in status.setpoints if s.evse_id == station.id)
                assert station.evses[1].power_kw == pytest.approx(planned.power_kw, abs=0.05)
                assert station.evses[1].power_kw < -1.0
            for station in stations:
                await station.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    try:
        run(scenario())
    finally:
        store.close()


def test_the_loop_ticks_on_a_fixed_schedule_and_at_once_when_woken(store: Store) -> None:
    program = school()
    plugged(store, "depot-evse1", 0.8, IN_EVENT)
    # 5 simulated minutes at 3,000x: a pass every 0.1 s of wall time.
    clock = AcceleratedClock(IN_EVENT + timedelta(minutes=2), speed=3000.0)
    loop = LiveControl(program, store, FakeSink(), clock, every=timedelta(minutes=5))
    passes: list[datetime] = []
    woken: list[datetime] = []
    tick_all, tick = loop.tick_all, loop.tick

    in_pass = False

    async def counted_pass() -> Any:
        nonlocal in_pass
        passes.append(clock.now())
        in_pass = True
        try:
            return await tick_all()
        finally:
            in_pass = False

    async def counted_tick(site_id: str) -> Any:
        if not in_pass:  # a tick of its own, not one of a pass
            woken.append(clock.now())
        return await tick(site_id)

    loop.tick_all = counted_pass  # type: ignore[method-assign]

    async def scenario() -> None:
        task = asyncio.create_task(loop.run(speed=3000.0))
        # Woken every 0.02 s of wall time: the passes must keep their times all the same.
        for _ in range(30):
            await asyncio.sleep(0.02)
            loop.wake("school-beverly")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    loop.tick = counted_tick  # type: ignore[method-assign]
    run(scenario())
    # The first pass, then more on schedule although woken all along (a timer reset by
    # every wake would never fire again).
    assert len(passes) >= 2
    assert len(woken) >= 10
    # The schedule: multiples of 5 minutes of the clock, whatever time the loop started.
    at = IN_EVENT + timedelta(minutes=2, seconds=10)
    assert loop._next_due(at) == IN_EVENT + timedelta(minutes=5)
    assert loop._next_due(IN_EVENT + timedelta(minutes=5)) == IN_EVENT + timedelta(minutes=10)


def test_a_woken_site_ticks_long_before_its_time(store: Store) -> None:
    program = school()
    clock = AcceleratedClock(IN_EVENT)
    slow = LiveControl(program, store, FakeSink(), clock, every=timedelta(hours=1))

    async def scenario() -> tuple[int, int]:
        task = asyncio.create_task(slow.run())
        await asyncio.sleep(0.1)
        before = slow.ticks
        await asyncio.to_thread(slow.wake, "school-beverly")  # as the API's threads do
        await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return before, slow.ticks

    assert run(scenario()) == (1, 2)


def test_a_failing_site_falls_back_and_the_loop_goes_on(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = load_program("example")
    real = live_module.station_states

    def broken(store: Store, ids: Any) -> Any:
        if "depot-evse1" in ids:
            raise RuntimeError("the disk is full")
        return real(store, ids)

    monkeypatch.setattr(live_module, "station_states", broken)
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    statuses = {s.site_id: s for s in run(loop.tick_all())}
    school_status = statuses["school-beverly"]
    assert school_status.mode == "fallback"
    assert school_status.reason == "control error: RuntimeError: the disk is full"
    assert sorted(sink.cleared) == ["depot-evse1", "depot-evse2"]
    assert statuses["business-worcester"].mode == "grid"  # the others went on


def test_a_setpoint_holds_two_intervals_and_the_floor_is_sized_for_them(store: Store) -> None:
    program = school()
    site = program.site("school-beverly")
    bus = next(v for v in site.vehicles if v.evse_id == "depot-evse1")
    floor_kwh = energy_floor_kwh(bus, 0.0, True)
    soc = (floor_kwh + 10.0) / bus.battery_kwh  # 10 kWh above its floor
    plugged(store, "depot-evse1", soc, IN_EVENT - timedelta(minutes=1))
    loop = LiveControl(
        program,
        store,
        FakeSink(),
        SimClock(IN_EVENT),
        events_of(program),
        every=timedelta(minutes=15),
    )
    status = run(loop.tick("school-beverly"))
    (setpoint,) = [s for s in status.setpoints if s.evse_id == "depot-evse1"]
    assert setpoint.valid_until == IN_EVENT + timedelta(minutes=30)
    # Held 30 minutes, 10 kWh above the floor allow 20 kW (x efficiency), not the 40 kW one
    # 15-minute step would.
    assert setpoint.power_kw == pytest.approx(-10.0 * bus.discharge_efficiency / 0.5, abs=1e-6)
    assert any(i.rule is SafetyRule.VEHICLE_FLOOR for i in status.interventions)


def test_without_export_permission_and_a_meter_the_loop_assumes_little_load() -> None:
    site = load_program("example").site("home-lowell")
    # 30 % of the load is critical at this home; its 6 kW of PV count in full while sunny.
    assert no_export_view(site, 2.0, 0.5) == (pytest.approx(0.6), 6.0)
    assert no_export_view(site, 2.0, 0.0) == (pytest.approx(0.6), 0.0)
    assert no_export_view(site, 2.0, 6.5) == (pytest.approx(0.6), 6.5)


def test_a_no_export_site_discharges_at_most_its_critical_load(store: Store) -> None:
    program = load_program("example")
    program = replace(program, sites=(program.site("business-worcester"),))
    for station in ("biz-evse1", "biz-evse2"):
        plugged(store, station, 0.9, IN_EVENT - timedelta(minutes=1), tx=station)
    loop = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), events_of(program))
    status = run(loop.tick("business-worcester"))
    site = program.site("business-worcester")
    critical_kw = site.building.tiers.critical_share * status.load_kw
    assert status.vehicles_kw < -1.0  # it serves the event
    assert -status.vehicles_kw <= critical_kw - status.pv_kw + 1e-6


def test_a_declared_outage_survives_a_restart(store: Store) -> None:
    program = school()
    clock = SimClock(IN_EVENT)
    first = LiveControl(program, store, FakeSink(), clock)
    first.report_grid(
        "school-beverly", "api:staff", GridSignal.LOST, released_vehicles=frozenset({"bus-7"})
    )
    again = LiveControl(program, store, FakeSink(), clock)  # the server restarted
    assert again.islanded("school-beverly")
    assert again._sites["school-beverly"].released == frozenset({"bus-7"})
    again.report_grid("school-beverly", "api:staff", GridSignal.RESTORED)
    clock.advance(timedelta(minutes=6))
    third = LiveControl(program, store, FakeSink(), clock)
    assert not third.islanded("school-beverly")  # restored, and the 5-minute delay is over
    rows = store.rows(db.grid_signals)
    assert [(r["signal"], r["released_vehicles"]) for r in rows] == [
        ("lost", ["bus-7"]),
        ("restored", []),
    ]


def test_a_release_is_for_one_outage(store: Store) -> None:
    program = school()
    clock = SimClock(IN_EVENT)
    loop = LiveControl(program, store, FakeSink(), clock)
    loop.report_grid(
        "school-beverly", "api", GridSignal.LOST, released_vehicles=frozenset({"bus-7"})
    )
    loop.report_grid(
        "school-beverly", "meter", GridSignal.LOST, released_vehicles=frozenset({"bus-12"})
    )
    assert loop._sites["school-beverly"].released == frozenset({"bus-7", "bus-12"})
    for source in ("api", "meter"):
        loop.report_grid("school-beverly", source, GridSignal.RESTORED)
    clock.advance(timedelta(hours=1))
    loop.report_grid("school-beverly", "api", GridSignal.LOST)  # the next storm, no release
    assert loop._sites["school-beverly"].released == frozenset()
    again = LiveControl(program, store, FakeSink(), clock)  # replayed after a restart
    assert again._sites["school-beverly"].released == frozenset()
    assert again.islanded("school-beverly")


def test_a_departure_the_owner_asks_for_beats_the_event(store: Store) -> None:
    program = school()
    site = program.site("school-beverly")
    for station in ("depot-evse1", "depot-evse2"):
        plugged(store, station, 0.8, IN_EVENT - timedelta(minutes=2), tx=f"tx-{station}")
    # bus-7 leaves in an hour and a half, 95 % full (a field trip the program file does not know).
    set_departure(
        store, site, "bus-7", IN_EVENT + timedelta(minutes=90), 0.95, "beverly-schools", IN_EVENT
    )
    loop = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), events_of(program))
    power = {s.evse_id: s.power_kw for s in run(loop.tick("school-beverly")).setpoints}
    assert power["depot-evse1"] > 1.0  # it charges for the trip, event or not
    assert power["depot-evse2"] < -1.0  # bus-12 still serves the event
    # Cleared: back to the usual trips (summer break: none), so it discharges again.
    set_departure(store, site, "bus-7", None, None, "beverly-schools", IN_EVENT)
    power = {s.evse_id: s.power_kw for s in run(loop.tick("school-beverly")).setpoints}
    assert power["depot-evse1"] < -1.0


def test_a_departure_the_vehicle_asks_for_over_iso_15118_counts(store: Store) -> None:
    program = school()
    for station in ("depot-evse1", "depot-evse2"):
        plugged(store, station, 0.5, IN_EVENT - timedelta(minutes=2), tx=f"tx-{station}")
    needs = {
        "station_id": "depot-evse1",
        "evse_id": 1,
        "at": IN_EVENT - timedelta(minutes=2),
        "departure": IN_EVENT + timedelta(hours=1),
        "energy_request_kwh": 90.0,  # 0.5 x 226 + 90 = 203 kWh at departure: about 90 %
        "bidirectional": True,
    }
    store.write([(db.charging_needs, needs)]).result(5)
    clock = SimClock(IN_EVENT)
    loop = LiveControl(program, store, FakeSink(), clock, events_of(program))
    status = run(loop.tick("school-beverly"))
    power = {s.evse_id: s.power_kw for s in status.setpoints}
    assert power["depot-evse1"] == pytest.approx(60.0, abs=1e-6)  # all it can, and not enough
    assert power["depot-evse2"] < -1.0
    controller = loop._sites["school-beverly"].controller
    asked = loop._departures(
        program.site("school-beverly"),
        station_states(store, ["depot-evse1", "depot-evse2"]),
        IN_EVENT,
    )
    # 203 kWh to leave with, 45.2 kWh of it the departure floor: 157.8, to the half kWh.
    assert asked == {"bus-7": (IN_EVENT + timedelta(hours=1), 158.0)}
    # As it charges, the need stays what it was asked for (it counts from the SoC then):
    # no new plan at the next tick.
    plan = controller.last_plan  # type: ignore[attr-defined]
    clock.advance(timedelta(minutes=15))
    battery = {v.vehicle_id: v.battery_kwh for v in program.site("school-beverly").vehicles}
    readings = [  # both buses where the plan said they would be
        (
            db.meter_samples,
            {
                "station_id": vehicle.evse_id,
                "evse_id": 1,
                "at": clock.now(),
                "soc": float(vehicle.energy_kwh[0]) / battery[vehicle.vehicle_id],
            },
        )
        for vehicle in plan.vehicles
    ]
    store.write(readings).result(5)
    run(loop.tick("school-beverly"))
    assert controller.plans_made == 1  # type: ignore[attr-defined]


def test_charging_needs_of_an_earlier_car_do_not_count_for_the_next(store: Store) -> None:
    program = school()
    needs = {
        "station_id": "depot-evse1",
        "evse_id": 1,
        "at": IN_EVENT - timedelta(hours=3),  # the car before, in another session
        "departure": IN_EVENT + timedelta(hours=1),
        "energy_request_kwh": 90.0,
        "bidirectional": True,
    }
    store.write([(db.charging_needs, needs)]).result(5)
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=2), tx="now")
    loop = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), events_of(program))
    states = station_states(store, ["depot-evse1", "depot-evse2"])
    assert loop._departures(program.site("school-beverly"), states, IN_EVENT) == {}


def with_site(program: Program, site_id: str, **changes: Any) -> Program:
    return replace(program, sites=(replace(program.site(site_id), **changes),))


def test_a_silent_chargers_default_counts_against_the_service_limit(store: Store) -> None:
    program = school()
    plugged(store, "depot-evse1", 0.5, IN_EVENT - timedelta(minutes=16), tx="a")  # silent
    plugged(store, "depot-evse2", 0.5, IN_EVENT - timedelta(minutes=1), tx="b")
    probe = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), controller="unmanaged")
    load_kw = run(probe.tick("school-beverly")).load_kw
    # 90 kW of room above the building: bus-7's default may take 60, so bus-12 gets 30.
    tight = with_site(program, "school-beverly", service_limit_kw=load_kw + 90.0)
    loop = LiveControl(tight, store, FakeSink(), SimClock(IN_EVENT), controller="unmanaged")
    status = run(loop.tick("school-beverly"))
    assert [(s.evse_id, s.power_kw) for s in status.setpoints] == [
        ("depot-evse2", pytest.approx(30.0, abs=1e-6))
    ]
    assert any(i.rule is SafetyRule.SERVICE_LIMIT for i in status.interventions)


def test_islanded_a_silent_charger_is_held_at_zero_not_left_to_charge(store: Store) -> None:
    program = school()
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=16), tx="a")  # silent
    plugged(store, "depot-evse2", 0.8, IN_EVENT - timedelta(minutes=1), tx="b")
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    loop.report_grid("school-beverly", "meter", GridSignal.LOST)
    status = run(loop.tick("school-beverly"))
    assert status.mode == "islanded" and sink.cleared == []  # the default would charge
    sent = {station: setpoint.power_kw for station, _, setpoint, _ in sink.sent}
    assert sent["depot-evse1"] == 0.0
    # bus-12 alone carries what the building's tiers need: nothing added for bus-7.
    assert -status.vehicles_kw == pytest.approx(status.load_kw - status.pv_kw, abs=1e-6)


def test_the_no_export_view_does_not_loosen_the_service_limit(store: Store) -> None:
    program = load_program("example")
    program = replace(program, sites=(program.site("business-worcester"),))
    for station in ("biz-evse1", "biz-evse2"):
        plugged(store, station, 0.3, IN_EVENT - timedelta(minutes=1), tx=station)
    probe = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), controller="unmanaged")
    load_kw = run(probe.tick("business-worcester")).load_kw
    tight = with_site(program, "business-worcester", service_limit_kw=load_kw + 5.0)
    loop = LiveControl(tight, store, FakeSink(), SimClock(IN_EVENT), controller="unmanaged")
    status = run(loop.tick("business-worcester"))
    # The import check uses the forecast load, not the no-export rule's cautious 30 % of it.
    assert status.vehicles_kw == pytest.approx(5.0, abs=1e-6)


def test_a_release_reported_during_a_tick_is_kept(store: Store) -> None:
    program = school()
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=1))
    loop = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), events_of(program))
    peak = loop._peak

    def outage_meanwhile(live: Any, now: Any) -> float:  # the API reports it mid-tick
        loop.report_grid(
            "school-beverly", "api", GridSignal.LOST, released_vehicles=frozenset({"bus-7"})
        )
        return peak(live, now)

    loop._peak = outage_meanwhile  # type: ignore[method-assign]
    run(loop.tick("school-beverly"))
    assert loop._grid_now(loop._sites["school-beverly"], IN_EVENT) == (True, frozenset({"bus-7"}))


def test_outages_declared_before_the_api_spoke_as_one_source_can_be_ended(store: Store) -> None:
    row = {
        "site_id": "school-beverly",
        "source": "api:alice",  # as stored before 2026-11-29
        "signal": "lost",
        "at": IN_EVENT - timedelta(hours=1),
        "released_vehicles": [],
    }
    store.write([(db.grid_signals, row)]).result(5)
    loop = LiveControl(school(), store, FakeSink(), SimClock(IN_EVENT))
    assert loop.grid_losses("school-beverly")[0] == frozenset({"api"})


def test_a_battery_far_from_the_plan_makes_the_site_re_plan(store: Store) -> None:
    program = school()
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=2))
    clock = SimClock(IN_EVENT)
    loop = LiveControl(program, store, FakeSink(), clock, events_of(program))
    run(loop.tick("school-beverly"))
    controller = loop._sites["school-beverly"].controller
    plan = controller.last_plan  # type: ignore[attr-defined]
    assert controller.plans_made == 1  # type: ignore[attr-defined]
    bus = next(v for v in plan.vehicles if v.vehicle_id == "bus-7")
    # 15 minutes on, the reading is what the plan expected: no new plan.
    clock.advance(timedelta(minutes=15))
    expected_soc = float(bus.energy_kwh[0]) / 226.0
    reading = {"station_id": "depot-evse1", "evse_id": 1, "at": clock.now(), "soc": expected_soc}
    store.write([(db.meter_samples, reading)]).result(5)
    run(loop.tick("school-beverly"))
    assert controller.plans_made == 1  # type: ignore[attr-defined]
    # Then the charger turns out not to have followed: 10 % of the battery off plan.
    clock.advance(timedelta(minutes=1))
    off = {**reading, "at": clock.now(), "soc": expected_soc + 0.10}
    store.write([(db.meter_samples, off)]).result(5)
    run(loop.tick("school-beverly"))
    assert controller.plans_made == 2  # type: ignore[attr-defined]


def test_with_a_site_meter_the_no_export_rule_uses_what_it_measured(store: Store) -> None:
    program = load_program("example")
    program = replace(program, sites=(program.site("business-worcester"),))
    for station in ("biz-evse1", "biz-evse2"):
        plugged(store, station, 0.9, IN_EVENT - timedelta(minutes=1), tx=station)
    meter = {
        "site_id": "business-worcester",
        "at": IN_EVENT - timedelta(minutes=1),
        "load_kw": 8.0,
        "pv_kw": 0.0,
        "received_at": IN_EVENT,
    }
    store.write([(db.site_meter, meter)]).result(5)
    loop = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), events_of(program))
    status = run(loop.tick("business-worcester"))
    assert status.load_source == "meter" and status.load_kw == 8.0
    # The two EV9s could give 23 kW; the building measured 8 kW, all of which they may cover
    # (the plan itself took the metered load for the interval under way).
    assert -status.vehicles_kw == pytest.approx(8.0, abs=1e-6)


def test_a_metered_load_far_from_the_plans_forecast_makes_the_site_re_plan(
    store: Store,
) -> None:
    program = school()
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=2))
    clock = SimClock(IN_EVENT)
    loop = LiveControl(program, store, FakeSink(), clock, events_of(program))
    forecast_kw = run(loop.tick("school-beverly")).load_kw
    controller = loop._sites["school-beverly"].controller
    limit = program.site("school-beverly").service_limit_kw
    clock.advance(timedelta(minutes=1))
    near = {
        "site_id": "school-beverly",
        "at": clock.now(),
        "load_kw": forecast_kw + 0.02 * limit,  # within 5 % of the service limit
        "received_at": clock.now(),
    }
    store.write([(db.site_meter, near)]).result(5)
    run(loop.tick("school-beverly"))
    assert controller.plans_made == 1  # type: ignore[attr-defined]
    clock.advance(timedelta(minutes=1))
    far = {**near, "at": clock.now(), "load_kw": forecast_kw + 0.10 * limit}
    store.write([(db.site_meter, far)]).result(5)
    run(loop.tick("school-beverly"))
    assert controller.plans_made == 2  # type: ignore[attr-defined]
    # The new plan took the metered load for the interval under way: the same offset a
    # minute later makes no third plan (nor a stored plan at every tick).
    clock.advance(timedelta(minutes=1))
    store.write([(db.site_meter, {**far, "at": clock.now()})]).result(5)
    run(loop.tick("school-beverly"))
    assert controller.plans_made == 2  # type: ignore[attr-defined]
    assert len(store.rows(db.plans)) == 2


def test_the_months_peak_is_what_was_metered_not_only_the_profile(store: Store) -> None:
    """With nothing recorded the month's peak so far is the profile's (building less PV).
    Once an interval in which the site meter read 900 kW has ended, and one ``every`` more
    has passed (late readings count), the controller plans with that peak; a new month
    starts again."""
    from lightson.forecast.profiles import profile_peak_so_far_kw

    program = school()
    site = program.site("school-beverly")
    assert site.tariff.demand_usd_per_kw_month > 0
    clock = SimClock(IN_EVENT)
    loop = LiveControl(program, store, FakeSink(), clock, events_of(program))
    controller = loop._sites["school-beverly"].controller
    seen: list[float] = []
    plan_with = controller.setpoints

    def spy(context: Any) -> Any:
        seen.append(context.observation.peak_so_far_kw)
        return plan_with(context)

    controller.setpoints = spy  # type: ignore[method-assign]
    start = loop._step_start(IN_EVENT)
    run(loop.tick("school-beverly"))
    profile_kw = profile_peak_so_far_kw(program, site, start - loop.every)
    assert seen[-1] == pytest.approx(profile_kw) and profile_kw < 900.0
    readings = [
        {
            "site_id": "school-beverly",
            "at": start + timedelta(minutes=minute),
            "load_kw": 900.0 if minute < 15 else 100.0,  # the next interval reads low
            "pv_kw": 0.0,
            "received_at": start + timedelta(minutes=minute),
        }
        for minute in range(0, 30, 5)
    ]
    store.write([(db.site_meter, r) for r in readings]).result(5)
    clock.advance(timedelta(minutes=15))  # the interval has just ended: not read yet
    run(loop.tick("school-beverly"))
    assert seen[-1] == pytest.approx(profile_kw)
    clock.advance(timedelta(minutes=5))
    run(loop.tick("school-beverly"))
    assert seen[-1] == pytest.approx(900.0)
    clock.advance(datetime(2026, 8, 1, 4, 30, tzinfo=UTC) - clock.now())  # 00:30 EDT, 1 Aug
    run(loop.tick("school-beverly"))
    assert seen[-1] < 900.0  # August's own intervals only
    assert loop._sites["school-beverly"].peak.month == (2026, 8)  # type: ignore[union-attr]


def test_plans_older_than_the_retention_are_deleted_once_an_hour(store: Store) -> None:
    """keep_plans (lightson serve --keep-plans-days): a plan older than it goes when the next
    plan is stored, at most once an hour; the newer ones stay."""
    program = school()
    old = {
        "site_id": "school-beverly",
        "start": IN_EVENT,
        "step_s": 900,
        "controller": "v2x-mpc",
        "solve_time_s": 0.01,
        "site_net_kw": [],
        "vehicles": [],
    }
    store.write(
        [(db.plans, old | {"made_at": IN_EVENT - timedelta(days=days)}) for days in (40, 31, 29)]
    ).result(5)
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=2))
    clock = SimClock(IN_EVENT)
    loop = LiveControl(
        program, store, FakeSink(), clock, events_of(program), keep_plans=timedelta(days=30)
    )
    run(loop.tick("school-beverly"))  # plans, stores the plan, deletes the 40- and 31-day ones
    made = sorted(r["made_at"] for r in store.rows(db.plans))
    assert made == [IN_EVENT - timedelta(days=29), IN_EVENT]
    # Ten minutes on, a plug-in makes a new plan; a 31-day-old plan written meanwhile
    # stays until an hour has passed since the last pruning.
    stale = IN_EVENT - timedelta(days=31)
    store.write([(db.plans, old | {"made_at": stale})]).result(5)
    clock.advance(timedelta(minutes=10))
    plugged(store, "depot-evse2", 0.7, clock.now() - timedelta(minutes=1))
    run(loop.tick("school-beverly"))
    assert stale in {r["made_at"] for r in store.rows(db.plans)}
    clock.advance(timedelta(minutes=61))  # the hourly re-plan, over an hour after the pruning
    for station in ("depot-evse1", "depot-evse2"):  # fresh readings: nothing falls back
        reading = {"station_id": station, "evse_id": 1, "power_kw": 0.0, "soc": 0.7}
        store.write([(db.meter_samples, reading | {"at": clock.now()})]).result(5)
    run(loop.tick("school-beverly"))
    made = {r["made_at"] for r in store.rows(db.plans)}
    assert stale not in made
    assert made == {IN_EVENT - timedelta(days=29), IN_EVENT, *sorted(made)[-2:]}
    assert len(made) == 4  # 29 days and 71 minutes old is still within the 30 days


def test_a_failing_peak_reading_or_pruning_does_not_stop_the_site(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The month's peak and the old plans' deletion are bookkeeping: when the database
    refuses them the site still plans and sends setpoints (it does not fall back)."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(live_peaks, "measured_net_kw", refuse)
    monkeypatch.setattr(live_plans, "prune_plans", refuse)
    program = school()
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=2))
    sink = FakeSink()
    loop = LiveControl(
        program, store, sink, SimClock(IN_EVENT), events_of(program), keep_plans=timedelta(days=1)
    )
    status = run(loop.tick("school-beverly"))
    assert status.mode == "grid", status.reason
    assert loop._sites["school-beverly"].controller.plans_made == 1  # type: ignore[attr-defined]


def test_islanded_setpoints_hold_through_a_restart_over_a_zero_watt_default(
    store: Store,
) -> None:
    """Islanded: every charger of the site gets the 0 W default once, and setpoints that hold
    (on and off line) for the islanded hold; back on the grid the charge-only default
    returns and setpoints hold two intervals again."""
    program = school()
    clock = SimClock(IN_EVENT)
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=1), tx="a")
    plugged(store, "depot-evse2", 0.8, IN_EVENT - timedelta(minutes=1), tx="b")
    loop: LiveControl | None = None
    sink = FakeSink(islanded=lambda _station: loop is not None and loop.islanded(SCHOOL))
    loop = LiveControl(program, store, sink, clock, events_of(program))
    loop.report_grid(SCHOOL, "meter", GridSignal.LOST)
    status = run(loop.tick(SCHOOL))
    assert status.mode == "islanded"
    assert sorted(sink.defaults) == [("depot-evse1", True), ("depot-evse2", True)]
    assert sink.max_offline_s == [1800, 1800]
    assert {s.valid_until for _, _, s, _ in sink.sent} == {IN_EVENT + timedelta(minutes=30)}
    run(loop.tick(SCHOOL))
    assert len(sink.defaults) == 2  # sent once, not every tick
    loop.station_connected("depot-evse2")  # it came back: what it holds is not known
    run(loop.tick(SCHOOL))
    assert sink.defaults[2:] == [("depot-evse2", True)]
    loop.report_grid(SCHOOL, "meter", GridSignal.RESTORED)
    clock.advance(timedelta(minutes=6))  # past the enter-service delay
    sink.sent.clear()
    sink.max_offline_s.clear()
    status = run(loop.tick(SCHOOL))
    assert status.mode == "grid"
    assert sorted(sink.defaults[3:]) == [("depot-evse1", False), ("depot-evse2", False)]
    assert set(sink.max_offline_s) == {None}  # the CSMS's usual maxOfflineDuration
    assert {s.valid_until for _, _, s, _ in sink.sent} == {clock.now() + loop.hold()}


def test_islanded_a_silent_charger_that_holds_its_setpoint_is_left_to_it(store: Store) -> None:
    """After a restart the readings a charger queued may not be in yet: it still holds an
    islanded setpoint (sized for its battery over the whole hold), so it is left to carry
    what it carries and the other bus gives only the rest; nothing is set to 0."""
    program = school()
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=20), tx="a")  # silent
    plugged(store, "depot-evse2", 0.8, IN_EVENT - timedelta(minutes=1), tx="b")
    held = {
        "station_id": "depot-evse1",
        "evse_id": 1,
        "power_kw": -20.0,
        "power_w_sent": -20000.0,
        "valid_until": IN_EVENT + timedelta(minutes=10),
        "sent_at": IN_EVENT - timedelta(minutes=20),
        "status": "Accepted",
    }
    earlier = {**held, "sent_at": IN_EVENT - timedelta(minutes=40), "power_kw": -50.0}
    store.write([(db.setpoints_sent, earlier)]).result(5)
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    loop.report_grid(SCHOOL, "meter", GridSignal.LOST)
    status = run(loop.tick(SCHOOL))
    # Sent before this car's session began: it went with the earlier car's transaction.
    assert status.answers["depot-evse1"] != "held"
    store.write([(db.setpoints_sent, held)]).result(5)
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    loop.report_grid(SCHOOL, "meter", GridSignal.LOST)
    status = run(loop.tick(SCHOOL))
    assert status.answers["depot-evse1"] == "held"
    assert [station for station, *_ in sink.sent] == ["depot-evse2"]
    given_kw = -sink.sent[0][2].power_kw
    assert given_kw + 20.0 == pytest.approx(status.load_kw - status.pv_kw, abs=1e-6)
    assert "not accepted" not in status.reason


def test_an_islanded_tick_that_fails_leaves_the_chargers_on_their_setpoints(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = school()
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    loop.report_grid(SCHOOL, "meter", GridSignal.LOST)

    def broken(*_: Any) -> Any:
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(live_module, "station_states", broken)
    status = run(loop.tick(SCHOOL))
    assert status.mode == "islanded" and "database unreachable" in status.reason
    assert sink.cleared == []  # cleared, they would drop to the default and the lights go out
    # The failure came before the 0 W default went out: it goes out all the same.
    assert sorted(station for station, _ in sink.defaults) == ["depot-evse1", "depot-evse2"]


class RefusingSink(FakeSink):
    """Stations that accept their default but refuse every setpoint."""

    async def send_setpoint(self, *args: Any, **kwargs: Any) -> str:
        await super().send_setpoint(*args, **kwargs)
        return "Rejected"


def test_islanded_a_refused_setpoint_is_cleared_down_to_the_zero_watt_default(
    store: Store,
) -> None:
    """A charger that refuses its islanded setpoint may still hold a charging one from before
    the outage: cleared, its 0 W default applies. Not before that default is in place."""
    program = school()
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=1), tx="a")
    plugged(store, "depot-evse2", 0.8, IN_EVENT - timedelta(minutes=1), tx="b")
    sink = RefusingSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    loop.report_grid(SCHOOL, "meter", GridSignal.LOST)
    status = run(loop.tick(SCHOOL))
    assert set(status.answers.values()) == {"Rejected"}
    assert sorted(sink.cleared) == ["depot-evse1", "depot-evse2"]
    sink = RefusingSink(offline=frozenset())
    sink.install_default = lambda _station: _no()  # type: ignore[method-assign]
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    run(loop.tick(SCHOOL))
    assert sink.cleared == []  # its default may still be the charge-only one


async def _no() -> str:
    return "Rejected"


def test_a_reading_from_a_charger_that_could_not_be_planned_replans_its_site(
    store: Store,
) -> None:
    """After our restart a charger's queued readings come in after its reconnection: the first
    one with a state of charge makes the site plan again at once, not at its next tick."""
    from lightson.domain.telemetry import MeterSample

    program = school()
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=20), tx="a")  # silent
    plugged(store, "depot-evse2", 0.8, IN_EVENT - timedelta(minutes=1), tx="b")
    loop = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), events_of(program))
    run(loop.tick(SCHOOL))
    assert loop._woken_for == set()
    loop.reading_arrived(MeterSample("depot-evse1", 1, IN_EVENT, power_kw=0.0))  # no SoC
    loop.reading_arrived(MeterSample("depot-evse2", 1, IN_EVENT, soc=0.8))  # was planned
    assert loop._woken_for == set()
    loop.reading_arrived(MeterSample("depot-evse1", 1, IN_EVENT, soc=0.8))
    assert loop._woken_for == {SCHOOL}
    loop._woken_for.clear()
    loop.reading_arrived(MeterSample("depot-evse1", 1, IN_EVENT, soc=0.8))  # once per tick
    assert loop._woken_for == set()


def test_the_loop_plans_on_the_site_forecasts_it_is_given(store: Store) -> None:
    """#16: with ``forecasts`` the plan's load and PV come from them, not the profile."""
    from lightson.domain.state import SiteForecast

    asked: list[tuple[str, datetime, int]] = []

    class Forecasts:
        def forecast(self, site: Any, grid: Any) -> SiteForecast:
            import numpy as np

            asked.append((site.site_id, grid.start, grid.n_steps))
            return SiteForecast(np.full(grid.n_steps, 123.0), np.zeros(grid.n_steps))

    program = school()
    for station in ("depot-evse1", "depot-evse2"):
        plugged(store, station, 0.8, IN_EVENT - timedelta(minutes=2), tx=f"tx-{station}")
    loop = LiveControl(
        program,
        store,
        FakeSink(),
        SimClock(IN_EVENT),
        forecasts=Forecasts(),  # type: ignore[arg-type]
    )
    run(loop.tick(SCHOOL))
    assert asked and asked[0][0] == SCHOOL
    assert asked[0][1] <= IN_EVENT < asked[0][1] + program.step
