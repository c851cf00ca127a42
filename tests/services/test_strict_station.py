"""The live loop against a strict OCPP 2.1 station written here from the standard (not our
emulator): it declares the vehicle's power limits in ``NotifyEVChargingNeeds``, checks every
``SetChargingProfile`` against the OCPP 2.1 schema and those limits, and answers ``Rejected``
(with a ``statusInfo``) to a setpoint outside {0} ∪ [min, max] of either direction."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import ocpp
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.headers import build_authorization_basic

from lightson.csms.auth import hash_password
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.csms.translate import timestamp
from lightson.domain.time import SimClock
from lightson.services.live import LiveControl
from lightson.store import StationRecord, Store
from lightson.store import schema as db
from live_support import IN_EVENT, events_of, school
from net_support import run

SITE = "school-beverly"
PASSWORD = "correct horse battery"
DIGEST = hash_password(PASSWORD, salt=b"0123456789abcdef")
SCHEMAS = Path(ocpp.__file__).parent / "v21" / "schemas"


def schema_check(action: str, payload: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / f"{action}Request.json").read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(payload)


@dataclass
class Declared:
    """The vehicle's limits in W as a station sends them (positive magnitudes); ``None``:
    not sent. ``hidden_max_discharge_w``: what the station really discharges at most,
    never declared."""

    max_charge_w: int | None = None
    min_charge_w: int | None = None
    max_discharge_w: int | None = None
    min_discharge_w: int | None = None
    hidden_max_discharge_w: int | None = None

    def v2x(self) -> dict[str, int]:
        sent = {
            "maxChargePower": self.max_charge_w,
            "minChargePower": self.min_charge_w,
            "maxDischargePower": self.max_discharge_w,
            "minDischargePower": self.min_discharge_w,
        }
        return {name: watts for name, watts in sent.items() if watts is not None}

    def refusal(self, setpoint_w: float) -> str | None:
        """Why a setpoint breaks the declared limits (``None``: it doesn't)."""
        if setpoint_w > 0:
            low, high = self.min_charge_w or 0, self.max_charge_w
        elif setpoint_w < 0:
            low, high = self.min_discharge_w or 0, self.max_discharge_w
            if self.hidden_max_discharge_w is not None:
                high = min(high or self.hidden_max_discharge_w, self.hidden_max_discharge_w)
        else:
            return None
        if abs(setpoint_w) < low:
            return "BelowMinimum"
        if high is not None and abs(setpoint_w) > high:
            return "AboveMaximum"
        return None


@dataclass
class StrictStation:
    """One EVSE, one vehicle; every ``TxProfile`` setpoint received and the answer given."""

    station_id: str
    ws: ClientConnection
    declared: Declared
    received: list[tuple[float, str]] = field(default_factory=list)  # (W, status)
    pending: dict[str, asyncio.Future[list[Any]]] = field(default_factory=dict)

    async def read(self) -> None:
        async for text in self.ws:
            frame = json.loads(text)
            if frame[0] == 2:
                await self.ws.send(json.dumps([3, frame[1], self.answer(frame[2], frame[3])]))
            elif frame[1] in self.pending:
                self.pending.pop(frame[1]).set_result(frame)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        message_id = str(uuid.uuid4())
        waiter = asyncio.get_running_loop().create_future()
        self.pending[message_id] = waiter
        await self.ws.send(json.dumps([2, message_id, action, payload]))
        frame = await asyncio.wait_for(waiter, 10)
        assert frame[0] == 3, frame
        return frame[2]  # type: ignore[no-any-return]

    def answer(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "GetVariables":
            return {
                "getVariableResult": [
                    {
                        "attributeStatus": "Accepted",
                        "attributeValue": {
                            "Enabled": "true",
                            "SupportedOperationModes": "ChargingOnly,CentralSetpoint,Idle",
                        }[item["variable"]["name"]],
                        "component": item["component"],
                        "variable": item["variable"],
                    }
                    for item in payload["getVariableData"]
                ]
            }
        if action == "SetChargingProfile":
            return self.charging_profile(payload)
        if action == "ClearChargingProfile":
            return {"status": "Accepted"}
        raise AssertionError(f"the strict station got {action}")

    def charging_profile(self, payload: dict[str, Any]) -> dict[str, Any]:
        schema_check("SetChargingProfile", payload)
        profile = payload["chargingProfile"]
        if profile["chargingProfilePurpose"] != "TxProfile":
            return {"status": "Accepted"}  # the charge-only default at boot
        assert profile["transactionId"] == "tx-strict"
        periods = [p for s in profile["chargingSchedule"] for p in s["chargingSchedulePeriod"]]
        assert len(periods) == 1 and periods[0]["operationMode"] == "CentralSetpoint"
        setpoint_w = float(periods[0]["setpoint"])
        assert periods[0].get("dischargeLimit", setpoint_w) == setpoint_w or setpoint_w >= 0
        refusal = self.declared.refusal(setpoint_w)
        status = "Accepted" if refusal is None else "Rejected"
        self.received.append((setpoint_w, status))
        if refusal is None:
            return {"status": status}
        return {"status": status, "statusInfo": {"reasonCode": refusal}}

    async def start(self, soc_percent: int, at: datetime) -> None:
        boot = {"chargingStation": {"model": "Strict", "vendorName": "Test"}, "reason": "PowerUp"}
        assert (await self.call("BootNotification", boot))["status"] == "Accepted"
        meter = {
            "timestamp": timestamp(at),
            "sampledValue": [
                {"value": soc_percent, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}},
                {"value": 0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
            ],
        }
        event = {
            "eventType": "Started",
            "timestamp": timestamp(at),
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "tx-strict", "chargingState": "EVConnected"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [meter],
        }
        await self.call("TransactionEvent", event)
        needs = {
            "evseId": 1,
            "timestamp": timestamp(at),
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC_BPT",
                "availableEnergyTransfer": ["DC", "DC_BPT"],
                "controlMode": "DynamicControl",
                "v2xChargingParameters": self.declared.v2x(),
            },
        }
        schema_check("NotifyEVChargingNeeds", needs)
        assert (await self.call("NotifyEVChargingNeeds", needs))["status"] == "Accepted"


@asynccontextmanager
async def strict_stations(
    server: CsmsServer, declared: dict[str, Declared], soc_percent: int, at: datetime
) -> AsyncIterator[dict[str, StrictStation]]:
    stations: dict[str, StrictStation] = {}
    readers = []
    try:
        for station_id, limits in declared.items():
            ws = await connect(
                f"{server.url}/{station_id}",
                subprotocols=["ocpp2.1"],  # type: ignore[list-item]
                additional_headers={
                    "Authorization": build_authorization_basic(station_id, PASSWORD)
                },
            )
            station = stations[station_id] = StrictStation(station_id, ws, limits)
            readers.append(asyncio.create_task(station.read()))
            await station.start(soc_percent, at)
        yield stations
    finally:
        for station in stations.values():
            await station.ws.close()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


def open_store(path: Path) -> Store:
    store = Store(f"sqlite:///{path}")
    for station_id in ("depot-evse1", "depot-evse2"):
        store.add_station(StationRecord(station_id, DIGEST, "2.1", "central-setpoint", 60.0))
    return store


def test_every_setpoint_the_strict_station_receives_lies_within_what_it_declared(
    tmp_path: Path,
) -> None:
    # The reproductions: a station declaring maxDischargePower 5000 W received -41952 W, an EV
    # declaring minDischargePower 1400 W received -230.9 W.
    program = school()
    clock = SimClock(IN_EVENT)
    store = open_store(tmp_path / "strict.db")
    declared = {
        "depot-evse1": Declared(11_000, 1_000, 5_000, 1_400),
        "depot-evse2": Declared(11_000, 1_000, 20_000, 1_400),
    }

    async def scenario() -> None:
        async with CsmsServer(store, clock, CsmsSettings(port=0)) as server:
            at = IN_EVENT - timedelta(minutes=1)
            async with strict_stations(server, declared, 80, at) as stations:
                loop = LiveControl(program, store, server, clock, events_of(program))
                status = await loop.tick(SITE)
                assert status.answers == {"depot-evse1": "Accepted", "depot-evse2": "Accepted"}
                assert stations["depot-evse1"].received == [(-5000.0, "Accepted")]
                assert stations["depot-evse2"].received == [(-20000.0, "Accepted")]

    try:
        run(scenario())
        needs = store.rows(db.charging_needs, station_id="depot-evse1")
        assert [(n["max_discharge_kw"], n["min_discharge_kw"]) for n in needs] == [(5.0, 1.4)]
        assert [(n["max_charge_kw"], n["min_charge_kw"]) for n in needs] == [(11.0, 1.0)]
    finally:
        store.close()


@settings(max_examples=8, deadline=None)
@given(
    limits=st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 70_000)),
            st.one_of(st.none(), st.integers(0, 12_000)),
            st.one_of(st.none(), st.integers(0, 70_000)),
            st.one_of(st.none(), st.integers(0, 12_000)),
        ),
        min_size=2,
        max_size=2,
    ),
    soc_percent=st.integers(25, 95),
    in_event=st.booleans(),
)
def test_over_random_declared_limits_the_strict_station_refuses_nothing(
    limits: list[tuple[int | None, ...]], soc_percent: int, in_event: bool
) -> None:
    import tempfile

    now = IN_EVENT if in_event else IN_EVENT - timedelta(hours=8)
    program = school()
    clock = SimClock(now)
    declared = {
        station_id: Declared(*said)
        for station_id, said in zip(("depot-evse1", "depot-evse2"), limits, strict=True)
    }

    async def scenario(store: Store) -> list[tuple[float, str]]:
        async with (
            CsmsServer(store, clock, CsmsSettings(port=0)) as server,
            strict_stations(server, declared, soc_percent, now) as stations,
        ):
            loop = LiveControl(program, store, server, clock, events_of(program))
            await loop.tick(SITE)
            return [r for s in stations.values() for r in s.received]

    with tempfile.TemporaryDirectory() as folder:
        store = open_store(Path(folder) / "strict.db")
        try:
            received = run(scenario(store))
        finally:
            store.close()
    assert len(received) == 2
    assert all(status == "Accepted" for _, status in received), (received, declared)


