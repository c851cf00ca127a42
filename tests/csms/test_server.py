"""The CSMS and the emulator on loopback, for OCPP 2.1, 2.0.1 and 1.6J."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.headers import build_authorization_basic

from lightson.csms.auth import hash_password
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.csms.wire import OcppVersion
from lightson.domain.plan import Setpoint
from lightson.domain.time import SimClock
from lightson.emulator import EmulatedEv, EmulatedStation, Evse
from lightson.store import StationRecord, Store
from lightson.store import schema as db
from net_support import eventually, run

START = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
PASSWORD_HASH = hash_password(PASSWORD, salt=b"0123456789abcdef")


@asynccontextmanager
async def csms(
    tmp_path: Path,
    clock: SimClock,
    settings: CsmsSettings | None = None,
    **stations: tuple[str, str],
) -> AsyncIterator[CsmsServer]:
    """A server on a free loopback port with stations ``id=(version, dialect)``."""
    store = Store(f"sqlite:///{tmp_path / 'csms.db'}")
    for station_id, (version, dialect) in stations.items():
        store.add_station(StationRecord(station_id, PASSWORD_HASH, version, dialect, 60.0))
    server = CsmsServer(store, clock, settings or CsmsSettings(port=0))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        store.close()


def emulated(
    server: CsmsServer,
    station_id: str,
    version: OcppVersion,
    dialect: str,
    clock: SimClock,
    password: str = PASSWORD,
) -> EmulatedStation:
    return EmulatedStation(
        station_id,
        password,
        version,
        server.url,
        clock,
        {1: Evse(1, max_charge_kw=60.0, max_discharge_kw=60.0)},
        dialect=dialect,
    )


BUS = EmulatedEv(battery_kwh=226.0, soc=0.8, max_charge_kw=60.0, max_discharge_kw=60.0)

CASES = [
    (OcppVersion.V21, "central-setpoint"),
    (OcppVersion.V201, "negative-limit"),
    (OcppVersion.V16, "negative-limit"),
]


@pytest.mark.parametrize(("version", "dialect"), CASES, ids=lambda c: getattr(c, "value", c))
def test_boot_transaction_needs_discharge_and_meter_values(
    tmp_path: Path, version: OcppVersion, dialect: str
) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1=(version.value, dialect)) as server:
            station = emulated(server, "cs1", version, dialect, clock)
            task = asyncio.create_task(station.run())
            await asyncio.wait_for(station.connected.wait(), 10)
            # The charge-only default profile arrives after boot.
            default = await eventually(lambda: station.profiles.get(1))
            assert default.purpose == "TxDefaultProfile" and default.stack_level == 0

            await station.plug_in(1, EmulatedEv(**vars(BUS)))
            await eventually(lambda: station.evses[1].transaction_id)
            started = server.store.rows(db.transaction_events, station_id="cs1")
            assert [row["event_type"] for row in started] == ["Started"]
            assert station.session is not None
            answers = [json.loads(f) for f in station.session.received]
            token_info = "idTagInfo" if version is OcppVersion.V16 else "idTokenInfo"
            assert {"status": "Accepted"} in [a[2].get(token_info) for a in answers if a[0] == 3]

            needs = server.store.rows(db.charging_needs, station_id="cs1")
            if version is OcppVersion.V16:
                assert needs == []  # 1.6 has no NotifyEVChargingNeeds
            else:
                assert needs[0]["bidirectional"] is (version is OcppVersion.V21)
                assert needs[0]["max_discharge_kw"] == (
                    60.0 if version is OcppVersion.V21 else None
                )

            setpoint = Setpoint("bus-1", -45.0, START + timedelta(minutes=15))
            transaction_id = station.evses[1].transaction_id
            status = await server.send_setpoint("cs1", 1, setpoint, transaction_id)
            assert status == "Accepted"

            clock.advance(timedelta(minutes=1))
            station.advance(60)
            assert station.evses[1].power_kw == pytest.approx(-45.0)
            await station.send_meter_values()
            samples = server.store.rows(db.meter_samples, station_id="cs1")
            assert samples[-1]["power_kw"] == pytest.approx(-45.0)
            assert samples[-1]["energy_exported_kwh"] == pytest.approx(0.75)
            assert samples[-1]["soc"] == pytest.approx(0.8 - 0.75 / 226, abs=1e-3)
            sent = server.store.rows(db.setpoints_sent, station_id="cs1")
            assert [(r["power_w_sent"], r["status"]) for r in sent] == [(-45000.0, "Accepted")]

            await station.unplug(1)
            events = server.store.rows(db.transaction_events, station_id="cs1")
            assert events[-1]["event_type"] == "Ended"
            await station.stop()
            task.cancel()

    run(scenario())


def test_the_exact_v2x_frame_a_2_1_station_receives(tmp_path: Path) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, v2x=("2.1", "central-setpoint")) as server:
            station = emulated(server, "v2x", OcppVersion.V21, "central-setpoint", clock)
            task = asyncio.create_task(station.run())
            await asyncio.wait_for(station.connected.wait(), 10)
            await station.plug_in(1, EmulatedEv(**vars(BUS)))
            assert station.session is not None
            await server.send_setpoint(
                "v2x", 1, Setpoint("bus", -11.0, START + timedelta(minutes=15)), "v2x-1"
            )
            frames = [json.loads(f) for f in station.session.received]
            profile_calls = [f for f in frames if f[0] == 2 and f[2] == "SetChargingProfile"]
            assert profile_calls[-1][3] == {
                "evseId": 1,
                "chargingProfile": {
                    "id": 100,
                    "stackLevel": 1,
                    "chargingProfilePurpose": "TxProfile",
                    "chargingProfileKind": "Absolute",
                    "validTo": "2026-07-15T19:15:00Z",
                    "transactionId": "v2x-1",
                    "maxOfflineDuration": 300,
                    "invalidAfterOfflineDuration": True,
                    "chargingSchedule": [
                        {
                            "id": 100,
                            "startSchedule": "2026-07-15T19:00:00Z",
                            "chargingRateUnit": "W",
                            "chargingSchedulePeriod": [
                                {
                                    "startPeriod": 0,
                                    "operationMode": "CentralSetpoint",
                                    "setpoint": -11000.0,
                                    "dischargeLimit": -11000.0,
                                }
                            ],
                        }
                    ],
                },
            }
            # The server learned what the station can do from its device model.
            assert server.sessions["v2x"].v2x_operation_modes == (
                "Idle",
                "ChargingOnly",
                "CentralSetpoint",
            )
            await station.stop()
            task.cancel()

    run(scenario())


def test_a_charge_only_station_is_never_sent_a_discharge(tmp_path: Path) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, ac=("2.0.1", "charge-only")) as server:
            station = emulated(server, "ac", OcppVersion.V201, "charge-only", clock)
            task = asyncio.create_task(station.run())
            await asyncio.wait_for(station.connected.wait(), 10)
            await station.plug_in(1, EmulatedEv(**vars(BUS)))
            await server.send_setpoint(
                "ac", 1, Setpoint("car", -7.0, START + timedelta(minutes=15)), "ac-1"
            )
            station.advance(60)
            assert station.evses[1].power_kw == 0.0
            sent = server.store.rows(db.setpoints_sent, station_id="ac")
            assert sent[0]["power_w_sent"] == 0.0 and sent[0]["power_kw"] == -7.0
            await station.stop()
            task.cancel()

    run(scenario())


@pytest.mark.parametrize("who", ["wrong-password", "unknown-id"])
def test_wrong_credentials_get_401_and_no_session(tmp_path: Path, who: str) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1=("2.0.1", "negative-limit")) as server:
            station_id = "cs1" if who == "wrong-password" else "cs-unknown"
            password = "guess" if who == "wrong-password" else PASSWORD
            station = emulated(
                server, station_id, OcppVersion.V201, "negative-limit", clock, password=password
            )
            await station.run()
            assert station.refused == 401
            assert server.sessions == {} and server.rejected_handshakes == 1

    run(scenario())


def test_a_station_must_speak_the_version_it_was_registered_with(tmp_path: Path) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1=("2.1", "central-setpoint")) as server:
            headers = {"Authorization": build_authorization_basic("cs1", PASSWORD)}
            async with connect(
                f"{server.url}/cs1",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers=headers,
            ) as ws:
                assert ws.subprotocol is None
                await ws.wait_closed()
                assert ws.close_code == 1002
            assert server.sessions == {}

    run(scenario())


# --- frames that break the rules ---------------------------------------------------------


@asynccontextmanager
async def raw_station(
    server: CsmsServer, station_id: str, version: OcppVersion, **options: Any
) -> AsyncIterator[ClientConnection]:
    headers = {"Authorization": build_authorization_basic(station_id, PASSWORD)}
    async with connect(
        f"{server.url}/{station_id}",
        subprotocols=[version.subprotocol],  # type: ignore[list-item]
        additional_headers=headers,
        **options,
    ) as ws:
        yield ws


async def exchange(ws: ClientConnection, frame: str | bytes) -> list[Any]:
    await ws.send(frame)
    answer: list[Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return answer


@pytest.mark.parametrize(
    ("version", "frame", "expected"),
    [
        (OcppVersion.V21, "not json", ["-1", "RpcFrameworkError"]),
        (OcppVersion.V16, "not json", ["-1", "FormationViolation"]),
        # OCPP-J: NotSupported = a known action not supported here; NotImplemented = unknown.
        (
            OcppVersion.V21,
            '[2,"a","PublishFirmwareStatusNotification",{"status":"Published"}]',
            ["a", "NotSupported"],
        ),
        (OcppVersion.V21, '[2,"b","Teleport",{}]', ["b", "NotImplemented"]),
        (OcppVersion.V16, '[2,"c","NotifyEVChargingNeeds",{}]', ["c", "NotImplemented"]),
        (
            OcppVersion.V201,
            '[6,"d","NotifyPeriodicEventStream",{}]',
            ["d", "MessageTypeNotSupported"],
        ),
        (OcppVersion.V201, '[2,"e","Heartbeat",{"extra":1}]', ["e", "FormatViolation"]),
        (OcppVersion.V16, '[2,"f","Heartbeat",{"extra":1}]', ["f", "FormationViolation"]),
        (
            OcppVersion.V201,
            '[2,"g","MeterValues",{"evseId":"one","meterValue":[]}]',
            ["g", "TypeConstraintViolation"],
        ),
        (
            OcppVersion.V201,
            '[2,"h","MeterValues",{"meterValue":[]}]',
            ["h", "OccurrenceConstraintViolation"],
        ),
        (
            OcppVersion.V16,
            '[2,"i","StatusNotification",{"connectorId":1,"errorCode":"NoError"}]',
            ["i", "OccurenceConstraintViolation"],
        ),
    ],
)
def test_bad_frames_get_the_right_call_error_and_the_connection_stays_up(
    tmp_path: Path, version: OcppVersion, frame: str, expected: list[str]
) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1=(version.value, "negative-limit")) as server,
            raw_station(server, "cs1", version) as ws,
        ):
            answer = await exchange(ws, frame)
            assert answer[0] == 4
            assert answer[1:3] == expected
            heartbeat = await exchange(ws, '[2,"hb","Heartbeat",{}]')
            assert heartbeat == [3, "hb", {"currentTime": "2026-07-15T19:00:00Z"}]

    run(scenario())


DEEP = "[" * 1000 + "]" * 1000
LONG_ACTION = "Teleport" * 625  # 5,000 characters


@pytest.mark.parametrize(
    ("version", "frame", "expected"),
    [
        # Nested 1,000 levels (json.loads raised RecursionError: no answer at all). With its
        # head readable the CALL's payload is malformed: FormatViolation under its own id.
        (OcppVersion.V21, f'[2,"deep","Heartbeat",{{"x":{DEEP}}}]', ["deep", "FormatViolation"]),
        (OcppVersion.V16, f'[2,"deep","Heartbeat",{{"x":{DEEP}}}]', ["deep", "FormationViolation"]),
        (OcppVersion.V21, DEEP, ["-1", "RpcFrameworkError"]),
        # A binary frame is not an OCPP-J message, whatever it holds (it was parsed and
        # answered as if it were text).
        (OcppVersion.V21, b'[2,"bin","Heartbeat",{}]', ["-1", "RpcFrameworkError"]),
        (OcppVersion.V16, b'[2,"bin","Heartbeat",{}]', ["-1", "FormationViolation"]),
        (OcppVersion.V201, b"\xff\x00\x81", ["-1", "RpcFrameworkError"]),
        # An action of 5,000 characters is not known (it was echoed back in an InternalError).
        (OcppVersion.V21, f'[2,"long","{LONG_ACTION}",{{}}]', ["long", "NotImplemented"]),
        (OcppVersion.V16, f'[2,"long","{LONG_ACTION}",{{}}]', ["long", "NotImplemented"]),
        # An action is a name, never a path into the schema folder (this one was NotSupported).
        (
            OcppVersion.V21,
            '[2,"path","../../v201/schemas/Heartbeat",{}]',
            ["path", "NotImplemented"],
        ),
        # A 5,000-character value breaking maxLength is not echoed back in full either.
        (
            OcppVersion.V201,
            '[2,"bn","BootNotification",{"reason":"PowerUp","chargingStation":'
            f'{{"model":"{"M" * 5000}","vendorName":"V"}}}}]',
            ["bn", "PropertyConstraintViolation"],
        ),
    ],
    ids=[
        "deep-call-2.1",
        "deep-call-1.6",
        "deep-no-head",
        "binary-2.1",
        "binary-1.6",
        "binary-not-utf8",
        "long-action-2.1",
        "long-action-1.6",
        "action-path",
        "long-value",
    ],
)
def test_every_frame_gets_the_answer_ocpp_j_names_bounded(
    tmp_path: Path, version: OcppVersion, frame: str | bytes, expected: list[str]
) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1=(version.value, "negative-limit")) as server,
            raw_station(server, "cs1", version) as ws,
        ):
            answer = await exchange(ws, frame)
            assert answer[0] == 4
            assert answer[1:3] == expected
            assert isinstance(answer[3], str) and len(answer[3]) <= 255
            assert len(json.dumps(answer)) < 600  # details bounded too: nothing echoed in full
            heartbeat = await exchange(ws, '[2,"hb","Heartbeat",{}]')
            assert heartbeat == [3, "hb", {"currentTime": "2026-07-15T19:00:00Z"}]

    run(scenario())


async def flood(ws: ClientConnection, count: int) -> list[list[Any]]:
    """Send ``count`` heartbeats without waiting, reading the answers meanwhile (so the
    client keeps answering the server's pings); return one answer per heartbeat."""
    answers: list[list[Any]] = []

    async def read() -> None:
        while len(answers) < count:
            answers.append(json.loads(await ws.recv()))

    reader = asyncio.create_task(read())
    for number in range(count):
        await ws.send(f'[2,"f{number}","Heartbeat",{{}}]')
    await asyncio.wait_for(reader, 30)
    return answers


def test_a_station_flooding_calls_is_paced_not_disconnected(tmp_path: Path) -> None:
    """60 heartbeats at once against 10 messages per second: 6 s of pacing, twice the
    keepalive's 3 s (a pong more than 2.5 s late closes the connection; that much slack keeps
    a busy machine's stalls from closing it). The server used to stop reading while it paced,
    so the station's pongs went unread and the connection was closed with 1011; every CALL
    is now answered, in order, on a connection that stays open."""
    clock = SimClock(START)
    settings = CsmsSettings(
        port=0, messages_per_second=10.0, burst=1, ping_interval_s=0.5, ping_timeout_s=2.5
    )

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, settings, cs1=("2.1", "central-setpoint")) as server,
            raw_station(server, "cs1", OcppVersion.V21, ping_interval=None) as ws,
        ):
            answers = await flood(ws, 60)
            assert [answer[:2] for answer in answers] == [[3, f"f{n}"] for n in range(60)]
            assert ws.close_code is None
            assert (await exchange(ws, '[2,"hb","Heartbeat",{}]'))[:2] == [3, "hb"]
            assert server.sessions["cs1"].frames_refused == 0

    run(scenario())


