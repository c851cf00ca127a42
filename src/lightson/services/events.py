"""Demand-response event intake: one service for the utility API, OpenADR and the operator.

``submit`` takes a JSON-like body (what a utility posts), checks it field by field, applies
the program's rules through the :class:`EventBook` and stores the event; the same event id
posted twice is one event. Events are kept in the database, so every process (the CSMS, the
API, the CLI) sees the same book.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, insert, select

from lightson.config.dr_rules import bundled_dr_rules
from lightson.domain.errors import ConfigError
from lightson.domain.time import Clock
from lightson.programs.events import EventBook, ProgramEvent
from lightson.programs.rules import ProgramRules
from lightson.store import Store
from lightson.store import schema as db


class EventBody(BaseModel):
    """What a utility or aggregator posts. Times carry their offset (ISO 8601)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    program_id: str = Field(min_length=1, max_length=64)
    start: AwareDatetime
    end: AwareDatetime
    notice_at: AwareDatetime | None = None  # default: when it is received
    sites: tuple[str, ...] = ()
    source: str = Field(default="api", max_length=24)


class EventService:
    def __init__(
        self, store: Store, clock: Clock, rules: Sequence[ProgramRules] | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.rules = list(rules) if rules is not None else list(bundled_dr_rules().values())

    def book(self) -> EventBook:
        return EventBook(self.rules, (_event(row) for row in self.store.rows(db.dr_events)))

    def submit(self, body: Mapping[str, Any]) -> ProgramEvent:
        """Check and store an event; raise ``ConfigError`` naming the field."""
        parsed = _parse(body)
        now = self.clock.now()
        book = self.book()
        existing = book.events.get(parsed.event_id)
        # No notice time given: it is when the event first arrived (a repeat keeps it).
        notice = parsed.notice_at or (existing.notice_at if existing is not None else now)
        if parsed.notice_at is None and existing is None and parsed.start <= now:
            raise ConfigError.at("start", "is past: an event is announced before it starts")
        event = ProgramEvent(
            parsed.event_id,
            parsed.program_id,
            parsed.start,
            parsed.end,
            notice,
            tuple(parsed.sites),
            parsed.source,
        )
        accepted = book.add(event)
        if existing is None:
            self._write(accepted, now, new=True)
        return accepted

    def modify(self, body: Mapping[str, Any]) -> ProgramEvent:
        """A new version of a stored event (same id); refused like a new one."""
        parsed = _parse(body)
        book = self.book()
        old = book.get(parsed.event_id)
        event = ProgramEvent(
            parsed.event_id,
            parsed.program_id,
            parsed.start,
            parsed.end,
            parsed.notice_at or old.notice_at,
            tuple(parsed.sites),
            parsed.source,
        )
        changed = book.replace(event)
        self._write(changed, self.clock.now(), new=False)
        return changed

    def cancel(self, event_id: str) -> ProgramEvent:
        cancelled = self.book().cancel(event_id, self.clock.now())
        self._write(cancelled, self.clock.now(), new=False)
        return cancelled

    def opt_out(self, event_id: str, site_id: str) -> ProgramEvent:
        changed = self.book().opt_out(event_id, site_id, self.clock.now())
        self._write(changed, self.clock.now(), new=False)
        return changed

    def _write(self, event: ProgramEvent, now: datetime, new: bool) -> None:
        row = {
            "event_id": event.event_id,
            "program_id": event.program_id,
            "start": event.start.astimezone(UTC),
            "end": event.end.astimezone(UTC),
            "notice_at": event.notice_at.astimezone(UTC),
            "sites": list(event.sites),
            "source": event.source,
            "cancelled_at": event.cancelled_at,
            "opt_outs": sorted(event.opt_outs),
            "received_at": now,
        }
        with self.store.engine.begin() as connection:
            if not new:
                received = connection.execute(
                    select(db.dr_events.c.received_at).where(
                        db.dr_events.c.event_id == event.event_id
                    )
                ).scalar_one()
                row["received_at"] = received
                connection.execute(
                    delete(db.dr_events).where(db.dr_events.c.event_id == event.event_id)
                )
            connection.execute(insert(db.dr_events), [row])


def _parse(body: Mapping[str, Any]) -> EventBody:
    try:
        return EventBody.model_validate(body)
    except ValidationError as error:
        raise ConfigError(
            [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in error.errors()]
        ) from None


def _event(row: Mapping[str, Any]) -> ProgramEvent:
    return ProgramEvent(
        event_id=row["event_id"],
        program_id=row["program_id"],
        start=row["start"],
        end=row["end"],
        notice_at=row["notice_at"],
        sites=tuple(row["sites"]),
        source=row["source"],
        cancelled_at=row["cancelled_at"],
        opt_outs=frozenset(row["opt_outs"]),
    )
