"""The group-committing writer: cancelled waiters, closing, bad rows and stations."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lightson.domain.errors import DuplicateNameError
from lightson.store import StationRecord, Store
from lightson.store import schema as db

AT = datetime(2026, 7, 15, 19, tzinfo=UTC)


def _status(n: int) -> tuple[object, dict[str, object]]:
    row = {"station_id": "cs", "evse_id": 1, "connector_id": 1, "status": f"s{n}", "at": AT}
    return db.evse_status, row


def test_a_waiter_that_gives_up_does_not_stop_the_writer(database_url: str) -> None:
    store = Store(database_url)

    async def scenario() -> None:
        waiters = [asyncio.ensure_future(store.commit([_status(n)])) for n in range(50)]
        waiters[3].cancel()  # e.g. the station hung up while its rows were being written
        await asyncio.gather(*waiters, return_exceptions=True)
        await store.commit([_status(99)])  # the writer is still alive

    asyncio.run(scenario())
    statuses = {r["status"] for r in store.rows(db.evse_status)}
    assert "s99" in statuses and len(statuses) >= 50  # cancelled rows are written all the same
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.write([_status(100)])


def test_one_bad_row_fails_alone(database_url: str) -> None:
    store = Store(database_url)
    good = store.write([_status(1)])
    bad = store.write([(db.evse_status, {"station_id": "cs"})])  # NOT NULL columns missing
    good.result(10)
    with pytest.raises(Exception, match=r"(?i)not.null"):
        bad.result(10)
    assert [r["status"] for r in store.rows(db.evse_status)] == ["s1"]
    store.close()


def test_times_come_back_as_utc_and_stations_are_unique(database_url: str) -> None:
    store = Store(database_url)
    store.write([_status(1)]).result(10)
    assert store.rows(db.evse_status)[0]["at"] == AT
    record = StationRecord("cs-1", "scrypt$x", "2.1", "central-setpoint", 11.0, "school")
    store.add_station(record)
    assert store.station("cs-1") == record
    assert store.station("nobody") is None
    with pytest.raises(DuplicateNameError):
        store.add_station(record)
    store.close()


def test_times_with_any_offset_are_stored_as_utc(database_url: str) -> None:
    from zoneinfo import ZoneInfo

    store = Store(database_url)
    local = AT.astimezone(ZoneInfo("America/New_York"))  # 15:00 EDT = 19:00 UTC
    row = {"station_id": "cs", "evse_id": 1, "connector_id": 1, "status": "x", "at": local}
    store.write([(db.evse_status, row)]).result(10)
    assert store.rows(db.evse_status)[0]["at"] == AT
    assert store.rows(db.evse_status)[0]["at"].utcoffset() == timedelta(0)
    store.close()


def test_a_site_meter_reading_sent_again_replaces_the_first(database_url: str) -> None:
    store = Store(database_url)
    try:
        at = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
        reading = {"site_id": "s", "at": at, "load_kw": 10.0, "pv_kw": None, "received_at": at}
        store.write([(db.site_meter, reading)]).result(10)
        store.write([(db.site_meter, {**reading, "load_kw": 12.5})]).result(10)
        (row,) = store.rows(db.site_meter)
        assert row["load_kw"] == 12.5
    finally:
        store.close()


def test_a_new_database_file_is_private_and_one_that_cannot_be_opened_is_named(
    tmp_path: Path,
) -> None:
    import stat

    from lightson.domain.errors import StorageError

    path = tmp_path / "private.db"
    store = Store(f"sqlite:///{path}")
    try:
        store.write([]).result(5)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        wal = path.with_name("private.db-wal")
        if wal.exists():
            assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    finally:
        store.close()
    with pytest.raises(StorageError, match=r"cannot open the database sqlite:///.*nowhere"):
        Store(f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}")
