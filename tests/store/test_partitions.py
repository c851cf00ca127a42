"""meter_samples partitioned by UTC month on PostgreSQL (store.partitions, migration 0007)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import create_engine, func, select, text

from lightson.store import Store
from lightson.store import schema as db
from lightson.store.migrate import alembic_config, upgrade
from lightson.store.partitions import month_of, next_month
from pg_support import fresh_database

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def pg_url(postgres_cluster: str) -> str:
    return fresh_database(postgres_cluster)


def _sample(station: str, at: datetime, kw: float) -> tuple[Any, dict[str, Any]]:
    return db.meter_samples, {"station_id": station, "evse_id": 1, "at": at, "power_kw": kw}


def _per_partition(store: Store) -> dict[str, int]:
    query = text("SELECT tableoid::regclass::text, count(*) FROM meter_samples GROUP BY 1")
    with store.engine.connect() as connection:
        return {str(name): int(n) for name, n in connection.execute(query)}


def test_samples_land_in_their_months_partition(pg_url: str) -> None:
    store = Store(pg_url)
    try:
        july = datetime(2026, 7, 1, tzinfo=UTC)
        store.write(
            [
                _sample("cs", july - timedelta(seconds=1), 1.0),  # 30 June 23:59:59 UTC
                _sample("cs", july, 2.0),
                _sample("cs", datetime(2026, 8, 31, 23, 59, tzinfo=UTC), 4.0),
                # 20:30 on 31 July in New York is 00:30 on 1 August UTC: months are UTC's.
                _sample("cs", datetime(2026, 7, 31, 20, 30, tzinfo=NEW_YORK), 8.0),
            ]
        ).result(30)
        assert _per_partition(store) == {
            "meter_samples_y2026m06": 1,
            "meter_samples_y2026m07": 1,
            "meter_samples_y2026m08": 2,
        }
    finally:
        store.close()


def test_a_new_months_partition_is_made_when_needed_and_one_ahead(pg_url: str) -> None:
    store = Store(pg_url)
    other = Store(pg_url)  # a second gateway, whose view of the partitions is older
    try:
        now = datetime.now(UTC)
        assert {month_of(now), next_month(month_of(now))} <= store.partitions.months
        march = datetime(2030, 3, 10, tzinfo=UTC)
        assert (2030, 3) not in store.partitions.months
        store.write([_sample("cs", march, 1.0)]).result(30)
        assert store.partitions.created == 2  # March 2030, and April ahead of time
        with store.engine.connect() as connection:
            names = set(
                connection.scalars(
                    text(
                        "SELECT relname FROM pg_class WHERE relkind = 'r' "
                        "AND relname LIKE 'meter_samples_y2030%'"
                    )
                )
            )
        assert names == {"meter_samples_y2030m03", "meter_samples_y2030m04"}
        other.write([_sample("cs-2", march + timedelta(days=40), 2.0)]).result(30)  # April
        assert _per_partition(store)["meter_samples_y2030m04"] == 1
    finally:
        other.close()
        store.close()


def test_queries_across_months_agree_with_hand_computed_sums(pg_url: str) -> None:
    store = Store(pg_url)
    try:
        start = datetime(2026, 6, 30, 22, tzinfo=UTC)
        # One reading an hour from 22:00 on 30 June to 03:00 on 1 July: 1, 2, 3, 4, 5, 6 kW.
        store.write(
            [_sample("cs", start + timedelta(hours=h), float(h + 1)) for h in range(6)]
        ).result(30)
        samples = db.meter_samples
        window = (samples.c.at >= datetime(2026, 6, 30, 23, tzinfo=UTC)) & (
            samples.c.at < datetime(2026, 7, 1, 2, tzinfo=UTC)
        )
        with store.engine.connect() as connection:
            total = connection.execute(select(func.sum(samples.c.power_kw)).where(window))
            assert total.scalar() == 2.0 + 3.0 + 4.0  # 23:00 (June), 00:00 and 01:00 (July)
            count = connection.execute(select(func.count()).select_from(samples)).scalar()
        assert count == 6
        assert _per_partition(store) == {"meter_samples_y2026m06": 2, "meter_samples_y2026m07": 4}
    finally:
        store.close()


def test_the_migration_moves_existing_samples_into_partitions(pg_url: str) -> None:
    engine = create_engine(pg_url)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0006")  # a database from before partitioning
        connection.execute(
            db.meter_samples.insert(),
            [
                {"station_id": "cs", "evse_id": 1, "at": datetime(2026, 5, 31, tzinfo=UTC)},
                {"station_id": "cs", "evse_id": 1, "at": datetime(2026, 9, 1, tzinfo=UTC)},
            ],
        )
    upgrade(engine)
    engine.dispose()
    store = Store(pg_url)
    try:
        assert store.partitions.enabled
        assert _per_partition(store) == {"meter_samples_y2026m05": 1, "meter_samples_y2026m09": 1}
        store.write([_sample("cs", datetime(2026, 9, 2, tzinfo=UTC), 1.0)]).result(30)
        ids = [r["id"] for r in store.rows(db.meter_samples)]
        assert ids == [1, 2, 3]  # the id sequence carried on
    finally:
        store.close()
