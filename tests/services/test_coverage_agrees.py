"""The dashboard's Data page and the season report compute coverage the same way: the same
lines from the same store, by hand, even when the report is made long after the records end
(a demo's day read months later) and a session was never ended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lightson.api.app import Operations, create_app
from lightson.config import load_program
from lightson.domain.time import SimClock
from lightson.services.access import AccessService
from lightson.services.completeness import data_completeness
from lightson.services.events import EventService
from lightson.services.live import LiveControl
from lightson.services.season_report import completeness_table
from lightson.store import Store
from lightson.store import schema as db
from live_support import FakeSink

T0 = datetime(2026, 7, 15, 17, tzinfo=UTC)
LAST = T0 + timedelta(minutes=120)  # the last record
MONTHS_LATER = T0 + timedelta(days=140)  # when someone makes the season report


def _records(store: Store) -> None:
    def started(station: str, minutes: int, kind: str = "Started") -> tuple[object, dict]:
        at = T0 + timedelta(minutes=minutes)
        row = {"station_id": station, "evse_id": 1, "transaction_id": f"t-{station}",
               "seq_no": minutes, "event_type": kind, "at": at, "received_at": at,
               "payload": {}}  # fmt: skip
        return db.transaction_events, row

    def reading(station: str, minutes: int) -> tuple[object, dict]:
        at = T0 + timedelta(minutes=minutes)
        return db.meter_samples, {"station_id": station, "evse_id": 1, "at": at,
                                  "power_kw": 10.0, "soc": 0.6}  # fmt: skip

    rows = [
        # evse1: plugged from 0, never ended (the demo stopped), a reading every 10 minutes
        # to the end: covered throughout.
        started("depot-evse1", 0),
        *(reading("depot-evse1", m) for m in range(0, 121, 10)),
        # evse2: plugged 0-60, readings at 0 and 30, each good for 15 min: 30 of 60 min.
        started("depot-evse2", 0),
        started("depot-evse2", 60, "Ended"),
        reading("depot-evse2", 0),
        reading("depot-evse2", 30),
    ]
    store.write(rows).result(10)  # type: ignore[arg-type]


def test_the_data_page_and_the_season_report_agree_by_hand(tmp_path: Path) -> None:
    program = load_program("example")
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        _records(store)
        clock = SimClock(LAST)  # the dashboard, looked at when the records end
        events = EventService(store, clock)
        live = LiveControl(
            program,
            store,
            FakeSink(),
            clock,
            lambda s: events.book().for_site(s.site_id, s.enrollments),
        )
        token = AccessService(store, clock).issue("staff", "admin")
        client = TestClient(create_app(Operations(program, store, clock, live)))
        page = client.get(
            "/api/completeness?hours=24", headers={"Authorization": f"Bearer {token}"}
        )
        assert page.status_code == 200, page.text
        shown = {row["station_id"]: row for row in page.json()}
        # The report, made months later over the last 150 days (the CLI's wall clock).
        report = completeness_table(
            store, program, events.book(), MONTHS_LATER - timedelta(days=150), MONTHS_LATER
        ).set_index("station_id")
        for station, hand in (("depot-evse1", 1.0), ("depot-evse2", 0.5)):
            assert shown[station]["completeness"] == pytest.approx(hand)
            assert report.loc[station, "completeness"] == pytest.approx(hand)
            for column in ("plugged_hours", "covered_hours"):
                assert report.loc[station, column] == pytest.approx(
                    shown[station][column], abs=0.01
                )
            assert report.loc[station, "samples"] == shown[station]["samples"]
        assert shown["depot-evse1"]["plugged_hours"] == pytest.approx(2.0)
        assert list(report.reset_index().columns) == list(shown["depot-evse1"])  # one row shape
        # What the report computed before: the open session plugged until the wall clock.
        (before,) = data_completeness(
            store, ["depot-evse1"], MONTHS_LATER - timedelta(days=150), MONTHS_LATER
        )
        assert before.completeness is not None and before.completeness < 0.01
    finally:
        store.close()
