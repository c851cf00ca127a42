"""The gateway role over NATS: commands reach the emulated station it holds, fences are
checked, an absent station gets "no responders", a bad body gets an error reply (#18)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import nats
import pytest
from nats.errors import NoRespondersError

from lightson.bus.subjects import Command, CommandReply, command_subject
from lightson.config import load_program
from lightson.csms.auth import hash_password
from lightson.csms.clock import AcceleratedClock
from lightson.csms.server import CsmsSettings
from lightson.csms.wire import OcppVersion
from lightson.emulator import EmulatedStation, Evse
from lightson.roles.gateway import GatewayRole
from lightson.store import StationRecord, Store
from lightson.store import schema as db
from nats_support import NatsServer
from net_support import eventually, run
from pg_support import fresh_database

PASSWORD = "gateway-test-password"
STATION = "depot-evse1"  # at school-beverly in the example program


@pytest.fixture
def store(postgres_cluster: str) -> Store:
    store = Store(fresh_database(postgres_cluster))
    store.add_station(
        StationRecord(STATION, hash_password(PASSWORD), "2.1", "central-setpoint", 60.0)
    )
    yield store  # type: ignore[misc]
    store.close()


def _station(url: str) -> EmulatedStation:
    return EmulatedStation(
        STATION,
        PASSWORD,
        OcppVersion.V21,
        url,
        AcceleratedClock(),
        {1: Evse(1, max_charge_kw=60.0, max_discharge_kw=60.0)},
        dialect="central-setpoint",
    )


def _default_limit_w(station: EmulatedStation) -> float:
    defaults = [p for p in station.profiles.values() if p.purpose == "TxDefaultProfile"]
    periods = defaults[0].payload["chargingSchedule"][0]["chargingSchedulePeriod"]
    return float(periods[0]["limit"])


def _setpoint(fence: int, power_kw: float = -12.5) -> Command:
    until = (AcceleratedClock().now() + timedelta(minutes=10)).isoformat()
    args = {"evse_id": 1, "power_kw": power_kw, "valid_until": until}
    return Command("send_setpoint", STATION, "school-beverly", fence, args)


async def _ask(client: nats.NATS, body: bytes) -> CommandReply:
    reply = await client.request(command_subject(STATION), body, timeout=10)
    return CommandReply.decode(reply.data)


def test_commands_reach_the_station_through_the_gateway(
    nats_broker: NatsServer, store: Store
) -> None:
    role = GatewayRole(
        load_program("example"),
        store,
        AcceleratedClock(),
        nats_broker.url,
        CsmsSettings(port=0),
    )

    async def scenario() -> None:
        client = await nats.connect(nats_broker.url)
        woken: list[tuple[str, dict[str, str], int]] = []

        async def on_site(message: nats.aio.msg.Msg) -> None:
            stored = len(store.rows(db.meter_samples, station_id=STATION))
            woken.append((message.subject, json.loads(message.data), stored))

        await client.subscribe("lightson.site.school-beverly.*", cb=on_site)
        async with role.running():
            # Nobody holds the station yet: NATS says so at once.
            with pytest.raises(NoRespondersError):
                await client.request(command_subject(STATION), _setpoint(1).encode(), 5)
            station = _station(role.csms.url)
            task = asyncio.create_task(station.run())
            try:
                await asyncio.wait_for(station.connected.wait(), 30)
                await eventually(lambda: STATION in role.gateway.subscriptions, 10)  # type: ignore[union-attr]
                assert await _ask(client, _setpoint(5).encode()) == CommandReply("Accepted")
                assert 200 in station.profiles  # TxDefaultProfile at EVSE 1: 199 + 1
                sent = store.rows(db.setpoints_sent, station_id=STATION)
                assert [(r["power_kw"], r["status"]) for r in sent] == [(-12.5, "Accepted")]
                # A deposed holder's lower fence is refused; the station hears nothing.
                assert await _ask(client, _setpoint(3).encode()) == CommandReply(
                    "Rejected", "fenced"
                )
                assert len(store.rows(db.setpoints_sent, station_id=STATION)) == 1
                clear = Command("clear_profiles", STATION, "school-beverly", 5, {"evse_id": 1})
                assert (await _ask(client, clear.encode())).status == "Accepted"
                # Bad bodies: an error reply each, and the gateway goes on serving.
                bad = [
                    b"not json",
                    b"[1, 2]",
                    json.dumps({"op": "explode", "station_id": STATION}).encode(),
                    Command("clear_profiles", "biz-evse1", "school-beverly", 5).encode(),
                    Command("clear_profiles", STATION, "home-lowell", 5).encode(),
                    _setpoint(5, power_kw="lots").encode(),  # type: ignore[arg-type]
                ]
                for body in bad:
                    reply = await _ask(client, body)
                    assert reply.status == "Rejected"
                    assert (reply.error or "").startswith("bad_command"), reply
                assert await _ask(client, _setpoint(5, 7.0).encode()) == CommandReply("Accepted")
                # The worker's sink nests the setpoint (subjects.setpoint_args on its branch).
                flat = _setpoint(5, 9.0)
                nested = {
                    "evse_id": 1,
                    "setpoint": {
                        "evse_id": STATION,
                        "power_kw": 9.0,
                        "valid_until": flat.args["valid_until"],
                    },
                    "transaction_id": None,
                    "max_offline_s": 600,
                }
                command = Command("send_setpoint", STATION, "school-beverly", 5, nested)
                assert await _ask(client, command.encode()) == CommandReply("Accepted")
                powers = [r["power_kw"] for r in store.rows(db.setpoints_sent, station_id=STATION)]
                assert powers == [-12.5, 7.0, 9.0]
                # Wake-ups: connected at once; meter only after the readings are stored.
                await eventually(lambda: any(w[0].endswith(".connected") for w in woken))
                await station.send_meter_values()  # no transaction: nothing to send
                from lightson.emulator import EmulatedEv

                await station.plug_in(1, EmulatedEv(100.0, 0.5, 60.0, 60.0))
                await eventually(lambda: any(w[0].endswith(".meter") for w in woken), 10)
                meter = next(w for w in woken if w[0].endswith(".meter"))
                assert meter[1] == {"station_id": STATION} and meter[2] >= 1
                # It drops: the gateway lets go of its subject.
                await station.stop()
                await eventually(lambda: STATION not in role.csms.sessions, 10)
                await eventually(lambda: not role.gateway.subscriptions, 10)  # type: ignore[union-attr]
                with pytest.raises(NoRespondersError):
                    await client.request(command_subject(STATION), _setpoint(5).encode(), 5)
            finally:
                await station.stop()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await client.close()

    run(scenario(), 90)


def test_a_station_booting_at_an_islanded_site_gets_the_0_w_default(
    nats_broker: NatsServer, store: Store
) -> None:
    clock = AcceleratedClock()
    store.write(
        [
            (
                db.grid_signals,
                {
                    "site_id": "school-beverly",
                    "source": "meter:main",
                    "signal": "lost",
                    "at": clock.now() - timedelta(minutes=5),
                    "released_vehicles": [],
                },
            )
        ]
    ).result(10)
    role = GatewayRole(load_program("example"), store, clock, nats_broker.url, CsmsSettings(port=0))

    async def scenario() -> float:
        async with role.running():
            station = _station(role.csms.url)
            task = asyncio.create_task(station.run())
            try:
                await asyncio.wait_for(station.connected.wait(), 30)
                await eventually(lambda: station.profiles, 10)
                return _default_limit_w(station)
            finally:
                await station.stop()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    assert run(scenario(), 60) == 0.0
