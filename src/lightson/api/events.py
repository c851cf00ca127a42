"""Demand-response events over HTTP, for a utility or aggregator.

``POST /events`` (an event; the same id again is the same event: 200 with it), ``GET /events``,
``DELETE /events/{event_id}`` (cancel) and ``POST /events/{event_id}/opt-out/{site_id}``.
A body or an event the program's rules refuse gets 422 with every problem as
``{"field": ..., "message": ...}``. This router has no tokens or roles: the operations
server serves events under ``/api/events`` with them (``lightson.api.event_routes``, which
shares ``event_document``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from lightson.domain.errors import ConfigError
from lightson.programs.events import ProgramEvent
from lightson.services.events import EventService


def event_document(event: ProgramEvent, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "program_id": event.program_id,
        "start": event.start.isoformat(),
        "end": event.end.isoformat(),
        "notice_at": event.notice_at.isoformat(),
        "sites": list(event.sites),
        "source": event.source,
        "state": event.state(now).value,
        "opt_outs": sorted(event.opt_outs),
    }


def _refused(error: ConfigError) -> JSONResponse:
    return JSONResponse(
        status_code=422,
        content={"errors": [{"field": path, "message": rule} for path, rule in error.issues]},
    )


def events_router(service: Callable[[], EventService]) -> APIRouter:
    """The routes, over a service factory (one per request: the store is shared)."""
    router = APIRouter(prefix="/events", tags=["demand response"])

    @router.post("", status_code=201, response_model=None)
    def submit(body: dict[str, Any] = Body(...)) -> Any:  # noqa: B008 - FastAPI's idiom
        events = service()
        known = body.get("event_id") in events.book().events
        try:
            event = events.submit(body)
        except ConfigError as error:
            return _refused(error)
        return JSONResponse(
            status_code=200 if known else 201,
            content=event_document(event, events.clock.now()),
        )

    @router.get("")
    def list_events() -> list[dict[str, Any]]:
        events = service()
        now = events.clock.now()
        return [
            event_document(e, now)
            for e in sorted(events.book().events.values(), key=lambda e: e.start)
        ]

    @router.delete("/{event_id}", response_model=None)
    def cancel(event_id: str) -> Any:
        events = service()
        try:
            return event_document(events.cancel(event_id), events.clock.now())
        except ConfigError as error:
            return _refused(error)

    @router.post("/{event_id}/opt-out/{site_id}", response_model=None)
    def opt_out(event_id: str, site_id: str) -> Any:
        events = service()
        try:
            return event_document(events.opt_out(event_id, site_id), events.clock.now())
        except ConfigError as error:
            return _refused(error)

    return router
