"""Data completeness, by hand: plugged time, the part fresh readings covered, what went
missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lightson.services.completeness import data_completeness
from lightson.store import Store
from lightson.store import schema as db

T0 = datetime(2026, 7, 15, 19, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_plugged_time_covered_by_readings_by_hand(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        event = {
            "station_id": "evse-a",
            "evse_id": 1,
            "transaction_id": "t1",
            "payload": {},
        }
        rows = [
            (
                db.transaction_events,
                {**event, "seq_no": 0, "event_type": "Started", "at": at(0), "received_at": at(0)},
            ),
            (
                db.transaction_events,
                {
                    **event,
                    "seq_no": 1,
                    "event_type": "Ended",
                    "at": at(120),
                    "received_at": at(120),
                },
            ),
            (
                db.sequence_gaps,
                {
                    "station_id": "evse-a",
                    "transaction_id": "t1",
                    "first_missing": 3,
                    "last_missing": 4,
                    "noticed_at": at(60),
                },
            ),
        ]
        # Readings at 0, 10, 50 and 90 min, each good for 15 min: 0-25, 50-65, 90-105.
        for minutes in (0, 10, 50, 90):
            rows.append(
                (
                    db.meter_samples,
                    {
                        "station_id": "evse-a",
                        "evse_id": 1,
                        "at": at(minutes),
                        "power_kw": 5.0,
                        "soc": 0.5,
                    },
                )
            )
        # A power reading without a SoC at 30 min: the loop cannot plan on it, so it
        # covers nothing (it is still a reading).
        rows.append(
            (
                db.meter_samples,
                {"station_id": "evse-a", "evse_id": 1, "at": at(30), "power_kw": 5.0, "soc": None},
            )
        )
        for minutes, status in ((0, "Accepted"), (15, "Rejected"), (30, "Accepted")):
            rows.append(
                (
                    db.setpoints_sent,
                    {
                        "station_id": "evse-a",
                        "evse_id": 1,
                        "power_kw": 5.0,
                        "power_w_sent": 5000.0,
                        "valid_until": at(minutes + 10),
                        "sent_at": at(minutes),
                        "status": status,
                    },
                )
            )
        store.write(rows).result(10)
        (line, idle) = data_completeness(store, ["evse-a", "evse-b"], at(-60), at(180))
        assert line.plugged_hours == pytest.approx(2.0)
        assert line.covered_hours == pytest.approx(55 / 60)
        assert line.completeness == pytest.approx(55 / 120)
        assert (line.samples, line.last_reading_at, line.sequence_gaps) == (5, at(90), 1)
        assert (line.setpoints_sent, line.setpoints_not_accepted) == (3, 1)
        assert idle.plugged_hours == 0.0 and idle.completeness is None and idle.samples == 0
        # A window that starts in the middle: plugged from 60 min on, a reading from before
        # the window (50 min) still covers its first 5 minutes.
        (late,) = data_completeness(store, ["evse-a"], at(60), at(180))
        assert late.plugged_hours == pytest.approx(1.0)
        assert late.covered_hours == pytest.approx(20 / 60)
    finally:
        store.close()


def test_overlapping_sessions_count_their_time_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        base = {"station_id": "evse-c", "evse_id": 1, "payload": {}}
        rows = [  # t1's Ended was lost; t2 came and went while t1 still looks open
            (
                db.transaction_events,
                {
                    **base,
                    "transaction_id": "t1",
                    "seq_no": 0,
                    "event_type": "Started",
                    "at": at(0),
                    "received_at": at(0),
                },
            ),
            (
                db.transaction_events,
                {
                    **base,
                    "transaction_id": "t2",
                    "seq_no": 0,
                    "event_type": "Started",
                    "at": at(30),
                    "received_at": at(30),
                },
            ),
            (
                db.transaction_events,
                {
                    **base,
                    "transaction_id": "t2",
                    "seq_no": 1,
                    "event_type": "Ended",
                    "at": at(60),
                    "received_at": at(60),
                },
            ),
        ]
        store.write(rows).result(10)
        (line,) = data_completeness(store, ["evse-c"], at(0), at(180))
        assert line.plugged_hours == pytest.approx(3.0)  # not 3.5
    finally:
        store.close()
