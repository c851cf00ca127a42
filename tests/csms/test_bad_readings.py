"""Bad readings at the CSMS edge (issue #14, group 4): each frame gets the answer OCPP names,
its implausible values never reach ``meter_samples`` (what the planner reads), and the frame
is kept whole in ``quarantine``."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_server import START, csms, exchange, raw_station, run

from lightson.config import load_program
from lightson.csms.translate import timestamp
from lightson.csms.wire import OcppVersion
from lightson.domain.time import SimClock
from lightson.services.live import LiveControl
from lightson.store import schema as db
from live_support import IN_EVENT, FakeSink, plugged

AT = "2026-07-15T19:00:00Z"  # the server's clock (START)


def sampled(value: Any, measurand: str, unit: str | None = None, multiplier: int | None = None):
    """One 2.x sampledValue."""
    entry: dict[str, Any] = {"value": value, "measurand": measurand}
    unit_of_measure = {"unit": unit, "multiplier": multiplier}
    if unit is not None or multiplier is not None:
        entry["unitOfMeasure"] = {k: v for k, v in unit_of_measure.items() if v is not None}
    return entry


def meter_values_2x(*values: dict[str, Any], at: str = AT) -> dict[str, Any]:
    return {"evseId": 1, "meterValue": [{"timestamp": at, "sampledValue": list(values)}]}


def meter_values_16(value: str, measurand: str = "SoC") -> dict[str, Any]:
    return {
        "connectorId": 1,
        "transactionId": 7,
        "meterValue": [
            {"timestamp": AT, "sampledValue": [{"value": value, "measurand": measurand}]}
        ],
    }


def transaction_event(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": "Started",
        "timestamp": AT,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "tx-1"},
        "evse": {"id": 1},
    }
    return {**payload, **changes}


SOC_150 = sampled(150, "SoC", "Percent")
GOOD_POWER = sampled(7000, "Power.Active.Import", "W")  # 7 kW at a 60 kW charger

CASES = [
    # (name, version, action, payload, answer code or None for the normal answer,
    #  quarantined field, reason)
    (
        "soc-150",
        OcppVersion.V201,
        "MeterValues",
        meter_values_2x(SOC_150),
        None,
        "meterValue[0].sampledValue[0].value",
        "soc-range",
    ),
    (
        "soc-minus-20",
        OcppVersion.V21,
        "MeterValues",
        meter_values_2x(sampled(-20, "SoC", "Percent")),
        None,
        "meterValue[0].sampledValue[0].value",
        "soc-range",
    ),
    (
        "power-1e308",
        OcppVersion.V201,
        "MeterValues",
        meter_values_2x(sampled(1e308, "Power.Active.Import", "W")),
        None,
        "meterValue[0].sampledValue[0].value",
        "power-range",
    ),
    (
        "multiplier-9",
        OcppVersion.V21,
        "MeterValues",
        meter_values_2x(sampled(7, "Power.Active.Import", "W", 9)),
        None,
        "meterValue[0].sampledValue[0].value",
        "power-range",
    ),
    (
        "multiplier-400",
        OcppVersion.V201,
        "MeterValues",
        meter_values_2x(sampled(7, "Power.Active.Import", "W", 400)),
        None,
        "meterValue[0].sampledValue[0].value",
        "not-finite",
    ),
    (
        "transaction-event-soc-150",
        OcppVersion.V201,
        "TransactionEvent",
        transaction_event(meterValue=[{"timestamp": AT, "sampledValue": [SOC_150]}]),
        None,
        "meterValue[0].sampledValue[0].value",
        "soc-range",
    ),
    (
        "a-year-old-reading",
        OcppVersion.V21,
        "MeterValues",
        meter_values_2x(sampled(50, "SoC", "Percent"), at="2025-07-15T19:00:00Z"),
        None,
        "meterValue[0].timestamp",
        "timestamp-stale",
    ),
    (
        "inf",
        OcppVersion.V16,
        "MeterValues",
        meter_values_16("inf", "Power.Active.Import"),
        "PropertyConstraintViolation",
        "meterValue[0].sampledValue[0].value",
        "PropertyConstraintViolation",
    ),
    (
        "NaN",
        OcppVersion.V16,
        "MeterValues",
        meter_values_16("NaN"),
        "PropertyConstraintViolation",
        "meterValue[0].sampledValue[0].value",
        "PropertyConstraintViolation",
    ),
    (
        "abc",
        OcppVersion.V16,
        "MeterValues",
        meter_values_16("abc", "Energy.Active.Import.Register"),
        "PropertyConstraintViolation",
        "meterValue[0].sampledValue[0].value",
        "PropertyConstraintViolation",
    ),
    (
        "soc-150-in-1.6",
        OcppVersion.V16,
        "MeterValues",
        meter_values_16("150"),
        None,
        "meterValue[0].sampledValue[0].value",
        "soc-range",
    ),
    (
        "transaction-id-37",
        OcppVersion.V201,
        "TransactionEvent",
        transaction_event(transactionInfo={"transactionId": "x" * 37}),
        "PropertyConstraintViolation",
        "transactionInfo.transactionId",
        "PropertyConstraintViolation",
    ),
    (
        "seq-no-2-63",
        OcppVersion.V21,
        "TransactionEvent",
        transaction_event(seqNo=2**63),
        "TypeConstraintViolation",
        "seqNo",
        "TypeConstraintViolation",
    ),
    (
        "no-offset",
        OcppVersion.V201,
        "TransactionEvent",
        transaction_event(timestamp="2026-07-15T19:00:00"),
        "FormatViolation",
        "timestamp",
        "FormatViolation",
    ),
    (
        "not-a-date-time",
        OcppVersion.V21,
        "TransactionEvent",
        transaction_event(timestamp="yesterday"),
        "FormatViolation",
        "timestamp",
        "FormatViolation",
    ),
    (
        "no-offset-in-1.6",
        OcppVersion.V16,
        "StatusNotification",
        {
            "connectorId": 1,
            "errorCode": "NoError",
            "status": "Available",
            "timestamp": "2026-07-15T19:00:00",
        },
        "FormationViolation",
        "timestamp",
        "FormatViolation",
    ),
]


@pytest.mark.parametrize(
    ("version", "action", "payload", "code", "field", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_bad_reading_is_answered_as_ocpp_says_kept_out_and_quarantined(
    tmp_path: Path,
    version: OcppVersion,
    action: str,
    payload: dict[str, Any],
    code: str | None,
    field: str,
    reason: str,
) -> None:
    clock = SimClock(START)
    frame = [2, "m1", action, payload]

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1=(version.value, "negative-limit")) as server,
            raw_station(server, "cs1", version) as ws,
        ):
            answer = await exchange(ws, json.dumps(frame))
            if code is None:
                assert answer[:2] == [3, "m1"]
            else:
                assert answer[:3] == [4, "m1", code]
                assert field.replace(".", "/") in answer[4]["field"] or answer[4]["field"] == field
            assert server.store.rows(db.meter_samples) == []  # nothing for the planner
            (row,) = server.store.rows(db.quarantine)
            assert (row["source"], row["station_id"], row["action"]) == ("ocpp", "cs1", action)
            assert (row["field"], row["reason"]) == (field, reason)
            assert json.loads(row["raw"]) == frame
            # The session goes on.
            assert (await exchange(ws, '[2,"hb","Heartbeat",{}]'))[:2] == [3, "hb"]

    run(scenario())


def test_the_good_readings_of_a_sample_stay_and_the_event_is_stored(tmp_path: Path) -> None:
    clock = SimClock(START)
    payload = transaction_event(
        meterValue=[{"timestamp": AT, "sampledValue": [SOC_150, GOOD_POWER]}]
    )

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1=("2.0.1", "negative-limit")) as server,
            raw_station(server, "cs1", OcppVersion.V201) as ws,
        ):
            answer = await exchange(ws, json.dumps([2, "m1", "TransactionEvent", payload]))
            # A TransactionEvent is answered normally: refused, the station would resend it.
            assert answer == [3, "m1", {}]
            (sample,) = server.store.rows(db.meter_samples)
            assert (sample["power_kw"], sample["soc"]) == (7.0, None)
            (event,) = server.store.rows(db.transaction_events)
            assert event["transaction_id"] == "tx-1"
            (row,) = server.store.rows(db.quarantine)
            assert (row["field"], row["value"]) == ("meterValue[0].sampledValue[0].value", "1.5")

    run(scenario())


def test_phases_plausible_alone_but_not_together_leave_out_the_total(tmp_path: Path) -> None:
    clock = SimClock(START)
    # 3 x 40 kW = 120 kW at a 60 kW charger: each phase within 1.5 x 60, the sum not.
    phases = [
        {**sampled(40, "Power.Active.Import", "kW"), "phase": phase} for phase in ("L1", "L2", "L3")
    ]
    payload = meter_values_2x(*phases, sampled(55, "SoC", "Percent"))

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1=("2.1", "negative-limit")) as server,
            raw_station(server, "cs1", OcppVersion.V21) as ws,
        ):
            assert (await exchange(ws, json.dumps([2, "m1", "MeterValues", payload])))[0] == 3
            (sample,) = server.store.rows(db.meter_samples)
            assert (sample["power_kw"], sample["soc"]) == (None, 0.55)
            (row,) = server.store.rows(db.quarantine)
            assert (row["field"], row["reason"]) == ("meterValue[0]", "power-range")

    run(scenario())


def test_the_loop_plans_on_the_latest_good_soc_not_a_quarantined_one(tmp_path: Path) -> None:
    """SoC 50 % then 150 % from depot-evse1: the loop plans bus-7 (or bus-12) at 50 %."""
    program = load_program("example")
    program = replace(program, sites=(program.site("school-beverly"),))
    clock = SimClock(IN_EVENT)
    started = transaction_event(
        timestamp=timestamp(IN_EVENT - timedelta(minutes=2)),
        meterValue=[
            {
                "timestamp": timestamp(IN_EVENT - timedelta(minutes=2)),
                "sampledValue": [sampled(50, "SoC", "Percent")],
            }
        ],
    )
    bad = meter_values_2x(SOC_150, at=timestamp(IN_EVENT - timedelta(minutes=1)))

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, **{"depot-evse1": ("2.0.1", "negative-limit")}) as server,
            raw_station(server, "depot-evse1", OcppVersion.V201) as ws,
        ):
            plugged(server.store, "depot-evse2", 0.8, IN_EVENT - timedelta(minutes=1))
            assert (await exchange(ws, json.dumps([2, "t", "TransactionEvent", started])))[0] == 3
            assert (await exchange(ws, json.dumps([2, "m", "MeterValues", bad])))[0] == 3
            assert len(server.store.rows(db.quarantine)) == 1
            loop = LiveControl(program, server.store, FakeSink(), clock)
            status = await loop.tick("school-beverly")
            assert sorted(status.soc.values()) == [0.5, 0.8]

    run(scenario())


def test_a_1_6_stop_with_an_unreadable_value_still_ends_the_transaction(tmp_path: Path) -> None:
    """Refused, the StopTransaction would be resent and dropped: the value is left out."""
    clock = SimClock(START)
    start = {"connectorId": 1, "idTag": "bus-7", "meterStart": 0, "timestamp": AT}

    async def scenario() -> None:
        async with (
            csms(tmp_path, clock, cs1=("1.6", "negative-limit")) as server,
            raw_station(server, "cs1", OcppVersion.V16) as ws,
        ):
            started = await exchange(ws, json.dumps([2, "s", "StartTransaction", start]))
            stop = {
                "transactionId": started[2]["transactionId"],
                "meterStop": 1000,
                "timestamp": AT,
                "transactionData": [
                    {"timestamp": AT, "sampledValue": [{"value": "abc"}, {"value": "1000"}]}
                ],
            }
            assert await exchange(ws, json.dumps([2, "e", "StopTransaction", stop])) == [3, "e", {}]
            events = server.store.rows(db.transaction_events)
            assert [e["event_type"] for e in events] == ["Started", "Ended"]
            (sample,) = server.store.rows(db.meter_samples)
            assert sample["energy_imported_kwh"] == 1.0  # the readable register stays
            (row,) = server.store.rows(db.quarantine)
            assert (row["field"], row["value"], row["reason"]) == (
                "transactionData[0].sampledValue[0].value",
                "abc",
                "not-a-number",
            )

    run(scenario())
