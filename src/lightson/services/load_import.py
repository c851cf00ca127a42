"""A utility's interval data (Green Button) into a site's meter history, and the site's own
building profile learned from that history (``lightson site import-load``).

Each interval becomes readings of the ``site_meter`` table as a gateway would post them: one
per 15 minutes (a reading holds at most 15 minutes, ``site_meter.FRESH``), at the average
power of its interval (kWh / h), so an hour of 2 kWh is four readings of 2 kW and the
meter's kWh over any window (``metered_load_kwh``) is the utility's. Readings are keyed by
(site, time): importing a file again writes the same rows, and a corrected file replaces
them. Each is checked as the meter API checks a reading (at most 1.5 × the service limit);
an interval not yet over is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from lightson.datasets.greenbutton import GreenButtonData, IntervalEnergy
from lightson.domain.assets import Site
from lightson.domain.errors import DataError
from lightson.domain.plausibility import check_power_kw
from lightson.forecast.building_profile import LearnedProfile, learned_profile
from lightson.services.site_meter import FRESH
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware

CHUNK = 2000  # readings per write: a year of quarter-hours is 35,040


@dataclass(frozen=True)
class Imported:
    readings: int
    energy_kwh: float
    first: datetime
    end: datetime


def meter_readings(data: GreenButtonData) -> Iterator[tuple[datetime, float]]:
    """(time, kW) readings of the intervals: one per 15 minutes of a longer interval (its
    length must then be a multiple of 15 minutes), one for a shorter one."""
    for interval in data.intervals:
        load_kw = interval.energy_kwh / (interval.duration.total_seconds() / 3600)
        if interval.duration <= FRESH:
            yield interval.start, load_kw
            continue
        pieces, rest = divmod(interval.duration, FRESH)
        if rest:
            raise DataError(
                f"{data.source}: the interval at {interval.start.isoformat()} lasts "
                f"{interval.duration}: not a multiple of 15 minutes"
            )
        for piece in range(pieces):
            yield interval.start + piece * FRESH, load_kw


def import_load(store: Store, site: Site, data: GreenButtonData, now: datetime) -> Imported:
    """Store ``data`` as ``site``'s meter readings (all or none are checked before any is
    written; written in groups of ``CHUNK``)."""
    last = max(data.intervals, key=lambda i: i.start + i.duration)
    if last.start + last.duration > now:
        raise DataError(
            f"{data.source}: the interval at {last.start.isoformat()} is not over yet "
            f"(now {now.astimezone(UTC).isoformat()})"
        )
    readings = list(meter_readings(data))
    for at, load_kw in readings:
        issue = check_power_kw("load", load_kw, site.service_limit_kw)
        if issue is not None:
            raise DataError(
                f"{data.source}: the interval at {at.isoformat()}: {load_kw:g} kW is implausible "
                f"for {site.site_id} (at most 1.5 x its {site.service_limit_kw:g} kW service "
                "limit): is this the right site, and the file's unit right?"
            )
    rows = [
        (
            db.site_meter,
            {
                "site_id": site.site_id,
                "at": at.astimezone(UTC),
                "load_kw": load_kw,
                "pv_kw": None,
                "received_at": now,
            },
        )
        for at, load_kw in readings
    ]
    for begin in range(0, len(rows), CHUNK):
        store.write(rows[begin : begin + CHUNK]).result(300)
    return Imported(len(rows), data.energy_kwh, data.intervals[0].start, last.start + last.duration)


def stored_intervals(store: Store, site_id: str) -> list[IntervalEnergy]:
    """The site's whole meter history as intervals: each reading holds until the next, at
    most ``FRESH`` (as the meter is read everywhere)."""
    table = db.site_meter
    query = (
        select(table.c.at, table.c.load_kw).where(table.c.site_id == site_id).order_by(table.c.at)
    )
    with store.engine.connect() as connection:
        rows = [(aware(at), float(kw)) for at, kw in connection.execute(query)]
    intervals = []
    for i, (at, load_kw) in enumerate(rows):
        until = min(rows[i + 1][0], at + FRESH) if i + 1 < len(rows) else at + FRESH
        length = until - at
        if length > timedelta(0):
            intervals.append(IntervalEnergy(at, length, load_kw * length.total_seconds() / 3600))
    return intervals


def site_profile(store: Store, site: Site, name: str) -> LearnedProfile:
    """The building profile learned from everything the site's meter holds."""
    intervals = stored_intervals(store, site.site_id)
    if not intervals:
        raise DataError(f"no meter readings of {site.site_id} to learn a profile from")
    return learned_profile(
        ((i.start, i.duration, i.energy_kwh) for i in intervals),
        name,
        source=f"site meter of {site.site_id}",
    )
