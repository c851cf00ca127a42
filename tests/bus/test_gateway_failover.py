"""Kill -9 of one of two ``lightson gateway`` processes sharing PostgreSQL and NATS: its
stations reconnect to the other (their backup URL), commands reach every station there, and
no message a station had an answer for is missing from the database (#18)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta

import nats
from nats.errors import NoRespondersError

from lightson.bus.subjects import Command, CommandReply, command_subject
from lightson.csms.auth import hash_password
from lightson.csms.clock import AcceleratedClock
from lightson.csms.wire import OcppVersion
from lightson.emulator import EmulatedEv, EmulatedStation, Evse
from lightson.store import StationRecord, Store
from lightson.store import schema as db
from nats_support import NatsServer
from net_support import eventually, free_port, run
from pg_support import fresh_database

PASSWORD = "failover-test-password"
# The example program's chargers and their sites.
STATIONS = {
    "home-lowell-evse1": "home-lowell",
    "biz-evse1": "business-worcester",
    "biz-evse2": "business-worcester",
    "depot-evse1": "school-beverly",
    "depot-evse2": "school-beverly",
}


def _gateway(bus: str, database: str, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "lightson.cli", "gateway", "example"),
            *("--bus", bus, "--db", database, "--port", str(port)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # "gateway: chargers ..." once it listens
    assert line.startswith("gateway:"), line
    return process


def test_a_killed_gateways_stations_move_to_the_other_and_nothing_is_lost(
    nats_broker: NatsServer, postgres_cluster: str
) -> None:
    database = fresh_database(postgres_cluster)
    store = Store(database)
    for station_id in STATIONS:
        store.add_station(
            StationRecord(station_id, hash_password(PASSWORD), "2.1", "central-setpoint", 60.0)
        )
    ports = [free_port(), free_port()]
    gateways = [_gateway(nats_broker.url, database, port) for port in ports]
    urls = [f"ws://127.0.0.1:{port}/ocpp" for port in ports]
    clock = AcceleratedClock()

    async def command(client: nats.NATS, station_id: str) -> CommandReply:
        until = (clock.now() + timedelta(minutes=10)).isoformat()
        body = Command(
            "send_setpoint",
            station_id,
            STATIONS[station_id],
            1,
            {"evse_id": 1, "power_kw": 5.0, "valid_until": until},
        ).encode()
        for _ in range(100):  # until the station's new gateway has subscribed
            try:
                reply = await client.request(command_subject(station_id), body, timeout=10)
                return CommandReply.decode(reply.data)
            except NoRespondersError:
                await asyncio.sleep(0.1)
        raise AssertionError(f"no gateway holds {station_id}")

    async def scenario() -> None:
        stations = [
            EmulatedStation(
                station_id,
                PASSWORD,
                OcppVersion.V21,
                urls[n % 2],
                clock,
                {1: Evse(1, max_charge_kw=60.0, max_discharge_kw=60.0)},
                dialect="central-setpoint",
                backup_urls=[urls[1 - n % 2]],
            )
            for n, station_id in enumerate(STATIONS)
        ]
        tasks = [asyncio.create_task(s.run(reconnect_delay_s=0.1)) for s in stations]
        client = await nats.connect(nats_broker.url)
        try:
            await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in stations)), 60)
            for station in stations:
                assert await command(client, station.id) == CommandReply("Accepted")
                await station.plug_in(1, EmulatedEv(100.0, 0.5, 60.0, 60.0))
            before = {s.id: s.boots for s in stations}
            gateways[0].kill()  # SIGKILL: no goodbye to anyone
            gateways[0].wait(10)
            moved = [s for n, s in enumerate(stations) if n % 2 == 0]
            await eventually(lambda: all(s.boots > before[s.id] for s in moved), 60)
            await eventually(lambda: all(s.connected.is_set() for s in stations), 60)
            assert all(s.urls[s.url_index] == urls[1] for s in stations)
            for station in stations:
                assert await command(client, station.id) == CommandReply("Accepted")
                await station.send_meter_values()
            for station in stations:
                await eventually(lambda s=station: not s.queue, 30)  # every message answered
        finally:
            await client.close()
            for station in stations:
                await station.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # Everything a station had an answer for is in the database: each one's Started and
        # Updated events, and both setpoints each gateway stored as accepted.
        for station in stations:
            events = store.rows(db.transaction_events, station_id=station.id)
            assert {e["event_type"] for e in events} >= {"Started", "Updated"}, station.id
            sent = store.rows(db.setpoints_sent, station_id=station.id)
            assert [r["status"] for r in sent] == ["Accepted", "Accepted"], station.id

    try:
        run(scenario(), 180)
    finally:
        for process in gateways:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()
        store.close()
