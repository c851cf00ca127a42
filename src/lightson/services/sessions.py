"""Charging sessions as the chargers reported them: one per transaction, with when it
started and ended and the energy that went each way (from the meter registers)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select

from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware
from lightson.store.transactions import ended_at


def sessions(store: Store, station_ids: Iterable[str], since: datetime) -> list[dict[str, Any]]:
    """Sessions at the stations that were open at or after ``since``, newest first. Energy
    in and out is the rise of the import and export registers over the session (``None``
    where the charger sent no register)."""
    ids = sorted(set(station_ids))
    events, samples = db.transaction_events, db.meter_samples
    ended = ended_at()  # the station's Ended, else a CSMS closing not reopened since
    query = (
        select(
            events.c.station_id,
            events.c.transaction_id,
            func.min(events.c.at).label("started"),
            ended.label("ended"),
        )
        .where(events.c.station_id.in_(ids))
        .group_by(events.c.station_id, events.c.transaction_id)
        .having(  # open at or after since: an event since, or not ended yet
            or_(
                func.max(events.c.at) >= since.astimezone(UTC),
                ended.is_(None),
            )
        )
    )
    registers = (
        select(
            samples.c.station_id,
            samples.c.transaction_id,
            (func.max(samples.c.energy_imported_kwh) - func.min(samples.c.energy_imported_kwh)),
            (func.max(samples.c.energy_exported_kwh) - func.min(samples.c.energy_exported_kwh)),
        )
        .where(samples.c.station_id.in_(ids), samples.c.transaction_id.is_not(None))
        .group_by(samples.c.station_id, samples.c.transaction_id)
    )
    with store.engine.connect() as connection:
        energy = {(s, t): (i, e) for s, t, i, e in connection.execute(registers)}
        found = []
        for station, transaction, started, finished in connection.execute(query):
            end = aware(finished) if finished is not None else None
            if end is not None and end < since.astimezone(UTC):
                continue
            imported, exported = energy.get((station, transaction), (None, None))
            found.append(
                {
                    "station_id": station,
                    "transaction_id": transaction,
                    "started": aware(started).isoformat(),
                    "ended": end.isoformat() if end is not None else None,
                    "energy_in_kwh": None if imported is None else round(imported, 3),
                    "energy_out_kwh": None if exported is None else round(exported, 3),
                }
            )
    return sorted(found, key=lambda s: s["started"], reverse=True)
