"""Meter samples into PostgreSQL with COPY (psycopg's ``Cursor.copy``).

COPY cannot skip a row that is already there (a station resends a transaction event it got no
answer for), so a group's samples are copied into a staging table of the connection's own
(temporary, emptied at each commit) and moved with one ``INSERT ... SELECT ... ON CONFLICT DO
NOTHING``, in the group's transaction. Measured against SQLAlchemy's pipelined
``executemany``: 1.5 to 2.3 times the samples per second on 2,000-sample groups
(``docs/benchmarks.md``). Small groups keep ``executemany`` (three statements for one row
cost more than one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError

from lightson.store import schema

STAGE = "meter_samples_stage"
COPY_MIN_ROWS = 20  # fewer samples than this go in with executemany


def use_copy(connection: Connection, table_name: str, columns: frozenset[str], n: int) -> bool:
    return (
        connection.dialect.name == "postgresql"
        and table_name == schema.meter_samples.name
        and n >= COPY_MIN_ROWS
        and "id" not in columns
    )


def copy_samples(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (all with the same columns) into ``meter_samples``, skipping samples
    already stored. Errors come out as SQLAlchemy's, as from any other statement."""
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    every = ", ".join(f'"{c.name}"' for c in schema.meter_samples.columns if c.name != "id")
    connection.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ON COMMIT DELETE ROWS AS "
        f"SELECT {every} FROM {schema.meter_samples.name} WITH NO DATA"
    )
    statement = f"COPY {STAGE} ({names}) FROM STDIN"
    raw = connection.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
    except Exception as error:
        # Into a table without constraints, what fails is a value COPY cannot take: as
        # SQLAlchemy says it, so the group is retried write by write and the bad one fails.
        raise DataError(statement, None, error) from None
    # In the order copied (ctid), so ids grow in the order the samples came.
    connection.exec_driver_sql(
        f"INSERT INTO {schema.meter_samples.name} ({names}) "
        f"SELECT {names} FROM {STAGE} ORDER BY ctid ON CONFLICT DO NOTHING"
    )
