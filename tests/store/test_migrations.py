"""Migrations (alembic) against SQLite and a throwaway PostgreSQL cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from lightson.store import Store
from lightson.store import schema as db
from lightson.store.live import station_states
from lightson.store.migrate import upgrade
from lightson.store.partitions import include_name
from live_support import plugged

AT = datetime(2026, 7, 15, 19, tzinfo=UTC)


def test_the_migrations_build_exactly_the_schema(database_url: str) -> None:
    engine = create_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": include_name})
        differences = compare_metadata(context, db.metadata)
        head = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert differences == []  # schema.py changed without a migration, or the other way
    assert head is not None
    upgrade(create_engine(database_url))  # a second time changes nothing


def test_a_database_from_before_migrations_is_completed_and_stamped(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        db.stations.create(connection)  # what an early version made with create_all
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {t.name for t in db.metadata.sorted_tables} <= tables
    assert "alembic_version" in tables


def test_live_state_queries_agree_on_both_databases(database_url: str) -> None:
    store = Store(database_url)
    try:
        plugged(store, "cs-a", 0.42, AT - timedelta(minutes=3), tx="t1")
        plugged(store, "cs-b", 0.9, AT - timedelta(minutes=2), tx="t2")
        ended = {
            "station_id": "cs-b",
            "evse_id": 1,
            "transaction_id": "t2",
            "seq_no": 1,
            "event_type": "Ended",
            "at": AT,
            "received_at": AT,
            "payload": {},
        }
        later = {"station_id": "cs-a", "evse_id": 1, "at": AT, "power_kw": -7.5}  # no SoC
        store.write([(db.transaction_events, ended), (db.meter_samples, later)]).result(10)
        states = station_states(store, ["cs-a", "cs-b", "cs-c"])
    finally:
        store.close()
    assert states["cs-a"].plugged and states["cs-a"].transaction_id == "t1"
    assert states["cs-a"].soc == 0.42 and states["cs-a"].soc_at == AT - timedelta(minutes=3)
    assert states["cs-a"].power_kw == -7.5 and states["cs-a"].power_at == AT
    assert not states["cs-b"].plugged and states["cs-b"].soc == 0.9
    assert states["cs-c"] == type(states["cs-c"])("cs-c")  # nothing known
