"""No dead session steers a plan: open transactions reconciled on boot, on ``Available``
and after a long disconnection, each closing stored with why (issue #14, group 3), and a
1.6 ``StopTransaction`` for an id never issued answered without ending anything."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.headers import build_authorization_basic

from lightson.csms.auth import hash_password
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.csms.wire import OcppVersion
from lightson.domain.time import SimClock
from lightson.emulator import EmulatedEv, EmulatedStation, Evse
from lightson.store import StationRecord, Store
from lightson.store import schema as db
from lightson.store.live import station_states
from lightson.store.transactions import station_transactions
from net_support import eventually, run

START = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
PASSWORD_HASH = hash_password(PASSWORD, salt=b"0123456789abcdef")
ACCEPTED = {"status": "Accepted"}


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@asynccontextmanager
async def csms(
    tmp_path: Path, clock: SimClock, sweep_every_s: float = 0.02, **stations: str
) -> AsyncIterator[CsmsServer]:
    """A server on a free loopback port with stations ``id=version``; the sweeper looks
    every ``sweep_every_s`` real seconds, the limits are read on ``clock``."""
    store = Store(f"sqlite:///{tmp_path / 'csms.db'}")
    for station_id, version in stations.items():
        store.add_station(StationRecord(station_id, PASSWORD_HASH, version, "negative-limit", 60))
    settings = CsmsSettings(
        port=0, offline_check_every_s=sweep_every_s, boot_grace_s=60, offline_close_after_s=900
    )
    server = CsmsServer(store, clock, settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        store.close()


class Peer:
    """A station written by hand: sends CALLs, and answers the CSMS's CALLs from ``answers``
    (a payload: CALLRESULT; a string: CALLERROR with that code; a function: of the
    request; absent: silence)."""

    def __init__(self, ws: ClientConnection, answers: Mapping[str, Any]) -> None:
        self.ws = ws
        self.answers = dict(answers)
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[list[Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for text in self.ws:
            frame = json.loads(text)
            if frame[0] == 2:
                self.asked.append((frame[2], frame[3]))
                answer = self.answers.get(frame[2])
                if callable(answer):
                    answer = answer(frame[3])
                if isinstance(answer, str):
                    await self.ws.send(json.dumps([4, frame[1], answer, "", {}]))
                elif answer is not None:
                    await self.ws.send(json.dumps([3, frame[1], answer]))
            elif frame[1] in self._waiting:
                self._waiting.pop(frame[1]).set_result(frame)

    async def call(self, action: str, payload: Mapping[str, Any]) -> list[Any]:
        message_id = f"m{next(self._ids)}"
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = waiter
        await self.ws.send(json.dumps([2, message_id, action, payload]))
        return await asyncio.wait_for(waiter, 5)

    def asked_for(self, action: str) -> list[dict[str, Any]]:
        return [payload for name, payload in self.asked if name == action]


@asynccontextmanager
async def peer(
    server: CsmsServer,
    station_id: str,
    version: OcppVersion,
    answers: Mapping[str, Any] | None = None,
) -> AsyncIterator[Peer]:
    headers = {"Authorization": build_authorization_basic(station_id, PASSWORD)}
    async with connect(
        f"{server.url}/{station_id}",
        subprotocols=[version.subprotocol],  # type: ignore[list-item]
        additional_headers=headers,
    ) as ws:
        station = Peer(ws, {"SetChargingProfile": ACCEPTED, **(answers or {})})
        try:
            yield station
        finally:
            station._reader.cancel()
    await eventually(lambda: station_id not in server.sessions)


BOOT_2X = {"reason": "PowerUp", "chargingStation": {"model": "m", "vendorName": "v"}}
BOOT_16 = {"chargePointVendor": "v", "chargePointModel": "m"}


def started(transaction_id: str, evse_id: int, at: datetime, seq_no: int = 0) -> dict[str, Any]:
    return {
        "eventType": "Started" if seq_no == 0 else "Updated",
        "timestamp": stamp(at),
        "triggerReason": "CablePluggedIn" if seq_no == 0 else "MeterValuePeriodic",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": transaction_id},
        "evse": {"id": evse_id, "connectorId": 1},
    }


def events(server: CsmsServer, station_id: str) -> list[tuple[str, str, str | None]]:
    rows = server.store.rows(db.transaction_events, station_id=station_id)
    return [(r["transaction_id"], r["event_type"], r["trigger_reason"]) for r in rows]


def closing(server: CsmsServer, transaction_id: str) -> dict[str, Any]:
    rows = server.store.rows(db.transaction_events, transaction_id=transaction_id)
    [row] = [r for r in rows if r["event_type"] == "Ended"]
    return row


def open_ids(server: CsmsServer, station_id: str) -> list[str]:
    found = station_transactions(server.store, station_id, only_open=True)
    return [t.transaction_id for t in found]


def open_transaction(server: CsmsServer, station_id: str) -> str | None:
    return station_states(server.store, [station_id])[station_id].transaction_id


# --- OCPP 2.x: BootNotification, then GetTransactionStatus (E14) -----------------------------


def test_2x_boot_closes_what_the_station_says_is_over_and_keeps_what_goes_on(
    tmp_path: Path,
) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1="2.0.1") as server:
            async with peer(server, "cs1", OcppVersion.V201) as station:
                for tx, evse in (("tx-over", 1), ("tx-on", 2)):
                    assert (await station.call("TransactionEvent", started(tx, evse, START)))[
                        0
                    ] == 3
            clock.advance(timedelta(minutes=2))
            status = {
                "tx-over": {"ongoingIndicator": False, "messagesInQueue": False},
                "tx-on": {"ongoingIndicator": True, "messagesInQueue": False},
            }
            answers = {"GetTransactionStatus": lambda asked: status[asked["transactionId"]]}
            async with peer(server, "cs1", OcppVersion.V201, answers) as station:
                assert (await station.call("BootNotification", BOOT_2X))[2]["status"] == "Accepted"
                await eventually(lambda: len(station.asked_for("GetTransactionStatus")) == 2)
                await eventually(lambda: len(events(server, "cs1")) == 3)
                assert station.asked_for("GetTransactionStatus") == [
                    {"transactionId": "tx-over"},
                    {"transactionId": "tx-on"},
                ]
            assert events(server, "cs1") == [
                ("tx-over", "Started", "CablePluggedIn"),
                ("tx-on", "Started", "CablePluggedIn"),
                ("tx-over", "Ended", "CsmsBoot"),
            ]
            row = closing(server, "tx-over")
            assert row["evse_id"] == 1 and row["seq_no"] is None
            assert row["at"] == START + timedelta(minutes=2)
            assert row["payload"] == {
                "closedBy": "csms",
                "reason": "the station rebooted and says the transaction is not ongoing, "
                "with nothing queued for it (GetTransactionStatus)",
            }
            assert open_ids(server, "cs1") == ["tx-on"]

    run(scenario())


def test_2x_boot_without_an_answer_closes_after_the_grace_unless_the_station_spoke(
    tmp_path: Path,
) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1="2.0.1") as server:
            async with peer(server, "cs1", OcppVersion.V201) as station:
                for tx, evse in (("tx-silent", 1), ("tx-replayed", 2)):
                    assert (await station.call("TransactionEvent", started(tx, evse, START)))[
                        0
                    ] == 3
            answers = {"GetTransactionStatus": "NotImplemented"}
            async with peer(server, "cs1", OcppVersion.V201, answers) as station:
                await station.call("BootNotification", BOOT_2X)
                await eventually(lambda: len(station.asked_for("GetTransactionStatus")) == 2)
                replay = started("tx-replayed", 2, START + timedelta(seconds=30), seq_no=1)
                assert (await station.call("TransactionEvent", replay))[0] == 3
                clock.advance(timedelta(seconds=59))  # within the grace: nothing closed
                await asyncio.sleep(0.1)
                assert [e for e in events(server, "cs1") if e[1] == "Ended"] == []
                clock.advance(timedelta(seconds=2))
                await eventually(lambda: any(e[1] == "Ended" for e in events(server, "cs1")))
                await asyncio.sleep(0.1)
            assert [e for e in events(server, "cs1") if e[1] == "Ended"] == [
                ("tx-silent", "Ended", "CsmsBoot")
            ]
            reason = closing(server, "tx-silent")["payload"]["reason"]
            assert reason.startswith("the station rebooted and gave no usable")
            assert "NotImplemented" in reason
            assert open_ids(server, "cs1") == ["tx-replayed"]

    run(scenario())


def test_2x_boot_not_ongoing_with_a_queue_waits_for_the_queue_then_closes(tmp_path: Path) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1="2.0.1") as server:
            async with peer(server, "cs1", OcppVersion.V201) as station:
                for tx, evse in (("tx-a", 1), ("tx-b", 2)):
                    assert (await station.call("TransactionEvent", started(tx, evse, START)))[
                        0
                    ] == 3
            clock.advance(timedelta(minutes=5))
            queued = {"ongoingIndicator": False, "messagesInQueue": True}
            async with peer(
                server, "cs1", OcppVersion.V201, {"GetTransactionStatus": queued}
            ) as station:
                await station.call("BootNotification", BOOT_2X)
                await eventually(lambda: len(station.asked_for("GetTransactionStatus")) == 2)
                # The queue: tx-a's own end; for tx-b only an update (it lost the rest).
                end_a = {
                    **started("tx-a", 1, START + timedelta(minutes=1), 1),
                    "eventType": "Ended",
                }
                update_b = started("tx-b", 2, START + timedelta(minutes=1), 1)
                for replay in (end_a, update_b):
                    await station.call("TransactionEvent", {**replay, "offline": True})
                await asyncio.sleep(0.1)
                assert open_ids(server, "cs1") == ["tx-b"]
                clock.advance(timedelta(seconds=60))  # boot_grace_s
                await eventually(lambda: open_ids(server, "cs1") == [])
                await asyncio.sleep(0.1)
            assert [e for e in events(server, "cs1") if e[1] == "Ended"] == [
                ("tx-a", "Ended", "MeterValuePeriodic"),
                ("tx-b", "Ended", "CsmsBoot"),
            ]
            assert closing(server, "tx-b")["at"] == START + timedelta(minutes=6)

    run(scenario())


def test_the_emulator_answers_get_transaction_status_and_keeps_its_session(
    tmp_path: Path,
) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1="2.0.1") as server:
            station = EmulatedStation(
                "cs1",
                PASSWORD,
                OcppVersion.V201,
                server.url,
                clock,
                {1: Evse(1, max_charge_kw=60.0, max_discharge_kw=60.0)},
                dialect="negative-limit",
            )
            task = asyncio.create_task(station.run(reconnect_delay_s=0.05))
            await asyncio.wait_for(station.connected.wait(), 10)
            await station.plug_in(
                1, EmulatedEv(226.0, 0.5, max_charge_kw=60.0, max_discharge_kw=60.0)
            )
            await station.drop_connection()  # the emulator boots again on reconnecting
            await eventually(lambda: not station.connected.is_set())
            await asyncio.wait_for(station.connected.wait(), 10)
            assert station.session is not None
            await eventually(
                lambda: any("GetTransactionStatus" in f for f in station.session.received)
            )
            clock.advance(timedelta(minutes=10))
            await asyncio.sleep(0.1)
            assert open_transaction(server, "cs1") == station.evses[1].transaction_id
            await station.stop()
            task.cancel()

    run(scenario())


# --- OCPP 1.6: BootNotification closes; StopTransaction for an unknown id ---------------------


def test_1_6_boot_closes_open_transactions_and_a_late_stop_still_counts(tmp_path: Path) -> None:
    clock = SimClock(START)
    start = {"connectorId": 1, "idTag": "BUS", "meterStart": 0, "timestamp": stamp(START)}

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1="1.6") as server:
            async with peer(server, "cs1", OcppVersion.V16) as station:
                transaction_id = (await station.call("StartTransaction", start))[2]["transactionId"]
            clock.advance(timedelta(minutes=3))
            async with peer(server, "cs1", OcppVersion.V16) as station:
                await station.call("BootNotification", BOOT_16)
                # Closed before the answer: nothing the station starts after it is touched.
                assert events(server, "cs1") == [
                    (str(transaction_id), "Started", None),
                    (str(transaction_id), "Ended", "CsmsBoot"),
                ]
                assert open_transaction(server, "cs1") is None
                row = closing(server, str(transaction_id))
                assert row["evse_id"] == 1 and row["at"] == START + timedelta(minutes=3)
                assert "OCPP 1.6 station does not resume" in row["payload"]["reason"]
                # The station kept it after all: its queued StopTransaction is its own end.
                stop = {
                    "transactionId": transaction_id,
                    "meterStop": 1500,
                    "timestamp": stamp(START + timedelta(minutes=1)),
                    "reason": "Reboot",
                }
                assert (await station.call("StopTransaction", stop))[:1] == [3]
            ends = [
                r
                for r in server.store.rows(db.transaction_events, station_id="cs1")
                if r["event_type"] == "Ended"
            ]
            assert [(r["trigger_reason"], r["evse_id"]) for r in ends] == [
                ("CsmsBoot", 1),
                ("Reboot", 1),
            ]
            assert open_transaction(server, "cs1") is None

    run(scenario())


def test_a_station_clock_ahead_of_ours_does_not_undo_a_closing(tmp_path: Path) -> None:
    clock = SimClock(START)
    ahead = START + timedelta(minutes=10)  # the station's clock runs 10 minutes fast
    start = {"connectorId": 1, "idTag": "BUS", "meterStart": 0, "timestamp": stamp(ahead)}

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1="1.6") as server,
            peer(server, "cs1", OcppVersion.V16) as station,
        ):
            transaction_id = (await station.call("StartTransaction", start))[2]["transactionId"]
            clock.advance(timedelta(minutes=1))
            await station.call("BootNotification", BOOT_16)
            assert open_transaction(server, "cs1") is None
            assert closing(server, str(transaction_id))["at"] == ahead

    run(scenario())


def test_1_6_stop_transaction_for_an_id_never_issued(tmp_path: Path) -> None:
    """1.6 (4.10): answered, so the station drops it from its queue; its idTagInfo speaks
    of the tag (what Authorize gives it here), so a good card is not cached as Invalid;
    nothing ends; the frame is kept in quarantine."""
    clock = SimClock(START)
    stop = {
        "transactionId": 424242,
        "idTag": "BUS",
        "meterStop": 1500,
        "timestamp": stamp(START),
    }

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1="1.6") as server,
            peer(server, "cs1", OcppVersion.V16) as station,
        ):
            answer = await station.call("StopTransaction", stop)
            assert answer[0] == 3 and answer[2] == {"idTagInfo": {"status": "Accepted"}}
            authorize = await station.call("Authorize", {"idTag": "BUS"})
            assert authorize[2]["idTagInfo"] == answer[2]["idTagInfo"]
            without_tag = {k: v for k, v in stop.items() if k != "idTag"}
            assert (await station.call("StopTransaction", without_tag))[2] == {}
            assert server.store.rows(db.transaction_events) == []
            kept = server.store.rows(db.quarantine, station_id="cs1")
            assert [(q["action"], q["field"], q["value"]) for q in kept] == [
                ("StopTransaction", "transactionId", "424242")
            ] * 2
            assert json.loads(kept[0]["raw"]) == stop
            assert kept[0]["reason"] == "no transaction with this id was started at this station"

    run(scenario())


def test_1_6_meter_values_after_a_closing_reopen_the_transaction(tmp_path: Path) -> None:
    clock = SimClock(START)
    start = {"connectorId": 1, "idTag": "BUS", "meterStart": 0, "timestamp": stamp(START)}

    def meter(transaction_id: int, at: datetime) -> dict[str, Any]:
        return {
            "connectorId": 1,
            "transactionId": transaction_id,
            "meterValue": [
                {"timestamp": stamp(at), "sampledValue": [{"value": "52.0", "measurand": "SoC"}]}
            ],
        }

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1="1.6") as server:
            async with peer(server, "cs1", OcppVersion.V16) as station:
                transaction_id = (await station.call("StartTransaction", start))[2]["transactionId"]
                clock.advance(timedelta(minutes=5))
                await station.call("BootNotification", BOOT_16)  # sent on reconnect by some
                assert open_transaction(server, "cs1") is None
                # A reading from before the closing (a queue replay) does not reopen it...
                await station.call("MeterValues", meter(transaction_id, START))
                assert open_transaction(server, "cs1") is None
                # ... one taken after it does: the transaction goes on.
                later = START + timedelta(minutes=6)
                await station.call("MeterValues", meter(transaction_id, later))
                assert open_transaction(server, "cs1") == str(transaction_id)
            assert events(server, "cs1")[-1] == (str(transaction_id), "Updated", "CsmsReopen")

    run(scenario())


# --- StatusNotification Available -----------------------------------------------------------


def test_available_closes_the_transaction_at_that_evse_only_after_a_grace(
    tmp_path: Path,
) -> None:
    clock = SimClock(START)

    def status(evse_id: int, at: datetime) -> dict[str, Any]:
        return {
            "timestamp": stamp(at),
            "connectorStatus": "Available",
            "evseId": evse_id,
            "connectorId": 1,
        }

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1="2.0.1") as server,
            peer(server, "cs1", OcppVersion.V201) as station,
        ):
            for tx, evse in (("tx-1", 1), ("tx-2", 2), ("tx-3", 3)):
                await station.call("TransactionEvent", started(tx, evse, START))
            # A status older than the transaction's last event says nothing of it.
            await station.call("StatusNotification", status(1, START - timedelta(minutes=1)))
            freed = START + timedelta(minutes=4)
            for evse in (1, 3):
                await station.call("StatusNotification", status(evse, freed))
            # The standard fixes no order: tx-3's own end, sent after its status, is awaited.
            end_3 = {**started("tx-3", 3, freed, seq_no=1), "eventType": "Ended"}
            await station.call("TransactionEvent", end_3)
            clock.advance(timedelta(seconds=29))
            await asyncio.sleep(0.1)
            assert [e for e in events(server, "cs1") if e[1] == "Ended"] == [
                ("tx-3", "Ended", "MeterValuePeriodic")
            ]
            clock.advance(timedelta(seconds=1))  # available_grace_s: 30
            await eventually(lambda: open_ids(server, "cs1") == ["tx-2"])
            assert [e for e in events(server, "cs1") if e[1] == "Ended"] == [
                ("tx-3", "Ended", "MeterValuePeriodic"),
                ("tx-1", "Ended", "CsmsAvailable"),
            ]
            row = closing(server, "tx-1")
            assert row["at"] == freed and row["evse_id"] == 1
            assert row["payload"]["reason"] == (
                "the station reported EVSE 1 Available and did not end the transaction"
            )

    run(scenario())


def test_1_6_available_on_a_connector_closes_and_connector_zero_does_not(tmp_path: Path) -> None:
    clock = SimClock(START)
    start = {"connectorId": 2, "idTag": "BUS", "meterStart": 0, "timestamp": stamp(START)}

    def status(connector_id: int) -> dict[str, Any]:
        return {
            "connectorId": connector_id,
            "errorCode": "NoError",
            "status": "Available",
            "timestamp": stamp(START + timedelta(minutes=1)),
        }

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1="1.6") as server,
            peer(server, "cs1", OcppVersion.V16) as station,
        ):
            transaction_id = (await station.call("StartTransaction", start))[2]["transactionId"]
            for connector_id in (0, 1):  # the whole station; another connector
                await station.call("StatusNotification", status(connector_id))
            clock.advance(timedelta(seconds=30))
            await asyncio.sleep(0.1)
            assert open_transaction(server, "cs1") == str(transaction_id)
            await station.call("StatusNotification", status(2))
            clock.advance(timedelta(seconds=30))
            await eventually(lambda: open_transaction(server, "cs1") is None)
            assert events(server, "cs1")[-1] == (str(transaction_id), "Ended", "CsmsAvailable")

    run(scenario())


# --- A station gone longer than offline_close_after_s -----------------------------------------


def test_a_station_gone_longer_than_the_limit_has_its_transactions_closed_and_a_later_event_reopens(
    tmp_path: Path,
) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1="2.0.1") as server:
            async with peer(server, "cs1", OcppVersion.V201) as station:
                await station.call("TransactionEvent", started("tx-1", 1, START))
            clock.advance(timedelta(minutes=14, seconds=59))
            await asyncio.sleep(0.1)
            assert open_transaction(server, "cs1") == "tx-1"  # a blip is not a departure
            clock.advance(timedelta(seconds=1))
            await eventually(lambda: open_transaction(server, "cs1") is None)
            row = closing(server, "tx-1")
            assert (row["trigger_reason"], row["at"]) == (
                "CsmsOffline",
                START + timedelta(minutes=15),
            )
            assert row["payload"]["reason"].startswith(
                "the station was not connected for 15 min (since 2026-07-15T19:00:00+00:00)"
            )
            async with peer(server, "cs1", OcppVersion.V201) as station:
                # Its queue: an event from before the closing describes the past...
                replay = started("tx-1", 1, START + timedelta(minutes=10), seq_no=1)
                await station.call("TransactionEvent", {**replay, "offline": True})
                assert open_transaction(server, "cs1") is None
                # ... one from after it says the transaction goes on.
                live = started("tx-1", 1, START + timedelta(minutes=16), seq_no=2)
                await station.call("TransactionEvent", live)
                assert open_transaction(server, "cs1") == "tx-1"
                # Connected again: the offline rule no longer applies.
                clock.advance(timedelta(hours=1))
                await asyncio.sleep(0.1)
                assert open_transaction(server, "cs1") == "tx-1"

    run(scenario())


def test_a_station_that_never_came_back_after_a_restart_is_closed_too(tmp_path: Path) -> None:
    clock = SimClock(START)

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1="2.0.1") as server:
            async with peer(server, "cs1", OcppVersion.V201) as station:
                await station.call("TransactionEvent", started("tx-1", 1, START))
            store = server.store
            restarted = CsmsServer(store, clock, CsmsSettings(port=0, offline_check_every_s=0.02))
            await server.reconciler.stop()  # the first server is gone (its sweeper with it)
            clock.advance(timedelta(minutes=10))
            async with restarted:  # counts cs1 as lost from its own start
                clock.advance(timedelta(minutes=14))
                await asyncio.sleep(0.1)
                assert open_transaction(restarted, "cs1") == "tx-1"
                clock.advance(timedelta(minutes=1))
                await eventually(lambda: open_transaction(restarted, "cs1") is None)
            assert closing(restarted, "tx-1")["at"] == START + timedelta(minutes=25)

    run(scenario())


def test_an_islanded_station_out_of_touch_keeps_its_transaction_until_the_grid_is_back(
    tmp_path: Path,
) -> None:
    """A storm takes a depot's link down with the grid: its bus still carries the building
    on the setpoint it holds, so its transaction is not closed while the site is islanded;
    once the grid is back, the offline rule applies."""
    clock = SimClock(START)
    islanded = {"cs1": True}

    async def scenario() -> None:
        async with csms(tmp_path, clock, cs1="2.0.1") as server:
            server.islanded_station = lambda station_id: islanded[station_id]
            async with peer(server, "cs1", OcppVersion.V201) as station:
                await station.call("TransactionEvent", started("tx-1", 1, START))
            clock.advance(timedelta(hours=2))
            await asyncio.sleep(0.1)
            assert open_transaction(server, "cs1") == "tx-1"
            islanded["cs1"] = False
            await eventually(lambda: open_transaction(server, "cs1") is None)
            assert closing(server, "tx-1")["trigger_reason"] == "CsmsOffline"

    run(scenario())
