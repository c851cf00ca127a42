"""Group commit of meter samples: many stations' samples in one transaction, and nobody told
"stored" before their transaction is committed (the durability rule of docs/architecture.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, select

from lightson.store import Store
from lightson.store import schema as db

AT = datetime(2026, 7, 15, 19, tzinfo=UTC)


def _sample(station: str, n: int) -> tuple[Any, dict[str, Any]]:
    row = {
        "station_id": station,
        "evse_id": 1,
        "at": AT + timedelta(seconds=10 * n),
        "power_kw": float(n),
    }
    return db.meter_samples, row


def _count(url: str, station: str, n: int) -> int:
    """Rows for one sample, read on a connection of its own (what another process sees)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            samples = db.meter_samples
            query = select(func.count()).where(
                samples.c.station_id == station, samples.c.power_kw == float(n)
            )
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def _hold_first_commit(store: Store) -> tuple[threading.Event, threading.Event]:
    """The writer's first transaction waits at its commit until released."""
    inside, release = threading.Event(), threading.Event()

    def wait(_connection: Any) -> None:
        if not release.is_set():
            inside.set()
            assert release.wait(30)

    event.listen(store.engine, "commit", wait)
    return inside, release


def test_many_stations_share_one_commit_and_each_waits_for_it(database_url: str) -> None:
    store = Store(database_url)
    try:
        inside, release = _hold_first_commit(store)
        first = store.write([_sample("cs-0", 0)])
        assert inside.wait(30)  # the first group is committing
        waiting = [store.write([_sample(f"cs-{i}", i)]) for i in range(1, 201)]
        seen: dict[int, int] = {}
        all_seen = threading.Event()

        def on_done(i: int) -> Any:
            def check(_future: Any) -> None:
                # Runs as the caller is told: its sample must already be visible to others.
                seen[i] = _count(database_url, f"cs-{i}", i)
                if len(seen) == len(waiting):
                    all_seen.set()

            return check

        for i, future in enumerate(waiting, start=1):
            future.add_done_callback(on_done(i))
        assert not first.done() and not any(f.done() for f in waiting)  # nobody told yet
        commits_before = store.commits
        release.set()
        first.result(30)
        for future in waiting:
            future.result(30)
        assert all_seen.wait(30)
        assert store.commits - commits_before <= 2  # the 200 waited together: one commit
        assert seen == {i: 1 for i in range(1, 201)}
        assert len(store.rows(db.meter_samples)) == 201
    finally:
        store.close()


def test_a_failed_commit_tells_every_caller_and_stores_none_of_their_samples(
    database_url: str,
) -> None:
    store = Store(database_url)
    try:
        store.write([_sample("cs-0", 0)]).result(30)
        inside, release, broken = threading.Event(), threading.Event(), threading.Event()

        def hold_then_fail(_connection: Any) -> None:
            if not release.is_set():  # the blocker's commit waits for the others to queue
                inside.set()
                assert release.wait(30)
            elif not broken.is_set():  # the next group's commit fails
                broken.set()
                raise OSError("disk full (simulated)")

        event.listen(store.engine, "commit", hold_then_fail)
        blocker = store.write([_sample("cs-0", 1)])
        assert inside.wait(30)
        doomed = [store.write([_sample(f"cs-{i}", 100 + i)]) for i in range(50)]
        release.set()
        blocker.result(30)
        for future in doomed:
            with pytest.raises(OSError, match="disk full"):
                future.result(30)
        assert broken.is_set() and store.write_failure is not None
        stored = {r["power_kw"] for r in store.rows(db.meter_samples)}
        assert stored == {0.0, 1.0}  # none of the 50 callers told "failed" is stored
        store.write([_sample("cs-9", 999)]).result(30)  # the writer goes on
        assert store.write_failure is None
    finally:
        store.close()


WRITER = textwrap.dedent(
    """
    import sys, threading
    from datetime import UTC, datetime, timedelta
    from lightson.store import Store
    from lightson.store import schema as db

    store = Store(sys.argv[1])
    at = datetime(2026, 7, 15, 19, tzinfo=UTC)
    lock = threading.Lock()

    def station(k):
        for n in range(100000):
            row = {"station_id": f"cs-{k}", "evse_id": 1, "power_kw": float(n),
                   "at": at + timedelta(seconds=10 * n)}
            store.write([(db.meter_samples, row)]).result()
            with lock:
                print(k, n, flush=True)

    for k in range(20):
        threading.Thread(target=station, args=(k,), daemon=True).start()
    threading.Event().wait()
    """
)


def test_a_writer_killed_mid_stream_loses_no_acknowledged_sample(
    database_url: str, tmp_path: Path
) -> None:
    Store(database_url).close()  # migrated before the writer starts
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, database_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment,
    )
    acknowledged: set[tuple[str, int]] = set()
    try:
        assert writer.stdout is not None
        while len(acknowledged) < 600:
            line = writer.stdout.readline()
            assert line, "the writer stopped before it was killed"
            k, n = line.split()
            acknowledged.add((f"cs-{k}", int(n)))
        os.kill(writer.pid, signal.SIGKILL)  # mid-stream: 20 stations have samples in flight
    finally:
        writer.kill()
        writer.wait(30)
    assert writer.returncode == -signal.SIGKILL
    store = Store(database_url)  # opened after the kill
    try:
        stored = {(r["station_id"], round(r["power_kw"])) for r in store.rows(db.meter_samples)}
    finally:
        store.close()
    assert acknowledged <= stored  # nothing a caller was told is stored is missing
    assert len(stored) >= len(acknowledged)


def test_a_bad_sample_in_a_copied_group_fails_alone(database_url: str) -> None:
    """Groups of many samples go in with COPY on PostgreSQL: a sample the database refuses
    (no EVSE) fails its own caller only, and a sample sent again is stored once."""

    def carried(i: int, **changed: Any) -> tuple[Any, dict[str, Any]]:
        # a sample carried by a transaction event: its seqNo makes a resend recognisable
        table, row = _sample(f"cs-{i}", i)
        return table, {**row, "transaction_id": "t", "seq_no": i, "entry": 0, **changed}

    store = Store(database_url)
    try:
        inside, release = _hold_first_commit(store)
        blocker = store.write([_sample("cs-0", 0)])
        assert inside.wait(30)
        good = [store.write([carried(i)]) for i in range(1, 60)]
        bad = store.write([carried(999, evse_id=None)])
        again = store.write([carried(1), carried(2)])  # resent
        release.set()
        for future in [blocker, *good, again]:
            future.result(30)
        with pytest.raises(Exception, match=r"(?i)null"):
            bad.result(30)
        stored = [r["power_kw"] for r in store.rows(db.meter_samples)]
        assert sorted(stored) == [float(i) for i in range(60)]
        # 40 resent and 10 new in one write: one COPY on PostgreSQL.
        store.write([carried(i) for i in range(20, 70)]).result(30)
        stored = [r["power_kw"] for r in store.rows(db.meter_samples)]
        assert sorted(stored) == [float(i) for i in range(70)]
        ids = [r["id"] for r in store.rows(db.meter_samples) if r["power_kw"] >= 60]
        assert [r["power_kw"] for r in store.rows(db.meter_samples)][-10:] == [
            float(i) for i in range(60, 70)
        ]  # in the order they came
        assert len(ids) == 10
    finally:
        store.close()
