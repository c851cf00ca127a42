"""Data completeness: how much of the time a vehicle was plugged in its charger's readings
covered, and what went missing, per station over a window (the dashboard's data page).

A reading of the state of charge counts for ``HOLD`` after it was taken (the control loop's
own staleness limit: it plans on the SoC): the time a plugged vehicle spent with no SoC that
fresh is time the loop had to leave it to the charge-only default. Plugged time is from each
transaction's first event to its ``Ended`` event (or now), overlapping sessions merged (a
lost ``Ended`` does not count an hour twice). ``samples`` counts every meter value;
``quarantined`` the station's readings refused or left out as implausible in the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware
from lightson.store.transactions import ended_at

HOLD = timedelta(minutes=15)
COMPLETENESS_COLUMNS = (
    "station_id",
    "site_id",
    "plugged_hours",
    "covered_hours",
    "completeness",
    "samples",
    "last_reading_at",
    "sequence_gaps",
    "setpoints_sent",
    "setpoints_not_accepted",
    "quarantined",
)


@dataclass(frozen=True)
class StationCompleteness:
    station_id: str
    plugged_hours: float
    covered_hours: float  # of the plugged time, with a SoC reading at most HOLD old
    samples: int
    last_reading_at: datetime | None
    sequence_gaps: int  # TransactionEvent seqNo gaps noticed in the window
    setpoints_sent: int
    setpoints_not_accepted: int
    quarantined: int = 0  # readings refused or left out as implausible in the window

    @property
    def completeness(self) -> float | None:
        """Share of the plugged time covered (``None``: nothing was plugged)."""
        return self.covered_hours / self.plugged_hours if self.plugged_hours > 0 else None


def completeness_rows(
    store: Store, site_of: Mapping[str, str], since: datetime, now: datetime
) -> list[dict[str, Any]]:
    """Each charger's line over [since, now) as the dashboard's Data page (``GET
    /api/completeness``) and the season report both show it, from the one computation
    (``data_completeness``); ``site_of`` maps each charger to its site."""
    return [
        {
            "station_id": line.station_id,
            "site_id": site_of[line.station_id],
            "plugged_hours": line.plugged_hours,
            "covered_hours": line.covered_hours,
            "completeness": line.completeness,
            "samples": line.samples,
            "last_reading_at": line.last_reading_at,
            "sequence_gaps": line.sequence_gaps,
            "setpoints_sent": line.setpoints_sent,
            "setpoints_not_accepted": line.setpoints_not_accepted,
            "quarantined": line.quarantined,
        }
        for line in data_completeness(store, site_of, since, now)
    ]


def data_completeness(
    store: Store, station_ids: Iterable[str], since: datetime, now: datetime
) -> list[StationCompleteness]:
    ids = sorted(set(station_ids))
    since, now = since.astimezone(UTC), now.astimezone(UTC)
    events, samples = db.transaction_events, db.meter_samples
    with store.engine.connect() as connection:
        spans: dict[str, list[tuple[datetime, datetime]]] = {i: [] for i in ids}
        query = (
            select(
                events.c.station_id,
                events.c.transaction_id,
                func.min(events.c.at),
                ended_at(),  # the station's Ended, else a CSMS closing not reopened since
            )
            .where(events.c.station_id.in_(ids))
            .group_by(events.c.station_id, events.c.transaction_id)
        )
        for station, _, started, ended in connection.execute(query):
            begin = max(aware(started), since)
            end = min(aware(ended) if ended is not None else now, now)
            if end > begin:
                spans[station].append((begin, end))
        readings: dict[str, list[datetime]] = {i: [] for i in ids}
        with_soc: dict[str, list[datetime]] = {i: [] for i in ids}
        query_samples = (
            select(samples.c.station_id, samples.c.at, samples.c.soc)
            .where(
                samples.c.station_id.in_(ids),
                samples.c.at >= since - HOLD,
                samples.c.at <= now,
            )
            .order_by(samples.c.station_id, samples.c.at)
        )
        for station, at, soc in connection.execute(query_samples):
            readings[station].append(aware(at))
            if soc is not None:
                with_soc[station].append(aware(at))
        gaps: dict[str, int] = dict(
            connection.execute(
                select(db.sequence_gaps.c.station_id, func.count())
                .where(
                    db.sequence_gaps.c.station_id.in_(ids),
                    db.sequence_gaps.c.noticed_at >= since,
                )
                .group_by(db.sequence_gaps.c.station_id)
            ).all()
        )
        kept_out: dict[str, int] = dict(
            connection.execute(
                select(db.quarantine.c.station_id, func.count())
                .where(
                    db.quarantine.c.station_id.in_(ids),
                    db.quarantine.c.received_at >= since,
                )
                .group_by(db.quarantine.c.station_id)
            ).all()
        )
        sent = db.setpoints_sent
        answers = connection.execute(
            select(sent.c.station_id, sent.c.status, func.count())
            .where(sent.c.station_id.in_(ids), sent.c.sent_at >= since)
            .group_by(sent.c.station_id, sent.c.status)
        ).all()
    sent_count: dict[str, int] = {}
    refused: dict[str, int] = {}
    for station, status, count in answers:
        sent_count[station] = sent_count.get(station, 0) + count
        if status != "Accepted":
            refused[station] = refused.get(station, 0) + count
    result = []
    for station in ids:
        merged = _merged(spans[station])
        plugged = sum((end - begin).total_seconds() for begin, end in merged) / 3600
        covered = _covered_hours(merged, with_soc[station])
        in_window = [at for at in readings[station] if at >= since]
        result.append(
            StationCompleteness(
                station,
                plugged,
                covered,
                len(in_window),
                in_window[-1] if in_window else None,
                int(gaps.get(station, 0)),
                sent_count.get(station, 0),
                refused.get(station, 0),
                int(kept_out.get(station, 0)),
            )
        )
    return result


def _merged(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _covered_hours(spans: list[tuple[datetime, datetime]], readings: list[datetime]) -> float:
    """Hours of ``spans`` within HOLD after some reading (``readings`` sorted)."""
    total = 0.0
    for begin, end in spans:
        cursor = begin
        for at in readings:
            fresh_until = min(at + HOLD, end)
            start = max(at, cursor)
            if fresh_until > start:
                total += (fresh_until - start).total_seconds()
                cursor = fresh_until
            if at >= end:
                break
    return total / 3600
