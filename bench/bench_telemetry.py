"""Telemetry storage benchmark (``make bench-telemetry``): meter samples written and read back.

Part 1, inserts per second, SQLite and PostgreSQL side by side in one run, through the store's
own writer (``Store.write``, the path the CSMS takes before it answers a station):

- **one by one**: one caller writes a sample and waits for its commit before the next, so
  every sample is a transaction of its own;
- **batched**: ``--callers`` stations each hand over a sample at once and wait for their own
  commit; the writer commits them in groups (group commit), one multi-row insert per group.

Both durable: SQLite in WAL with ``synchronous=NORMAL`` (the store's setting), PostgreSQL with
``fsync=on`` and ``synchronous_commit=on`` (this bench starts its own throwaway cluster; the
tests' cluster runs with ``fsync=off``).

Part 2, a season report's read: ``--stations`` chargers at one sample per 10 s over ``--days``
days (a synthetic season), and the 15-minute interval data the live report and settlement read
(``store.rollups.station_intervals`` over the whole season for every station), timed (a) from
the raw samples (nothing kept), (b) the first time with rollups (computed and kept), (c) from
the kept rollups. The extrapolation to 100,000 stations is printed below the tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from lightson.devservices import postgres_cluster
from lightson.store import Store, rollups
from lightson.store import schema as db

START = datetime(2026, 6, 1, 4, tzinfo=UTC)  # a season from 1 June, midnight EDT
SAMPLE_S = 10


def _sample(station: str, at: datetime, n: int) -> tuple[Any, dict[str, Any]]:
    kw = 7.2 if (n // 360) % 2 == 0 else -5.0  # charge an hour, discharge an hour
    return db.meter_samples, {"station_id": station, "evse_id": 1, "at": at, "power_kw": kw}


def inserts(url: str, count: int, callers: int) -> dict[str, float]:
    """Samples per second one by one and batched, on a fresh store at ``url``."""
    store = Store(url)
    try:
        now = datetime.now(UTC).replace(microsecond=0)  # on time: no rollup marks
        t0 = time.perf_counter()
        for n in range(count):
            store.write([_sample("one", now + timedelta(milliseconds=n), n)]).result(60)
        one = count / (time.perf_counter() - t0)
        commits0 = store.commits
        t0 = time.perf_counter()
        done, n = 0, 0
        while done < count * 10:
            waiting = [
                store.write([_sample(f"cs-{k}", now + timedelta(seconds=n), n)])
                for k in range(callers)
            ]
            for future in waiting:
                future.result(60)
            done, n = done + callers, n + 1
        batched = done / (time.perf_counter() - t0)
        group = done / max(1, store.commits - commits0)
    finally:
        store.close()
    return {"one": one, "batched": batched, "group": group}


def load_season(url: str, stations: int, days: int) -> tuple[Store, int]:
    """A synthetic season written through the store's writer, 2,000 samples a group."""
    store = Store(url)
    per_station = days * 86400 // SAMPLE_S
    for k in range(stations):
        rows = [
            _sample(f"st-{k:05d}", START + timedelta(seconds=SAMPLE_S * n), n)
            for n in range(per_station)
        ]
        futures = [store.write(rows[i : i + 2000]) for i in range(0, len(rows), 2000)]
        for future in futures:
            future.result(600)
    return store, stations * per_station


def season_reads(store: Store, stations: int, days: int) -> dict[str, float]:
    ids = [f"st-{k:05d}" for k in range(stations)]
    end = START + timedelta(days=days)
    later = end + timedelta(days=1)
    timings: dict[str, float] = {}
    answers = {}
    saved = rollups.SEAL_AFTER
    for name in ("raw", "cold", "warm"):
        rollups.SEAL_AFTER = timedelta(days=10**6) if name == "raw" else saved
        t0 = time.perf_counter()
        found = rollups.station_intervals(store, ids, START, end, now=later)
        timings[name] = time.perf_counter() - t0
        answers[name] = sum(float(f.mean_kw.sum()) for f in found.values())
    rollups.SEAL_AFTER = saved
    assert np.isclose(answers["raw"], answers["warm"]) and np.isclose(
        answers["cold"], answers["warm"]
    )
    with store.engine.connect() as connection:
        timings["rollup_rows"] = float(
            connection.scalar(select(func.count()).select_from(db.meter_rollups)) or 0
        )
    return timings


def _row(*cells: str) -> None:
    print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="samples one by one (10x batched)")
    parser.add_argument("--callers", type=int, default=500, help="stations writing at once")
    parser.add_argument("--stations", type=int, default=10, help="stations in the season")
    parser.add_argument("--days", type=int, default=30, help="days in the season")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lightson-bench-telemetry-"))
    pg_folder = Path(tempfile.mkdtemp(prefix="lightson-bench-pg-"))
    machine = platform.processor() or platform.machine()
    print(f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"- machine: nproc {os.cpu_count()}, {machine}, python {platform.python_version()}")
    try:
        with postgres_cluster(pg_folder, durable=True) as pg_url:
            urls = {"SQLite": f"sqlite:///{folder / 'bench.db'}", "PostgreSQL": pg_url}
            print()
            _row("database", "one by one (samples/s)", "batched (samples/s)", "per commit", "ratio")
            _row("---", "---:", "---:", "---:", "---:")
            for name, url in urls.items():
                r = inserts(url, args.count, args.callers)
                ratio = f"{r['batched'] / r['one']:.1f}×"
                _row(name, f"{r['one']:,.0f}", f"{r['batched']:,.0f}", f"{r['group']:,.0f}", ratio)
            # The season on the same PostgreSQL database, beside part 1's few samples.
            urls["SQLite"] = f"sqlite:///{folder / 'season.db'}"
            print(
                f"\nSeason: {args.stations} stations x {args.days} days, a sample per {SAMPLE_S} s"
            )
            print()
            header = ["database", "samples", "load (samples/s)", "raw rows", "rollups, first read"]
            _row(*header, "rollups, kept", "raw / kept", "rollup rows")
            _row("---", *["---:"] * 7)
            results = {}
            for name, url in urls.items():
                t0 = time.perf_counter()
                store, samples = load_season(url, args.stations, args.days)
                load = samples / (time.perf_counter() - t0)
                try:
                    t = season_reads(store, args.stations, args.days)
                finally:
                    store.close()
                results[name] = (samples, t)
                cells = [f"{samples:,}", f"{load:,.0f}", f"{t['raw']:.2f} s", f"{t['cold']:.2f} s"]
                ratio = f"{t['raw'] / t['warm']:.0f}×"
                _row(name, *cells, f"{t['warm']:.3f} s", ratio, f"{t['rollup_rows']:,.0f}")
            _extrapolate(*results["PostgreSQL"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(pg_folder, ignore_errors=True)


def _extrapolate(samples: int, t: dict[str, float]) -> None:
    """Linear in rows read, on one core: 100,000 stations over a 122-day season."""
    per_sample = t["raw"] / samples
    per_rollup = t["warm"] / max(t["rollup_rows"], 1)
    season = 100_000 * 122 * 86400 // SAMPLE_S
    rolled = 100_000 * 122 * 96
    print(
        f"\nExtrapolation, 100,000 stations x 122 days at one sample per {SAMPLE_S} s "
        f"(PostgreSQL, linear in rows read, one core): {season:,} samples, "
        f"{rolled:,} rollup rows; a season report from raw rows "
        f"{per_sample * season / 3600:,.0f} h, from kept rollups "
        f"{per_rollup * rolled / 3600:,.1f} h; writing needs {100_000 // SAMPLE_S:,} samples/s."
    )


if __name__ == "__main__":
    main()