@pytest.mark.parametrize(
    ("version", "refusal"),
    [(OcppVersion.V21, "RpcFrameworkError"), (OcppVersion.V16, "GenericError")],
)
def test_calls_past_the_waiting_queue_are_refused_at_once_and_the_rest_answered(
    tmp_path: Path, version: OcppVersion, refusal: str
) -> None:
    """A queue of 5 frames: the CALLs that find it full get a CALLERROR under their own id
    (OCPP-J: a CALL only after the previous one is answered); the others are answered in
    the order they were sent; the connection stays open."""
    clock = SimClock(START)
    settings = CsmsSettings(
        port=0,
        messages_per_second=20.0,
        burst=1,
        waiting_frames=5,
        ping_interval_s=0.5,
        ping_timeout_s=2.5,
    )

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, settings, cs1=(version.value, "negative-limit")) as server,
            raw_station(server, "cs1", version, ping_interval=None) as ws,
        ):
            answers = await flood(ws, 40)
            assert sorted(answer[1] for answer in answers) == sorted(f"f{n}" for n in range(40))
            answered = [answer[1] for answer in answers if answer[0] == 3]
            assert answered == sorted(answered, key=lambda message_id: int(message_id[1:]))
            refused = [answer for answer in answers if answer[0] == 4]
            assert refused  # the reader is far ahead of the pace: 40 frames, 1 + 5 places
            assert {tuple(answer[2:3]) for answer in refused} == {(refusal,)}
            assert all(len(answer[3]) <= 255 for answer in refused)
            assert server.sessions["cs1"].frames_refused == len(refused)
            assert ws.close_code is None
            assert (await exchange(ws, '[2,"hb","Heartbeat",{}]'))[:2] == [3, "hb"]

    run(scenario())


