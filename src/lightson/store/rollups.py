"""Meter samples summed up per station and 15-minute interval, so the live report, the live
loop's month's peak and settlement read ~96 rows per station-day instead of 8,640 samples.

A rollup is computed from the samples the first time it is asked for and kept once its
interval is **sealed** (its end, plus ``HOLD``, plus ``SEAL_AFTER``, has passed). Why not
maintained as samples are written: an interval's held power depends on the *next* sample
(a reading holds until the next one, at most ``HOLD``) and on late samples a station sends
after an outage, so the writer, whose commit every station waits for before its answer,
would have to read neighbouring samples for every sample it writes. Readers, by contrast, ask
for sealed intervals almost only (a season report, settlement of past events).

A sample that arrives late (timed more than ``MARK_AFTER`` before the writer's clock) marks the
intervals it changes (``meter_rollups_stale``) in the same transaction that stores it; a reader
recomputes a marked interval from the samples and deletes only the marks it saw. A reader that
computes while such a sample commits keeps a stale rollup only until the next read, which
finds the mark. ``MARK_AFTER`` < ``SEAL_AFTER`` leaves half an hour for clock differences
between processes and the writer's queue.

The figures, per interval ``[t, t + STEP)``:

- ``mean_kw``: the power readings, each holding until the next one and at most ``HOLD``,
  averaged over the interval (time no reading covers counts as 0 kW; + into the vehicle);
- ``samples`` and ``kw_samples``: samples timed in it, and those with a power reading;
- ``first_soc``/``last_soc``: its first and last state-of-charge readings, with their times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sqlalchemy import and_, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from lightson.store import schema as db

if TYPE_CHECKING:
    from lightson.store.db import Store

STEP = timedelta(minutes=15)  # the rollup interval
HOLD = timedelta(minutes=15)  # a meter value older than this says nothing about now
MARK_AFTER = timedelta(minutes=30)  # a sample timed this far back marks its intervals stale
SEAL_AFTER = timedelta(hours=1)  # an interval is kept once its end + HOLD is this far back
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOLD_S = HOLD.total_seconds()


def floor_step(at: datetime) -> datetime:
    """The start of the rollup interval holding ``at``."""
    at = at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return at - (at - EPOCH) % STEP


def stale_marks(samples: Iterable[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The intervals late samples change (a sample at ``t`` changes the interval holding it
    and, through the readings held across ``[t, t + HOLD)``, the ones that span reaches)."""
    marks = set()
    for row in samples:
        at, station = row.get("at"), row.get("station_id")
        if not isinstance(at, datetime) or not isinstance(station, str):
            continue
        if at >= now - MARK_AFTER:
            continue
        first = floor_step(at)
        for k in range(int((at + HOLD - first) // STEP) + 1):
            marks.add((station, first + k * STEP))
    return [{"station_id": s, "interval_start": i} for s, i in sorted(marks)]


def held_average(
    at_s: NDArray[np.float64],
    values: NDArray[np.float64],
    edges_s: NDArray[np.float64],
    hold_s: float,
    until: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Readings taken at ``at_s`` (seconds, sorted) that each hold until the next one, at most
    ``hold_s`` (or until ``until``, when given): their average over each interval between
    ``edges_s`` (time not covered counts as 0) and the share of each interval they cover."""
    n = len(edges_s) - 1
    if len(at_s) == 0:
        return np.zeros(n), np.zeros(n)
    ends = np.minimum(np.append(at_s[1:], np.inf), at_s + hold_s) if until is None else until
    ends = np.maximum(ends, at_s)
    lengths = ends - at_s

    def integral(weights: NDArray[np.float64]) -> NDArray[np.float64]:
        # (the last reading may hold for ever: only the ones before it are summed)
        before = np.concatenate([[0.0], np.cumsum(weights[:-1] * lengths[:-1])])
        j = np.searchsorted(at_s, edges_s, side="right") - 1
        inside = np.clip(edges_s - at_s[np.maximum(j, 0)], 0.0, lengths[np.maximum(j, 0)])
        cumulative = before[np.maximum(j, 0)] + weights[np.maximum(j, 0)] * inside
        return np.where(j >= 0, cumulative, 0.0)

    width = np.diff(edges_s)
    total = np.diff(integral(np.asarray(values, dtype=float)))
    covered = np.diff(integral(np.ones(len(at_s))))
    return total / width, covered / width


@dataclass(frozen=True)
class Intervals:
    """One station's samples on the grid ``start + k * STEP``; times in seconds since the
    epoch, NaN where an interval has no state-of-charge reading."""

    start: datetime
    mean_kw: NDArray[np.float64]
    samples: NDArray[np.int64]
    kw_samples: NDArray[np.int64]
    first_soc: NDArray[np.float64]
    first_soc_s: NDArray[np.float64]
    last_soc: NDArray[np.float64]
    last_soc_s: NDArray[np.float64]

    @classmethod
    def empty(cls, start: datetime, n: int) -> Intervals:
        nan = np.full(n, np.nan)
        zeros = np.zeros(n, dtype=np.int64)
        return cls(start, np.zeros(n), zeros, zeros.copy(), nan, nan.copy(), nan.copy(), nan.copy())


def station_intervals(
    store: Store,
    station_ids: Sequence[str],
    start: datetime,
    end: datetime,
    step: timedelta = STEP,
    now: datetime | None = None,
) -> dict[str, Intervals]:
    """Each station's rollups over the ``n`` intervals ``[start + k step, start + (k+1) step)``
    up to ``end``: on the ``STEP`` grid, the sealed intervals from the cache (computed and kept
    when missing or marked stale), the others from the samples; on any other grid, all from
    the samples."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    n = max(0, -(-(end - start) // step))
    now = (now or datetime.now(UTC)).astimezone(UTC)
    sealed = 0
    if step == STEP and floor_step(start) == start:
        sealed = int(min(max((now - start - SEAL_AFTER - HOLD) // STEP, 0), n))
    ids = sorted(set(station_ids))
    found = {s: Intervals.empty(start, n) for s in ids}
    have = {s: np.zeros(n, dtype=bool) for s in ids}
    stale_ids: list[int] = []
    with store.engine.connect() as connection:
        if sealed and ids:
            stale_ids = _read_cache(connection, ids, start, sealed, found, have)
        computed = _compute_missing(connection, ids, start, step, found, have)
    keep = [row for row in computed if row["interval_start"] < start + sealed * STEP]
    if keep or stale_ids:
        _write_cache(store, keep, stale_ids, now)
    return found


def _read_cache(
    connection: Connection,
    ids: list[str],
    start: datetime,
    sealed: int,
    found: dict[str, Intervals],
    have: dict[str, NDArray[np.bool_]],
) -> list[int]:
    """Fill ``found`` from the kept rollups of the sealed intervals not marked stale; the
    ids of the stale marks seen (deleted once recomputed)."""
    until = start + sealed * STEP
    marks, cached = db.meter_rollups_stale, db.meter_rollups
    stale = connection.execute(
        select(marks.c.id, marks.c.station_id, marks.c.interval_start).where(
            marks.c.station_id.in_(ids),
            marks.c.interval_start >= start,
            marks.c.interval_start < until,
        )
    ).all()
    dirty = {(s, _aware(at)) for _, s, at in stale}
    query = select(cached).where(
        cached.c.station_id.in_(ids),
        cached.c.interval_start >= start,
        cached.c.interval_start < until,
    )
    for row in connection.execute(query).mappings():
        at = _aware(row["interval_start"])
        if (row["station_id"], at) in dirty:
            continue
        k = (at - start) // STEP
        into = found[row["station_id"]]
        into.mean_kw[k] = row["mean_kw"]
        into.samples[k] = row["samples"]
        into.kw_samples[k] = row["kw_samples"]
        for name in ("first_soc", "last_soc"):
            if row[name] is not None:
                getattr(into, name)[k] = row[name]
                getattr(into, f"{name}_s")[k] = _aware(row[f"{name}_at"]).timestamp()
        have[row["station_id"]][k] = True
    return [int(i) for i, _, _ in stale]


def _compute_missing(
    connection: Connection,
    ids: list[str],
    start: datetime,
    step: timedelta,
    found: dict[str, Intervals],
    have: dict[str, NDArray[np.bool_]],
) -> list[dict[str, Any]]:
    """Compute every interval not found in the cache from the samples, one query per run of
    consecutive missing intervals of a station; the rows computed."""
    rows: list[dict[str, Any]] = []
    for station in ids:
        missing = ~have[station]
        k = 0
        while k < len(missing):
            if not missing[k]:
                k += 1
                continue
            j = k
            while j < len(missing) and missing[j]:
                j += 1
            run = _from_samples(connection, station, start + k * step, j - k, step)
            _place(found[station], run, k)
            rows += _cache_rows(station, run, step)
            k = j
    return rows


def _from_samples(
    connection: Connection, station: str, start: datetime, n: int, step: timedelta
) -> Intervals:
    """One station's rollups over ``n`` intervals of ``step`` from ``start``, from its
    samples."""
    samples = db.meter_samples
    query = (
        select(samples.c.at, samples.c.power_kw, samples.c.soc)
        .where(
            samples.c.station_id == station,
            samples.c.at >= start - HOLD,
            samples.c.at < start + n * step,
        )
        .order_by(samples.c.at)
    )
    frame = pd.read_sql(query, connection)
    at = pd.to_datetime(frame["at"], utc=True)
    at_s = ((at - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(float)
    kw = pd.to_numeric(frame["power_kw"]).to_numpy(float)
    soc = pd.to_numeric(frame["soc"]).to_numpy(float)
    edges = start.timestamp() + step.total_seconds() * np.arange(n + 1, dtype=np.float64)
    has_kw = ~np.isnan(kw)
    mean_kw, _ = held_average(at_s[has_kw], kw[has_kw], edges, HOLD_S)
    slot = np.searchsorted(edges, at_s, side="right") - 1
    inside = (slot >= 0) & (slot < n)
    out = Intervals.empty(start, n)
    out.mean_kw[:] = mean_kw
    np.add.at(out.samples, slot[inside], 1)
    np.add.at(out.kw_samples, slot[inside & has_kw], 1)
    with_soc = inside & ~np.isnan(soc)
    for k, t, value in zip(slot[with_soc], at_s[with_soc], soc[with_soc], strict=True):
        if np.isnan(out.first_soc[k]):
            out.first_soc[k], out.first_soc_s[k] = value, t
        out.last_soc[k], out.last_soc_s[k] = value, t  # in time order: the last wins
    return out


FIELDS = ("mean_kw", "samples", "kw_samples", "first_soc", "first_soc_s", "last_soc", "last_soc_s")


def _place(into: Intervals, run: Intervals, k: int) -> None:
    n = len(run.mean_kw)
    for name in FIELDS:
        getattr(into, name)[k : k + n] = getattr(run, name)


def _cache_rows(station: str, run: Intervals, step: timedelta) -> list[dict[str, Any]]:
    def when(seconds: float) -> datetime | None:
        return None if np.isnan(seconds) else datetime.fromtimestamp(seconds, UTC)

    def value(x: float) -> float | None:
        return None if np.isnan(x) else float(x)

    return [
        {
            "station_id": station,
            "interval_start": run.start + k * step,
            "mean_kw": float(run.mean_kw[k]),
            "samples": int(run.samples[k]),
            "kw_samples": int(run.kw_samples[k]),
            "first_soc": value(run.first_soc[k]),
            "first_soc_at": when(run.first_soc_s[k]),
            "last_soc": value(run.last_soc[k]),
            "last_soc_at": when(run.last_soc_s[k]),
        }
        for k in range(len(run.mean_kw))
    ]


def _write_cache(
    store: Store, rows: list[dict[str, Any]], stale_ids: list[int], now: datetime
) -> None:
    """Keep the sealed rollups computed (replacing older copies) and drop the stale marks
    read before computing them; marks made since stay for the next reader."""
    table = db.meter_rollups
    with store.engine.begin() as connection:
        if rows:
            dialect = connection.dialect.name
            statement = (sqlite_insert if dialect == "sqlite" else postgresql_insert)(table)
            keys = ("station_id", "interval_start")
            upsert = statement.on_conflict_do_update(
                index_elements=list(keys),
                set_={
                    c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys
                },
            )
            for first in range(0, len(rows), 5000):
                chunk = [{**r, "computed_at": now} for r in rows[first : first + 5000]]
                connection.execute(upsert, chunk)
        marks = db.meter_rollups_stale
        for first in range(0, len(stale_ids), 5000):
            connection.execute(delete(marks).where(marks.c.id.in_(stale_ids[first : first + 5000])))


def last_soc(store: Store, station: str, since: datetime, until: datetime) -> float | None:
    """The station's last state-of-charge reading in ``[since, until]`` (one indexed row)."""
    samples = db.meter_samples
    query = (
        select(samples.c.soc)
        .where(
            and_(
                samples.c.station_id == station,
                samples.c.at >= since.astimezone(UTC),
                samples.c.at <= until.astimezone(UTC),
                samples.c.soc.is_not(None),
            )
        )
        .order_by(samples.c.at.desc(), samples.c.id.desc())
        .limit(1)
    )
    with store.engine.connect() as connection:
        found = connection.execute(query).scalar()
    return None if found is None else float(found)


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