def test_a_rejected_discharge_is_recorded_and_the_site_re_plans_within_what_was_accepted(
    tmp_path: Path,
) -> None:
    # The station declares 60 kW of discharge, but refuses to discharge at all.
    program = school()
    clock = SimClock(IN_EVENT)
    store = open_store(tmp_path / "strict.db")
    declared = {"depot-evse1": Declared(max_discharge_w=60_000, hidden_max_discharge_w=0)}

    async def scenario() -> list[tuple[float, str]]:
        async with CsmsServer(store, clock, CsmsSettings(port=0)) as server:
            at = IN_EVENT - timedelta(minutes=1)
            async with strict_stations(server, declared, 80, at) as stations:
                loop = LiveControl(program, store, server, clock, events_of(program))
                running = asyncio.create_task(loop.run())
                station = stations["depot-evse1"]
                try:
                    # The first tick's setpoint, then the woken tick's, answered and stored.
                    while len(store.rows(db.setpoints_sent, station_id="depot-evse1")) < 2:
                        await asyncio.sleep(0.01)
                finally:
                    running.cancel()
                    await asyncio.gather(running, return_exceptions=True)
                return station.received

    try:
        received = run(scenario())
        (first_w, first), (second_w, second) = received[:2]
        assert first_w < 0 and first == "Rejected"
        assert second_w >= 0 and second == "Accepted"  # no discharge asked again
        rows = store.rows(db.setpoints_sent, station_id="depot-evse1")
        assert rows[0]["status"] == "Rejected"
        assert rows[0]["message"] == (
            "AboveMaximum; rejected: at most 0.0 kW of discharge this session"
        )
        assert rows[1]["status"] == "Accepted" and rows[1]["power_kw"] >= 0
    finally:
        store.close()