def test_a_frame_being_paced_when_the_station_leaves_is_still_stored(tmp_path: Path) -> None:
    """At 2 messages per second the MeterValues after a heartbeat waits half a second; the
    station closes meanwhile. The frame in hand is handled (stored first) as before, not
    dropped with the connection."""
    clock = SimClock(START)
    settings = CsmsSettings(port=0, messages_per_second=2.0, burst=1)
    meter_values = (
        '[2,"mv","MeterValues",{"evseId":1,"meterValue":[{"timestamp":"2026-07-15T19:00:00Z",'
        '"sampledValue":[{"value":7000.0,"measurand":"Power.Active.Import"}]}]}]'
    )

    async def scenario() -> None:
        async with csms(tmp_path, clock, settings, cs1=("2.0.1", "negative-limit")) as server:
            async with raw_station(server, "cs1", OcppVersion.V201) as ws:
                assert (await exchange(ws, '[2,"hb","Heartbeat",{}]'))[:2] == [3, "hb"]
                await ws.send(meter_values)
            await eventually(lambda: server.store.rows(db.meter_samples, station_id="cs1"))

    run(scenario())


def test_a_2_1_send_frame_gets_no_answer(tmp_path: Path) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1=("2.1", "central-setpoint")) as server,
            raw_station(server, "cs1", OcppVersion.V21) as ws,
        ):
            await ws.send(
                '[6,"s1","NotifyPeriodicEventStream",'
                '{"id":1,"pending":0,"basetime":"2026-07-15T19:00:00Z","data":[]}]'
            )
            # The next frame we get is the answer to the heartbeat, not to the SEND.
            assert (await exchange(ws, '[2,"hb","Heartbeat",{}]'))[:2] == [3, "hb"]

    run(scenario())


