"""Rollups per station and 15-minute interval (store.rollups) on a hand-made morning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from lightson.store import Store, rollups
from lightson.store import schema as db
from lightson.store.rollups import STEP, stale_marks, station_intervals

T0 = datetime(2026, 7, 15, 10, tzinfo=UTC)
LATER = datetime(2026, 7, 16, tzinfo=UTC)  # a reader's clock the next day: all sealed
SOON = T0 + timedelta(minutes=70)  # a reader's clock just after: nothing sealed


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _sample(minutes: float, kw: float | None, soc: float | None = None) -> tuple[Any, Any]:
    row = {"station_id": "cs", "evse_id": 1, "at": _at(minutes), "power_kw": kw, "soc": soc}
    return db.meter_samples, row


# 10:00 6 kW (SoC 40 %), 10:10 -12 kW (holds 15 min: to 10:25), 10:40 3 kW (SoC 45 %,
# holds to 10:55), 10:50 a SoC reading alone (50 %).
MORNING = [
    _sample(0, 6.0, 0.40),
    _sample(10, -12.0),
    _sample(40, 3.0, 0.45),
    _sample(50, None, 0.5),
]
# By hand, kWh per interval: 10:00 6 x 10/60 - 12 x 5/60 = 0; 10:15 -12 x 10/60 = -2;
# 10:30 3 x 5/60 = 0.25; 10:45 3 x 10/60 = 0.5.
KWH = [0.0, -2.0, 0.25, 0.5]


def _kwh(found: rollups.Intervals) -> list[float]:
    return [float(x) for x in found.mean_kw * STEP.total_seconds() / 3600]


def _cached(store: Store) -> tuple[int, int]:
    with store.engine.connect() as connection:
        kept = connection.scalar(select(func.count()).select_from(db.meter_rollups))
        stale = connection.scalar(select(func.count()).select_from(db.meter_rollups_stale))
    return int(kept or 0), int(stale or 0)


def test_rollups_of_a_hand_made_morning(database_url: str) -> None:
    store = Store(database_url)
    try:
        store.write(MORNING).result(30)
        fresh = station_intervals(store, ["cs", "nobody"], T0, _at(60), now=SOON)["cs"]
        assert _cached(store)[0] == 0  # nothing sealed: nothing kept
        assert _kwh(fresh) == pytest.approx(KWH, abs=1e-12)
        assert list(fresh.samples) == [2, 0, 1, 1] and list(fresh.kw_samples) == [2, 0, 1, 0]
        assert np.allclose(fresh.first_soc, [0.40, np.nan, 0.45, 0.5], equal_nan=True)
        assert fresh.last_soc_s[3] == _at(50).timestamp()
        sealed = station_intervals(store, ["cs", "nobody"], T0, _at(60), now=LATER)
        # 4 intervals x 2 stations kept and their marks gone; 11:00, which the 10:50 reading
        # reaches, was not read and stays marked.
        assert _cached(store) == (8, 1)
        assert _kwh(sealed["cs"]) == pytest.approx(KWH, abs=1e-12)
        assert _kwh(sealed["nobody"]) == [0.0] * 4
        with store.engine.begin() as connection:  # the samples gone: the rollups answer
            connection.execute(delete(db.meter_samples))
        again = station_intervals(store, ["cs"], T0, _at(60), now=LATER)["cs"]
        assert _kwh(again) == pytest.approx(KWH, abs=1e-12)
        assert list(again.samples) == [2, 0, 1, 1]
        assert np.allclose(again.last_soc, [0.40, np.nan, 0.45, 0.5], equal_nan=True)
    finally:
        store.close()


def test_a_late_sample_makes_its_intervals_computed_again(database_url: str) -> None:
    store = Store(database_url)
    try:
        store.write(MORNING).result(30)
        station_intervals(store, ["cs"], T0, _at(60), now=LATER)
        assert _cached(store)[1] == 1  # 11:00, not read
        # A station back from an outage sends 10:20, 0 kW: -12 kW now holds 10:10-10:20
        # only, and 0 kW from 10:20 to 10:35.
        store.write([_sample(20, 0.0)]).result(30)
        assert _cached(store)[1] == 1 + 2  # 10:15 and 10:30 marked, in the sample's commit
        found = station_intervals(store, ["cs"], T0, _at(60), now=LATER)["cs"]
        assert _kwh(found) == pytest.approx([0.0, -1.0, 0.25, 0.5], abs=1e-12)
        assert _cached(store) == (4, 1)
        assert list(found.samples) == [2, 1, 1, 1]
    finally:
        store.close()


def test_stale_marks_cover_what_a_sample_can_change() -> None:
    now = _at(600)
    marks = stale_marks([{"station_id": "cs", "at": _at(20)}], now)
    assert [m["interval_start"] for m in marks] == [_at(15), _at(30)]
    on_edge = stale_marks([{"station_id": "cs", "at": _at(30)}], now)
    assert [m["interval_start"] for m in on_edge] == [_at(30), _at(45)]
    assert stale_marks([{"station_id": "cs", "at": now - timedelta(minutes=5)}], now) == []


def test_a_season_across_months_sums_as_by_hand(database_url: str) -> None:
    store = Store(database_url)
    try:
        start = datetime(2026, 6, 30, 23, tzinfo=UTC)
        # 4 kW from 23:00 on 30 June, a reading every 5 minutes, for 2 hours: 8 kWh, half in
        # June, half in July (two partitions on PostgreSQL).
        rows = [
            (db.meter_samples, {"station_id": "cs", "evse_id": 1, "at": at, "power_kw": 4.0})
            for at in (start + timedelta(minutes=5 * k) for k in range(24))
        ]
        store.write(rows).result(30)
        for _ in range(2):  # computed, then from the kept rollups
            found = station_intervals(store, ["cs"], start, start + timedelta(hours=2), now=LATER)
            kwh = _kwh(found["cs"])
            assert sum(kwh[:4]) == pytest.approx(4.0) and sum(kwh) == pytest.approx(8.0)
        assert _cached(store)[0] == 8
    finally:
        store.close()
