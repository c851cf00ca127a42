"""Monthly partitions of ``meter_samples`` on PostgreSQL (native declarative partitioning by
range of ``at``, in UTC months). SQLite keeps one plain table.

Migration 0007 turns the table into a partitioned one; from then on the store's writer makes
the partition of a month the first time a sample of that month is written, together with the
next month's (so the partition a live server needs is there a month ahead), each in a short
transaction of its own before the samples' group commit. There is no default partition: a
default one would have to be scanned, and could block, when a month's partition is added.

A month's partition is named ``meter_samples_yYYYYmMM``; dropping an old month is dropping
its table (``docs/operations.md``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

LOGGER = logging.getLogger("lightson.store")
TABLE = "meter_samples"

Month = tuple[int, int]  # (year, month), UTC


def is_partition(name: str | None) -> bool:
    """A month's partition (left out when alembic compares the schema with ``schema.py``)."""
    return name is not None and re.fullmatch(rf"{TABLE}_y\d{{4}}m\d{{2}}", name) is not None


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    """Alembic's ``include_name`` hook: the schema without the months' partitions."""
    return not (type_ == "table" and is_partition(name))


def month_of(at: datetime) -> Month:
    utc = at.astimezone(UTC) if at.tzinfo is not None else at
    return utc.year, utc.month


def next_month(month: Month) -> Month:
    year, number = month
    return (year + 1, 1) if number == 12 else (year, number + 1)


def partition_name(month: Month) -> str:
    return f"{TABLE}_y{month[0]:04d}m{month[1]:02d}"


def is_partitioned(connection: Connection) -> bool:
    """True on PostgreSQL when ``meter_samples`` is a partitioned table."""
    if connection.dialect.name != "postgresql":
        return False
    query = text(
        "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relname = :name AND pg_table_is_visible(c.oid)"
    )
    return connection.execute(query, {"name": TABLE}).first() is not None


def existing_months(connection: Connection) -> set[Month]:
    """The months that have a partition."""
    query = text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :name"
    )
    months = set()
    for (name,) in connection.execute(query, {"name": TABLE}):
        suffix = str(name)[len(TABLE) + 2 :]  # "YYYYmMM"
        months.add((int(suffix[:4]), int(suffix[5:7])))
    return months


def create_partition(connection: Connection, month: Month) -> None:
    """The partition holding [first of ``month``, first of the next month) in UTC."""
    start, end = month, next_month(month)
    connection.execute(
        text(
            f'CREATE TABLE IF NOT EXISTS "{partition_name(month)}" PARTITION OF {TABLE} '
            f"FOR VALUES FROM ('{start[0]:04d}-{start[1]:02d}-01 00:00:00+00') "
            f"TO ('{end[0]:04d}-{end[1]:02d}-01 00:00:00+00')"
        )
    )


class Partitions:
    """The writer's view of which months have a partition (PostgreSQL, partitioned table)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with engine.connect() as connection:
            self.enabled = is_partitioned(connection)
            self.months = existing_months(connection) if self.enabled else set()
        self.created = 0  # partitions this store made (tests, operations)

    def ensure(self, instants: Iterable[datetime]) -> None:
        """Make sure the month of each instant, and the month after it, has a partition."""
        if not self.enabled:
            return
        wanted = set()
        for month in {month_of(at) for at in instants}:
            wanted |= {month, next_month(month)}
        for month in sorted(wanted - self.months):
            self._create(month)

    def _create(self, month: Month) -> None:
        try:
            with self.engine.begin() as connection:
                create_partition(connection, month)
            self.created += 1
            LOGGER.info("made the partition %s", partition_name(month))
        except DBAPIError:
            # Another process made it at the same moment (IF NOT EXISTS is not atomic
            # against a concurrent creator): fine if it is there now.
            with self.engine.connect() as connection:
                if month not in existing_months(connection):
                    raise
        self.months.add(month)