def test_a_gap_in_seq_no_is_recorded(tmp_path: Path) -> None:
    clock = SimClock(START)

    def event(seq_no: int) -> str:
        return json.dumps(
            [
                2,
                f"t{seq_no}",
                "TransactionEvent",
                {
                    "eventType": "Started" if seq_no == 0 else "Updated",
                    "timestamp": "2026-07-15T19:00:00Z",
                    "triggerReason": "MeterValuePeriodic",
                    "seqNo": seq_no,
                    "transactionInfo": {"transactionId": "tx-1"},
                },
            ]
        )

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1=("2.0.1", "negative-limit")) as server,
            raw_station(server, "cs1", OcppVersion.V201) as ws,
        ):
            for seq_no in (0, 1, 4):
                assert (await exchange(ws, event(seq_no)))[0] == 3
            gaps = server.store.rows(db.sequence_gaps)
            assert [(g["first_missing"], g["last_missing"]) for g in gaps] == [(2, 3)]
            assert len(server.store.rows(db.transaction_events)) == 3

    run(scenario())


def test_messages_queued_while_offline_arrive_after_reconnect(tmp_path: Path) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1=("2.0.1", "negative-limit")) as server:
            station = emulated(server, "cs1", OcppVersion.V201, "negative-limit", clock)
            task = asyncio.create_task(station.run(reconnect_delay_s=0.3))
            await asyncio.wait_for(station.connected.wait(), 10)
            await station.plug_in(1, EmulatedEv(**vars(BUS)))
            await station.drop_connection()
            await eventually(lambda: not station.connected.is_set())
            for _ in range(3):  # offline: the samples wait in the queue
                clock.advance(timedelta(minutes=1))
                station.advance(60)
                await station.send_meter_values()
            assert len(station.queue) >= 1
            await asyncio.wait_for(station.connected.wait(), 10)
            await eventually(lambda: not station.queue)
            events = server.store.rows(db.transaction_events, station_id="cs1")
            assert [e["seq_no"] for e in events] == [0, 1, 2, 3]
            assert [e["offline"] for e in events] == [False, True, True, True]
            assert server.store.rows(db.sequence_gaps) == []
            await station.stop()
            task.cancel()

    run(scenario())


