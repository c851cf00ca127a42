"""The live loop with a charger that vanished mid-session (issue #14, group 3): once the
CSMS closes its transaction, its vehicle is no longer planned and the site's other chargers
get their plan instead of ``setpoint 0``."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from lightson.config import load_program
from lightson.csms.auth import hash_password
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.csms.wire import OcppVersion
from lightson.domain.assets import Program
from lightson.domain.time import SimClock
from lightson.emulator import EmulatedEv, EmulatedStation, Evse
from lightson.services.live import LiveControl
from lightson.store import StationRecord, Store
from live_support import IN_EVENT

PASSWORD = "correct horse battery"
STATIONS = ("depot-evse1", "depot-evse2")


def school(service_limit_kw: float | None = None) -> Program:
    program = load_program("example")
    site = program.site("school-beverly")
    if service_limit_kw is not None:
        site = replace(site, service_limit_kw=service_limit_kw)
    return replace(program, sites=(site,))


def test_a_vanished_chargers_vehicle_stops_holding_back_the_others(tmp_path: Path) -> None:
    clock = SimClock(IN_EVENT)
    store = Store(f"sqlite:///{tmp_path / 'live.db'}")
    digest = hash_password(PASSWORD, salt=b"0123456789abcdef")
    for station_id in STATIONS:
        store.add_station(StationRecord(station_id, digest, "2.1", "central-setpoint", 60.0))
    # The sweeper is driven by hand below (no real-time wait decides what the test sees).
    settings = CsmsSettings(port=0, offline_check_every_s=3600.0)

    async def scenario() -> None:
        async with CsmsServer(store, clock, settings) as server:
            stations = {
                station_id: EmulatedStation(
                    station_id,
                    PASSWORD,
                    OcppVersion.V21,
                    server.url,
                    clock,
                    {1: Evse(1, max_charge_kw=60.0, max_discharge_kw=60.0)},
                    dialect="central-setpoint",
                )
                for station_id in STATIONS
            }
            tasks = [asyncio.create_task(s.run()) for s in stations.values()]
            for station in stations.values():
                await asyncio.wait_for(station.connected.wait(), 10)
                await station.plug_in(1, EmulatedEv(226.0, 0.5, 60.0, 60.0))
                await station.send_meter_values()
            vanished, left = stations["depot-evse1"], stations["depot-evse2"]
            await vanished.stop()  # no StopTransaction, no Ended: it is just gone
            await asyncio.sleep(0.1)
            clock.advance(timedelta(minutes=16))
            await left.send_meter_values()

            probe = LiveControl(school(), store, server, clock, controller="unmanaged")
            load_kw = (await probe.tick("school-beverly")).load_kw
            # 60 kW of room above the building: what one bus charger may draw.
            tight = school(service_limit_kw=load_kw + 60.0)
            loop = LiveControl(tight, store, server, clock, controller="unmanaged")

            before = await loop.tick("school-beverly")  # the reproduction
            assert before.plugged == {"bus-7": True, "bus-12": True}
            assert [(s.evse_id, s.power_kw) for s in before.setpoints] == [
                ("depot-evse2", pytest.approx(0.0, abs=1e-6))
            ]

            await server.reconciler.sweep()  # 16 min > offline_close_after_s (15)
            after = await loop.tick("school-beverly")
            assert after.plugged == {"bus-7": False, "bus-12": True}
            assert after.fallback == ()
            assert after.answers == {"depot-evse1": "idle", "depot-evse2": "Accepted"}
            assert (
                "depot-evse1: transaction closed by the CSMS (CsmsOffline: the station was "
                "not connected for 16 min"
            ) in after.reason
            power = {s.evse_id: s.power_kw for s in after.setpoints}
            assert power["depot-evse2"] == pytest.approx(60.0, abs=1e-6)
            left.advance(60)
            assert left.evses[1].power_kw == pytest.approx(60.0, abs=1e-6)

            await left.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        store.close()
