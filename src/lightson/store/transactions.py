"""When a transaction ended, as the stored events say, and which transactions are open.

A transaction ends with the station's own ``Ended`` event. When the station cannot send one
(it rebooted and forgot the transaction, reported its connector ``Available``, or vanished),
the CSMS closes it with an ``Ended`` row of its own: ``trigger_reason`` one of
:data:`CSMS_CLOSINGS`, ``seq_no`` NULL, and the reason in words in ``payload``. Everything that
reads ``Ended`` (the live loop, the reports, settlement) then sees the closing.

A CSMS closing is a guess; the station knows better. So a transaction is open again when the
station reports on it after the closing (an event timed later than the closing, or, in 1.6,
meter values: the CSMS then stores an ``Updated`` row with :data:`CSMS_REOPEN`), and the
station's own ``Ended`` always wins over a closing, whenever it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, not_, select

from lightson.store import schema as db
from lightson.store.db import Store, aware

CSMS_BOOT = "CsmsBoot"  # the station booted and did not resume the transaction
CSMS_AVAILABLE = "CsmsAvailable"  # the station reported the transaction's connector Available
CSMS_OFFLINE = "CsmsOffline"  # the station was gone longer than offline_close_after_s
CSMS_CLOSINGS = (CSMS_BOOT, CSMS_AVAILABLE, CSMS_OFFLINE)
CSMS_REOPEN = "CsmsReopen"  # a 1.6 station's meter values for a transaction the CSMS closed


def _is_closing() -> Any:
    events = db.transaction_events
    return and_(
        events.c.event_type == "Ended",
        func.coalesce(events.c.trigger_reason, "").in_(CSMS_CLOSINGS),
    )


def ended_at() -> Any:
    """An aggregate over one transaction's events (grouped by station and transaction): when
    it ended, NULL while it is open. The station's own ``Ended`` if there is one; else the
    newest CSMS closing, unless a station event is timed after it (reopened)."""
    events = db.transaction_events
    closing = _is_closing()
    own_end = func.max(case((and_(events.c.event_type == "Ended", not_(closing)), events.c.at)))
    csms_end = func.max(case((closing, events.c.at)))
    last_own = func.max(case((not_(closing), events.c.at)))
    return func.coalesce(own_end, case((last_own <= csms_end, csms_end)))


def closed_by_csms() -> Any:
    """An aggregate: true when the transaction's end is a CSMS closing (no own ``Ended``)."""
    events = db.transaction_events
    closing = _is_closing()
    own_ends = func.sum(case((and_(events.c.event_type == "Ended", not_(closing)), 1), else_=0))
    return and_(own_ends == 0, func.sum(case((closing, 1), else_=0)) > 0)


@dataclass(frozen=True)
class StoredTransaction:
    """One transaction of a station: its EVSE (``None`` if no event named one), when it
    ended (``None``: open), whether that end is a CSMS closing, and the time of the
    station's own last event for it."""

    transaction_id: str
    evse_id: int | None
    ended_at: datetime | None
    closed_by_csms: bool
    last_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.ended_at is None


def station_transactions(
    store: Store,
    station_id: str,
    transaction_id: str | None = None,
    only_open: bool = False,
) -> list[StoredTransaction]:
    """The station's transactions (or the one named), oldest first."""
    events = db.transaction_events
    end = ended_at()
    query = (
        select(
            events.c.transaction_id,
            func.max(events.c.evse_id),
            end,
            closed_by_csms(),
            func.max(case((not_(_is_closing()), events.c.at))),
        )
        .where(events.c.station_id == station_id)
        .group_by(events.c.transaction_id)
        .order_by(func.min(events.c.id))
    )
    if transaction_id is not None:
        query = query.where(events.c.transaction_id == transaction_id)
    if only_open:
        query = query.having(end.is_(None))
    with store.engine.connect() as connection:
        return [
            StoredTransaction(
                str(tx),
                evse,
                aware(done) if done is not None else None,
                bool(by_csms),
                aware(last) if last is not None else None,
            )
            for tx, evse, done, by_csms, last in connection.execute(query)
        ]


def recent_closings(store: Store, station_ids: list[str], since: datetime) -> dict[str, str]:
    """Each station's newest CSMS closing made at or after ``since`` (CSMS clock), as
    ``"closed by the CSMS (<trigger>: <reason>)"``, for a status line."""
    events = db.transaction_events
    query = (
        select(events.c.station_id, events.c.trigger_reason, events.c.payload)
        .where(
            events.c.station_id.in_(sorted(set(station_ids))),
            events.c.received_at >= since.astimezone(UTC),
            _is_closing(),
        )
        .order_by(events.c.id)
    )
    with store.engine.connect() as connection:
        return {
            str(station): f"closed by the CSMS ({trigger}: {payload.get('reason', '')})"
            for station, trigger, payload in connection.execute(query)
        }


def stations_with_open_transactions(store: Store) -> list[str]:
    """Every station that has an open transaction in the store."""
    events = db.transaction_events
    inner = (
        select(events.c.station_id)
        .group_by(events.c.station_id, events.c.transaction_id)
        .having(ended_at().is_(None))
        .subquery()
    )
    with store.engine.connect() as connection:
        return sorted({str(s) for (s,) in connection.execute(select(inner.c.station_id))})


__all__ = [
    "CSMS_AVAILABLE",
    "CSMS_BOOT",
    "CSMS_CLOSINGS",
    "CSMS_OFFLINE",
    "CSMS_REOPEN",
    "StoredTransaction",
    "closed_by_csms",
    "ended_at",
    "recent_closings",
    "station_transactions",
    "stations_with_open_transactions",
]
