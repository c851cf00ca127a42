"""The database: an embedded SQLite file by default, PostgreSQL by URL.

Writes go through one writer thread that commits in groups: every record handed to
:meth:`Store.write` is in a committed transaction when its future resolves, and records that
arrive while a commit runs share the next one. The CSMS awaits that future before it answers a
charger, so a crash after the answer loses nothing the charger was told we have.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the
process being killed at any moment (it could be lost only to a power cut of the machine; use
PostgreSQL where that matters).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from lightson.domain.errors import DuplicateNameError, StorageError
from lightson.store import bulk, rollups, schema
from lightson.store.migrate import upgrade
from lightson.store.partitions import Partitions
from lightson.store.stations import StationRecord

LOGGER = logging.getLogger("lightson.store")
MAX_GROUP = 2000


@dataclass
class _Write:
    rows: Sequence[tuple[Table, Mapping[str, Any]]]
    done: Future[None] = field(default_factory=Future)


def default_url(path: str = "lightson.db") -> str:
    return f"sqlite:///{path}"


def _create_private(database: str | None) -> None:
    """A new SQLite file is created readable by its owner only (0600): it holds readings
    from people's homes and the hashes of every token. SQLite gives its -wal and -shm files
    the database file's permissions."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.exists() and path.parent.is_dir():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Store:
    """Records and telemetry in one database, with a group-committing writer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url)
        shown = self.engine.url.render_as_string(hide_password=True)
        if self.engine.dialect.name == "sqlite":
            _create_private(self.engine.url.database)
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            upgrade(self.engine)  # alembic: every database at the newest schema
        except (OperationalError, OSError) as error:
            self.engine.dispose()
            reason = str(getattr(error, "orig", None) or error).splitlines()[0]
            raise StorageError(f"cannot open the database {shown}: {reason}") from None
        self.partitions = Partitions(self.engine)  # PostgreSQL: meter_samples by month
        # The last commit that failed because of the database itself (read-only, disk full,
        # server gone), and when: cleared by the next commit that succeeds (/api/health).
        self.write_failure: tuple[datetime, str] | None = None
        self._queue: queue.Queue[_Write | None] = queue.Queue()
        self._writer = threading.Thread(target=self._run, name="lightson-store", daemon=True)
        self._closing = threading.Lock()
        self._closed = False
        self._writer.start()
        self.commits = 0

    # --- writing ---------------------------------------------------------------------------

    def write(self, rows: Iterable[tuple[Table, Mapping[str, Any]]]) -> Future[None]:
        """Queue rows for the next commit; the future resolves once they are committed."""
        item = _Write(list(rows))
        if not item.rows:
            item.done.set_result(None)
            return item.done
        with self._closing:
            if self._closed or not self._writer.is_alive():
                raise RuntimeError("the store is closed")
            self._queue.put(item)
        return item.done

    async def commit(self, rows: Iterable[tuple[Table, Mapping[str, Any]]]) -> None:
        """Write rows and wait until they are committed."""
        await asyncio.wrap_future(self.write(rows))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(item)
            self._commit_group(group)

    def _commit_group(self, group: list[_Write]) -> None:
        # A waiter that gave up (its task was cancelled) no longer wants an answer; its rows
        # are still written, since the station may already have been told nothing, or more.
        rows = [row for item in group for row in item.rows]
        samples = [row for table, row in rows if table.name == schema.meter_samples.name]
        try:
            self.partitions.ensure(row["at"] for row in samples if "at" in row)
            stale = rollups.stale_marks(samples, datetime.now(UTC))
            with self.engine.begin() as connection:
                # One statement per table for the whole group: many stations' samples go
                # in one multi-row insert and one commit (group commit). Late samples
                # invalidate the cached rollups they change, in the same transaction.
                _insert(connection, [*rows, *((schema.meter_rollups_stale, m) for m in stale)])
            self.commits += 1
            self.write_failure = None
        except (IntegrityError, DataError) as error:
            if len(group) == 1:
                LOGGER.exception("a write failed")
                _settle(group[0].done, error)
                return
            # One bad record must not fail the others: commit each on its own.
            for item in group:
                self._commit_group([item])
            return
        except Exception as error:  # the database itself failed: the whole group did
            LOGGER.exception("a group of %d writes failed", len(group))
            reason = str(getattr(error, "orig", None) or error).splitlines()[0][:200]
            self.write_failure = (datetime.now(UTC), reason)
            for item in group:
                _settle(item.done, error)
            return
        for item in group:
            _settle(item.done, None)

    def close(self) -> None:
        """Commit what is queued, stop the writer and release the database. Writes asked for
        after this are refused, never left waiting."""
        with self._closing:
            self._closed = True
            if self._writer.is_alive():
                self._queue.put(None)
        self._writer.join()
        self.engine.dispose()

    # --- stations ----------------------------------------------------------------------------

    def add_station(self, station: StationRecord) -> None:
        """Register a station (refused if the id is taken)."""
        with self.engine.begin() as connection:
            taken = connection.execute(
                select(schema.stations.c.id).where(schema.stations.c.id == station.id)
            ).first()
            if taken is not None:
                raise DuplicateNameError("station", station.id)
            connection.execute(insert(schema.stations), [station.row()])

    def station(self, station_id: str) -> StationRecord | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(schema.stations).where(schema.stations.c.id == station_id)
            ).first()
        return None if row is None else StationRecord.from_row(dict(row._mapping))

    # --- reading ---------------------------------------------------------------------------

    def rows(self, table: Table, **equal: Any) -> list[dict[str, Any]]:
        """Every row of a table matching the given column values, oldest first."""
        query = select(table)
        for name, value in equal.items():
            query = query.where(table.c[name] == value)
        first_key = next(iter(table.primary_key.columns))
        with self.engine.connect() as connection:
            result = connection.execute(query.order_by(first_key))
            return [_aware(dict(row._mapping)) for row in result]


def _settle(done: Future[None], error: BaseException | None) -> None:
    if not done.set_running_or_notify_cancel():
        return  # cancelled by its waiter
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _insert(connection: Connection, rows: Sequence[tuple[Table, Mapping[str, Any]]]) -> None:
    # One statement per table and set of columns (a statement binds the same columns in
    # every row): COPY for many samples on PostgreSQL, else executemany, which psycopg sends
    # pipelined and SQLite in one step.
    by_table: dict[tuple[str, frozenset[str]], tuple[Table, list[Mapping[str, Any]]]] = {}
    for table, row in rows:
        key = (table.name, frozenset(row))
        by_table.setdefault(key, (table, []))[1].append(_utc(row))
    for (name, columns), (table, table_rows) in by_table.items():
        if bulk.use_copy(connection, name, columns, len(table_rows)):
            bulk.copy_samples(connection, table_rows)  # PostgreSQL: COPY
        else:
            connection.execute(_insert_statement(connection, table), table_rows)


def _insert_statement(connection: Connection, table: Table) -> Any:
    """Tables with a natural key keep the first copy (a resent transaction event) or take
    the newest (a corrected site-meter reading)."""
    keys = schema.UPSERT_KEYS.get(table.name)
    if keys is not None and connection.dialect.name in ("sqlite", "postgresql"):
        statement = (
            sqlite_insert(table)
            if connection.dialect.name == "sqlite"
            else postgresql_insert(table)
        )
        others = [c.name for c in table.columns if c.name not in keys and not c.primary_key]
        return statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: statement.excluded[name] for name in others},
        )
    if table.name not in schema.IDEMPOTENT_TABLES:
        return insert(table)
    if connection.dialect.name == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing()
    if connection.dialect.name == "postgresql":
        return postgresql_insert(table).on_conflict_do_nothing()
    return insert(table)


def _utc(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """Times with any offset are stored as UTC (SQLite would keep the wall time)."""
    if not any(isinstance(v, datetime) and v.tzinfo not in (None, UTC) for v in row.values()):
        return row
    return {
        k: v.astimezone(UTC) if isinstance(v, datetime) and v.tzinfo is not None else v
        for k, v in row.items()
    }


def aware(at: datetime) -> datetime:
    """SQLite gives back naive datetimes; everything we store is UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _aware(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: aware(value) if isinstance(value, datetime) else value for key, value in row.items()
    }
