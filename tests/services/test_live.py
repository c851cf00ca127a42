"""The live control loop (lightson.services.live): observe from storage, decide, send."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lightson.config import load_program
from lightson.control.grid import GridSignal
from lightson.control.safety import SafetyRule
from lightson.csms.auth import hash_password
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.csms.wire import OcppVersion
from lightson.domain.assets import Program, Site
from lightson.domain.demand_response import DREvent
from lightson.domain.time import SimClock
from lightson.emulator import EmulatedEv, EmulatedStation, Evse
from lightson.services.live import LiveControl
from lightson.store import StationRecord, Store
from lightson.store import schema as db
from live_support import IN_EVENT, FakeSink, plugged

T = TypeVar("T")
PASSWORD = "correct horse battery"


def school() -> Program:
    program = load_program("example")
    return replace(program, sites=(program.site("school-beverly"),))


def events_of(program: Program) -> Any:
    def events(site: Site) -> tuple[DREvent, ...]:
        return tuple(e for e in program.events if e.program_id in site.enrollments)

    return events


def run(work: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(work, 60)

    return asyncio.run(bounded())


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
    assert status.mode == "fallback"
    assert status.reason == "no meter values from depot-evse1 for 16 min"
    assert sink.sent == [] and sorted(sink.cleared) == ["depot-evse1", "depot-evse2"]


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
        assert blind.reason == "no state of charge from depot-evse1 for bus-7"
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


def test_the_loop_ticks_every_interval_and_at_once_when_woken(store: Store) -> None:
    program = school()
    plugged(store, "depot-evse1", 0.8, IN_EVENT)
    clock = SimClock(IN_EVENT)
    loop = LiveControl(program, store, FakeSink(), clock, every=timedelta(minutes=5))

    async def scenario() -> tuple[int, int, int]:
        # 5 simulated minutes at 3,000x: a tick every 0.1 s of wall time.
        task = asyncio.create_task(loop.run(speed=3000.0))
        await asyncio.sleep(0.35)
        timed = loop.ticks
        slow = LiveControl(program, store, FakeSink(), clock, every=timedelta(hours=1))
        slow_task = asyncio.create_task(slow.run())
        await asyncio.sleep(0.05)
        before = slow.ticks
        slow.wake("school-beverly")
        await asyncio.sleep(0.2)
        for t in (task, slow_task):
            t.cancel()
        await asyncio.gather(task, slow_task, return_exceptions=True)
        return timed, before, slow.ticks

    timed, before, after = run(scenario())
    assert timed >= 2  # the first tick, then at least one more at the interval
    assert (before, after) == (1, 2)  # woken: one more tick long before the hour


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