@pytest.mark.parametrize(("version", "dialect"), CASES[:2], ids=["2.1", "2.0.1"])
def test_a_station_that_loses_us_stops_discharging(
    tmp_path: Path, version: OcppVersion, dialect: str
) -> None:
    """2.1: the profile is invalid after maxOfflineDuration; 2.0.1: it expires at validTo.
    Either way the charge-only default takes over."""
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1=(version.value, dialect)) as server:
            station = emulated(server, "cs1", version, dialect, clock)
            task = asyncio.create_task(station.run(reconnect_delay_s=60))
            await asyncio.wait_for(station.connected.wait(), 10)
            await eventually(lambda: station.profiles.get(1))
            await station.plug_in(1, EmulatedEv(**vars(BUS)))
            await server.send_setpoint(
                "cs1",
                1,
                Setpoint("bus", -30.0, START + timedelta(minutes=15)),
                station.evses[1].transaction_id,
            )
            station.advance(10)
            assert station.evses[1].power_kw == pytest.approx(-30.0)
            await server.stop()
            await eventually(lambda: not station.connected.is_set())
            clock.advance(
                timedelta(minutes=6) if version is OcppVersion.V21 else timedelta(minutes=16)
            )
            station.advance(10)
            assert station.evses[1].power_kw == pytest.approx(60.0)  # charge-only default
            await station.stop()
            task.cancel()

    run(scenario())


