"""What the edges kept out: readings refused or left out as implausible, with the raw frame or
body they came in (``docs/operations.md``, "Implausible readings"). The dashboard's data page
lists the latest; ``/metrics`` counts them by source and reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware

EXCERPT_CHARS = 160  # of the raw frame in a listing: enough to recognise it, not to copy it
MAX_LISTED = 200


@dataclass(frozen=True)
class Quarantined:
    received_at: datetime
    source: str  # "ocpp" or "meter-api"
    station_id: str | None
    site_id: str | None
    action: str | None
    field: str
    value: str | None
    reason: str
    raw_excerpt: str


def recent_quarantine(store: Store, since: datetime, limit: int = MAX_LISTED) -> list[Quarantined]:
    """The newest first, received at or after ``since``, at most ``limit``."""
    table = db.quarantine
    query = (
        select(table)
        .where(table.c.received_at >= since.astimezone(UTC))
        .order_by(table.c.received_at.desc(), table.c.id.desc())
        .limit(limit)
    )
    with store.engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return [
        Quarantined(
            aware(row["received_at"]),
            row["source"],
            row["station_id"],
            row["site_id"],
            row["action"],
            row["field"],
            row["value"],
            row["reason"],
            _excerpt(row["raw"]),
        )
        for row in rows
    ]


def quarantine_counts(store: Store) -> dict[tuple[str, str], int]:
    """Every quarantined value ever, by (source, reason): a counter that survives restarts."""
    table = db.quarantine
    query = select(table.c.source, table.c.reason, func.count()).group_by(
        table.c.source, table.c.reason
    )
    with store.engine.connect() as connection:
        return {(source, reason): int(n) for source, reason, n in connection.execute(query)}


def _excerpt(raw: str) -> str:
    return raw if len(raw) <= EXCERPT_CHARS else raw[: EXCERPT_CHARS - 1] + "…"