@pytest.mark.parametrize(("version", "dialect"), CASES[:2], ids=["2.1", "2.0.1"])
def test_a_station_that_boots_while_its_site_is_islanded_gets_the_zero_watt_default(
    tmp_path: Path, version: OcppVersion, dialect: str
) -> None:
    """A charger that reboots in an outage must not charge from the island: its boot default
    is 0 W, ``install_default`` swaps it with the grid state, and an islanded setpoint holds
    for as long as it was sent for, with the CSMS gone too; then the 0 W default applies."""
    clock = SimClock(START)
    islanded = {"cs1": True}

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1=(version.value, dialect)) as server:
            server.islanded_station = lambda station_id: islanded[station_id]
            station = emulated(server, "cs1", version, dialect, clock)
            task = asyncio.create_task(station.run(reconnect_delay_s=60))
            await asyncio.wait_for(station.connected.wait(), 10)
            await eventually(lambda: station.profiles.get(1))
            await station.plug_in(1, EmulatedEv(**vars(BUS)))
            station.advance(10)
            assert station.evses[1].power_kw == 0.0  # not the 60 kW a default would give
            islanded["cs1"] = False  # the grid is back: the charge-only default returns
            assert await server.install_default("cs1") == "Accepted"
            station.advance(10)
            assert station.evses[1].power_kw == pytest.approx(60.0)
            islanded["cs1"] = True
            assert await server.install_default("cs1") == "Accepted"
            hold = timedelta(minutes=30)
            await server.send_setpoint(
                "cs1",
                1,
                Setpoint("bus", -30.0, START + hold),
                station.evses[1].transaction_id,
                max_offline_s=int(hold.total_seconds()),
            )
            await server.stop()
            await eventually(lambda: not station.connected.is_set())
            clock.advance(timedelta(minutes=20))  # we are gone for 20 minutes
            station.advance(10)
            assert station.evses[1].power_kw == pytest.approx(-30.0)  # still carrying
            clock.advance(timedelta(minutes=11))  # past the hold: the 0 W default
            station.advance(10)
            assert station.evses[1].power_kw == 0.0
            await station.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run(scenario())


# --- fuzz ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
frames = st.one_of(
    st.text(max_size=40),
    json_values.map(json.dumps),
    st.tuples(
        st.sampled_from([2, 3, 4, 5, 6, 7, "2"]),
        st.text(min_size=1, max_size=40),
        st.sampled_from(
            [
                "Heartbeat",
                "BootNotification",
                "TransactionEvent",
                "MeterValues",
                "NotifyEVChargingNeeds",
                "StatusNotification",
                "X",
            ]
        ),
        json_values,
    ).map(lambda t: json.dumps(list(t))),
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(frames, min_size=1, max_size=15))
def test_random_frames_never_crash_the_server(tmp_path: Path, batch: list[str]) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with (
            csms(folder, clock, cs1=("2.1", "central-setpoint")) as server,
            raw_station(server, "cs1", OcppVersion.V21) as ws,
        ):
            for frame in batch:
                await ws.send(frame)
            await ws.send('[2,"alive","Heartbeat",{}]')
            while True:  # answers may come first; the heartbeat's must come
                answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if answer[:2] == [3, "alive"]:
                    break

    folder = tmp_path / uuid.uuid4().hex
    folder.mkdir()
    run(scenario())


# --- the other calls a CSMS makes ------------------------------------------------------------


def test_dynamic_schedule_clear_report_and_remote_stop_on_2_1(tmp_path: Path) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, v2x=("2.1", "central-setpoint")) as server:
            station = emulated(server, "v2x", OcppVersion.V21, "central-setpoint", clock)
            task = asyncio.create_task(station.run())
            await asyncio.wait_for(station.connected.wait(), 10)
            await station.plug_in(1, EmulatedEv(**vars(BUS)))
            session = server.session("v2x")
            dynamic = {
                "evseId": 1,
                "chargingProfile": {
                    "id": 77,
                    "stackLevel": 2,
                    "chargingProfilePurpose": "TxProfile",
                    "chargingProfileKind": "Dynamic",
                    "transactionId": "v2x-1",
                    "chargingSchedule": [
                        {
                            "id": 77,
                            "chargingRateUnit": "W",
                            "chargingSchedulePeriod": [
                                {
                                    "startPeriod": 0,
                                    "setpoint": 0.0,
                                    "operationMode": "CentralSetpoint",
                                }
                            ],
                        }
                    ],
                },
            }
            assert (await session.request("SetChargingProfile", dynamic))["status"] == "Accepted"
            later = Setpoint("bus", -20.0, START + timedelta(minutes=5))
            assert await server.update_dynamic_schedule("v2x", 77, later) == "Accepted"
            station.advance(1)
            assert station.evses[1].power_kw == pytest.approx(-20.0)
            assert await server.update_dynamic_schedule("v2x", 5, later) == "Rejected"

            assert await server.get_charging_profiles("v2x", request_id=9) == "Accepted"
            reported = await eventually(lambda: server.reported_profiles.get("v2x"))
            assert [p["id"] for p in reported] == [77]

            assert await server.clear_profiles("v2x", evse_id=1) == "Unknown"  # level 2 stays
            assert 77 in station.profiles
            assert await server.request_stop("v2x", "v2x-1") == "Accepted"
            await eventually(lambda: station.evses[1].transaction_started is None)
            events = await eventually(
                lambda: [
                    e
                    for e in server.store.rows(db.transaction_events)
                    if e["event_type"] == "Ended"
                ]
            )
            assert events[0]["trigger_reason"] == "RemoteStop"
            assert 77 not in station.profiles  # a TxProfile ends with its transaction
            await station.stop()
            task.cancel()

    run(scenario())


def test_a_profile_for_no_transaction_is_refused_by_the_station(tmp_path: Path) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1=("1.6", "negative-limit")) as server:
            station = emulated(server, "cs1", OcppVersion.V16, "negative-limit", clock)
            task = asyncio.create_task(station.run())
            await asyncio.wait_for(station.connected.wait(), 10)
            status = await server.send_setpoint(
                "cs1", 1, Setpoint("car", -5.0, START + timedelta(minutes=15)), "4242"
            )
            assert status == "Rejected"
            assert server.store.rows(db.setpoints_sent)[0]["status"] == "Rejected"
            await station.stop()
            task.cancel()

    run(scenario())


def test_a_frame_over_the_size_limit_closes_only_that_connection(tmp_path: Path) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with (
            csms(
                tmp_path, clock, cs1=("2.0.1", "negative-limit"), cs2=("2.0.1", "negative-limit")
            ) as server,
            raw_station(server, "cs1", OcppVersion.V201) as big,
            raw_station(server, "cs2", OcppVersion.V201) as small,
        ):
            await big.send('[2,"x","Heartbeat",{"pad":"' + "x" * 300_000 + '"}]')
            await big.wait_closed()
            assert big.close_code == 1009  # message too big
            assert (await exchange(small, '[2,"hb","Heartbeat",{}]'))[:2] == [3, "hb"]

    run(scenario())


def test_a_remembered_password_does_not_let_a_wrong_one_in(tmp_path: Path) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1=("2.0.1", "negative-limit")) as server:
            async with raw_station(server, "cs1", OcppVersion.V201) as ws:
                assert (await exchange(ws, '[2,"hb","Heartbeat",{}]'))[0] == 3
            wrong = emulated(
                server, "cs1", OcppVersion.V201, "negative-limit", clock, password="not it"
            )
            await wrong.run()
            assert wrong.refused == 401

    run(scenario())


def test_tls_security_profile_2(tmp_path: Path) -> None:
    """wss:// with a server certificate and Basic auth; the client checks the certificate."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    clock = SimClock(START)

    async def scenario() -> None:
        store = Store(f"sqlite:///{tmp_path / 'tls.db'}")
        store.add_station(StationRecord("cs1", PASSWORD_HASH, "2.0.1", "negative-limit", 11.0))
        server = CsmsServer(store, clock, CsmsSettings(port=0, tls=server_tls))
        await server.start()
        try:
            assert server.url.startswith("wss://")
            headers = {"Authorization": build_authorization_basic("cs1", PASSWORD)}
            async with connect(
                f"{server.url}/cs1",
                subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                additional_headers=headers,
                ssl=client_tls,
            ) as ws:
                assert (await exchange(ws, '[2,"hb","Heartbeat",{}]'))[:2] == [3, "hb"]
            with pytest.raises(ssl.SSLCertVerificationError):
                await connect(
                    f"{server.url}/cs1",
                    additional_headers=headers,
                    ssl=ssl.create_default_context(),
                )
        finally:
            await server.stop()
            store.close()

    run(scenario())


@pytest.mark.parametrize("version", [OcppVersion.V16, OcppVersion.V201, OcppVersion.V21])
def test_data_transfer_is_answered_unknown_vendor(tmp_path: Path, version: OcppVersion) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1=(version.value, "negative-limit")) as server,
            raw_station(server, "cs1", version) as ws,
        ):
            answer = await exchange(ws, '[2,"d1","DataTransfer",{"vendorId":"acme"}]')
            assert answer == [3, "d1", {"status": "UnknownVendorId"}]

    run(scenario())


def test_bad_frames_that_must_not_be_answered_are_not(tmp_path: Path) -> None:
    """A malformed SEND or CALLERROR gets no answer; a malformed CALLRESULT gets a
    CALLRESULTERROR in 2.1."""
    clock = SimClock(START)

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1=("2.1", "central-setpoint")) as server,
            raw_station(server, "cs1", OcppVersion.V21) as ws,
        ):
            await ws.send('[6,"s1","NotifyPeriodicEventStream"]')  # SEND without payload
            await ws.send('[4,"e1","NotImplemented"]')  # CALLERROR cut short
            await ws.send('[3,"r1","not an object"]')  # CALLRESULT with a bad payload
            answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert answer[:3] == [5, "r1", "RpcFrameworkError"]
            assert (await exchange(ws, '[2,"hb","Heartbeat",{}]'))[:2] == [3, "hb"]

    run(scenario())


def test_successive_setpoints_replace_one_profile_on_a_2_x_station(tmp_path: Path) -> None:
    """OCPP 2.x refuses a second profile id at the same stack level and purpose
    (K01.FR.06/39): the CSMS reuses one id per EVSE and purpose, so each setpoint replaces."""
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1=("2.0.1", "negative-limit")) as server:
            station = emulated(server, "cs1", OcppVersion.V201, "negative-limit", clock)
            task = asyncio.create_task(station.run())
            await asyncio.wait_for(station.connected.wait(), 10)
            await station.plug_in(1, EmulatedEv(**vars(BUS)))
            tx = station.evses[1].transaction_id
            for power_kw in (-10.0, -20.0, 5.0):
                setpoint = Setpoint("bus", power_kw, START + timedelta(minutes=15))
                assert await server.send_setpoint("cs1", 1, setpoint, tx) == "Accepted"
            tx_profiles = [p for p in station.profiles.values() if p.purpose == "TxProfile"]
            assert len(tx_profiles) == 1
            station.advance(1)
            assert station.evses[1].power_kw == pytest.approx(5.0)
            # A different id in the same slot is refused by the station, as the standard says.
            assert station.session is not None
            foreign = station.install_profile(
                {
                    "evseId": 1,
                    "chargingProfile": {
                        **tx_profiles[0].payload,
                        "id": 999,
                    },
                }
            )
            assert foreign["status"] == "Rejected"
            await station.stop()
            task.cancel()

    run(scenario())


def test_later_transaction_events_keep_the_evse_of_the_first(tmp_path: Path) -> None:
    clock = SimClock(START)

    def event(seq_no: int, with_evse: bool) -> str:
        payload: dict[str, Any] = {
            "eventType": "Started" if seq_no == 0 else "Updated",
            "timestamp": "2026-07-15T21:00:00+02:00",  # any offset: stored as UTC
            "triggerReason": "MeterValuePeriodic",
            "seqNo": seq_no,
            "transactionInfo": {"transactionId": "tx-7"},
            "meterValue": [
                {
                    "timestamp": "2026-07-15T21:00:00+02:00",
                    "sampledValue": [{"value": 1000.0 + seq_no}],
                }
            ],
        }
        if with_evse:
            payload["evse"] = {"id": 2, "connectorId": 1}
        return json.dumps([2, f"t{seq_no}", "TransactionEvent", payload])

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1=("2.0.1", "negative-limit")) as server,
            raw_station(server, "cs1", OcppVersion.V201) as ws,
        ):
            assert (await exchange(ws, event(0, True)))[0] == 3
            assert (await exchange(ws, event(1, False)))[0] == 3
            assert (await exchange(ws, event(1, False)))[0] == 3  # resent: stored once
            rows = server.store.rows(db.transaction_events)
            assert [(r["seq_no"], r["evse_id"]) for r in rows] == [(0, 2), (1, 2)]
            assert rows[0]["at"] == datetime(2026, 7, 15, 19, tzinfo=UTC)
            samples = server.store.rows(db.meter_samples)
            assert [(s["evse_id"], s["seq_no"], s["entry"]) for s in samples] == [
                (2, 0, 0),
                (2, 1, 0),
            ]

    run(scenario())


def test_profile_ids_survive_a_restart(tmp_path: Path) -> None:
    """A restarted CSMS must replace the profile a charger holds, not send a second id at
    the same stack level and purpose (which OCPP 2.x refuses)."""
    clock = SimClock(START)
    store = Store(f"sqlite:///{tmp_path / 'ids.db'}")
    try:
        first, again = CsmsServer(store, clock), CsmsServer(store, clock)
        for purpose in ("TxProfile", "TxDefaultProfile"):
            for evse in (1, 2):
                assert first.profile_id("a", evse, purpose) == again.profile_id("a", evse, purpose)
        assert first.profile_id("a", 1, "TxProfile") == 100
        ids = {
            first.profile_id("a", e, p) for e in (1, 2) for p in ("TxProfile", "TxDefaultProfile")
        }
        assert len(ids) == 4  # one per EVSE and purpose
    finally:
        store.close()
