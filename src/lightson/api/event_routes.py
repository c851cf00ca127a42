"""Demand-response events in the operations API (``docs/demand-response.md``): the event
list, a new event or the same one again, a cancel, a site's opt-out, an event's
performance so far and the season's settlements (``/api/events``, ``/api/settlements``).

An owner sees the events that call their sites, a utility those that call its territory,
and neither sees another's sites or opt-outs; a utility calls and cancels events over its
own territory only, with the server's receipt time as the notice. (``lightson.api.events``
is the bare events router without tokens, and the event document both share.)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from lightson.api.deps import Operations, Ops, Who, refuse, require, scope, scoped_site
from lightson.api.documents import calls_any, refusal, rounded_or_none, too_few
from lightson.api.errors import HttpError
from lightson.api.events import event_document
from lightson.domain.assets import Site, SiteKind
from lightson.domain.errors import ConfigError
from lightson.programs.events import ProgramEvent
from lightson.services.access import Principal, Role
from lightson.services.settlement import (
    SitePerformance,
    called_events,
    event_performance,
    metered_from_store,
    settle_program,
)

STAFF_AND_UTILITIES = frozenset({Role.ADMIN, Role.UTILITY})

router = APIRouter(tags=["demand response"])


@router.get("/api/events")
def events(who: Who, ops: Ops) -> list[dict[str, Any]]:
    service = ops.events()
    now = ops.clock.now()
    listed = sorted(service.book().events.values(), key=lambda e: e.start)
    if who.role is Role.ADMIN:
        return [event_document(e, now) for e in listed]
    # An owner sees the events that call one of their sites, a utility those that call
    # its territory; neither sees another's sites or opt-outs.
    in_scope = scope(ops, who)
    return [_shown_event(ops, who, e) for e in listed if calls_any(e, in_scope)]


@router.post("/api/events", status_code=201, response_model=None)
def submit(
    who: Who,
    ops: Ops,
    body: dict[str, Any] = Body(...),  # noqa: B008 - FastAPI's idiom
) -> Any:
    target = str(body.get("event_id", ""))
    require(ops, who, STAFF_AND_UTILITIES, "event-submit", target)
    service = ops.events()
    known = target in service.book().events
    if who.role is Role.UTILITY:
        # The notice counts from when the server received the event, whatever the body
        # says: a backdated notice_at would get round the program's notice rule.
        body = {k: v for k, v in body.items() if k != "notice_at"}
        body = _territory_event(ops, who, body, target)
        started = _time_of(body, "start")
        if started is not None and started <= ops.clock.now():
            # A past event would read out whether a home's car was there then.
            ops.access().audit(who, "event-submit", target, "refused", {"status": 422})
            raise HttpError(422, "is past: a utility announces events before they start", "start")
        body["source"] = f"utility:{who.utility}"[:24]  # who sent it, not what they say
    if not known:
        problems = _unfit_event(ops, scope(ops, who), body)
        if problems:
            ops.access().audit(who, "event-submit", target, "refused", {"status": 422})
            raise ConfigError(problems)
    try:
        event = service.submit({**body, "source": body.get("source", f"api:{who.name}")})
    except ConfigError as error:
        ops.access().audit(who, "event-submit", target, "refused", refusal(error))
        raise
    ops.access().audit(who, "event-submit", event.event_id, "done", {"body": body})
    ops.live.wake()
    return JSONResponse(status_code=200 if known else 201, content=_shown_event(ops, who, event))


@router.delete("/api/events/{event_id}")
def cancel(event_id: str, who: Who, ops: Ops) -> dict[str, Any]:
    require(ops, who, STAFF_AND_UTILITIES, "event-cancel", event_id)
    service = ops.events()
    known = service.book().events.get(event_id)
    if known is None:
        ops.access().audit(who, "event-cancel", event_id, "refused", {"status": 404})
        raise HttpError(404, f"no event '{event_id}'", "event_id")
    if who.role is Role.UTILITY:
        territory = {s.site_id for s in scope(ops, who)}
        if not calls_any(known, scope(ops, who)):  # as if unknown: no id probing
            ops.access().audit(who, "event-cancel", event_id, "refused", {"status": 404})
            raise HttpError(404, f"no event '{event_id}'", "event_id")
        if not known.sites or not set(known.sites) <= territory:
            refuse(
                ops,
                who,
                "event-cancel",
                event_id,
                f"event '{event_id}' calls sites outside {who.utility}'s territory",
            )
    try:
        event = service.cancel(event_id)
    except ConfigError as error:
        ops.access().audit(who, "event-cancel", event_id, "refused", refusal(error))
        raise
    ops.access().audit(who, "event-cancel", event_id, "done")
    ops.live.wake()
    return _shown_event(ops, who, event)


@router.post("/api/events/{event_id}/opt-out/{site_id}")
def opt_out(event_id: str, site_id: str, who: Who, ops: Ops) -> dict[str, Any]:
    """The owner takes a site out of one event that calls it (admins may too)."""
    target = f"{event_id}/{site_id}"
    if who.role is Role.UTILITY:
        refuse(ops, who, "event-opt-out", target, "a site's owner or program staff opts out")
    site = scoped_site(ops, who, site_id, "event-opt-out", target)
    service = ops.events()
    known = service.book().events.get(event_id)
    if known is None or not calls_any(known, [site]):
        raise HttpError(404, f"no event '{event_id}' calls site '{site_id}'", "event_id")
    try:
        event = service.opt_out(event_id, site_id)
    except ConfigError as error:
        ops.access().audit(who, "event-opt-out", target, "refused", refusal(error))
        raise
    ops.access().audit(who, "event-opt-out", target, "done")
    ops.live.wake(site_id)
    return _shown_event(ops, who, event)


@router.get("/api/events/{event_id}/performance")
def performance(event_id: str, who: Who, ops: Ops) -> dict[str, Any]:
    """Each called site's kW in the event so far, measured as settlement measures it,
    against its chargers' discharge rating (an owner: their sites; a utility: its
    territory, for the events it may see)."""
    event = ops.events().book().events.get(event_id)
    if event is None:
        raise HttpError(404, f"no event '{event_id}'", "event_id")
    called = {
        s.site_id
        for s in scope(ops, who)
        if event.program_id in s.enrollments and (not event.sites or s.site_id in event.sites)
    }
    if who.role is not Role.ADMIN and not called:  # as if unknown: no id probing
        raise HttpError(404, f"no event '{event_id}'", "event_id")
    rules = {r.program_id: r for r in ops.events().rules}.get(event.program_id)
    now = ops.clock.now()
    # A home's kW while the event runs says whether its car is there now: a utility
    # sees homes once the event is over (what it settles and pays on).
    hide_homes = who.role is Role.UTILITY and now < event.end
    lines = [
        line
        for line in event_performance(ops.store, ops.program, event, rules, now)
        if (line.site_id in called or who.role is Role.ADMIN)
        and not (hide_homes and line.kind == SiteKind.HOME.value)
    ]
    measured = [line.kw for line in lines if line.kw is not None]
    total_kw: float | None = round(sum(measured), 1)
    withheld = None
    if who.role is Role.UTILITY:
        # A utility sees the total over enough sites, never one site's kW: it pays on
        # the season's settlement (GET /api/settlements), not on one event's readings.
        if len(lines) < ops.min_sites_in_aggregates:
            total_kw, withheld = None, too_few(len(lines), ops.min_sites_in_aggregates)
        lines = [_without_power(line) for line in lines]
    return {
        **_shown_event(ops, who, event),
        "total_kw": total_kw,
        "power_withheld": withheld,
        "site_power_shown": who.role is not Role.UTILITY,
        "sites": [
            {
                "site_id": line.site_id,
                "kind": line.kind,
                "opted_out": line.opted_out,
                "hours": round(line.hours, 2),
                "net_discharge_kwh": rounded_or_none(line.net_discharge_kwh),
                "kw": rounded_or_none(line.kw),
                "capacity_kw": round(line.capacity_kw, 1),
            }
            for line in lines
        ],
    }


@router.get("/api/settlements")
def settlements(
    who: Who, ops: Ops, season: Annotated[int | None, Query(ge=1901, le=2199)] = None
) -> list[dict[str, Any]]:
    """Each site's season settlement from what its chargers metered in the events that
    have ended (admin; a utility sees its own territory)."""
    require(ops, who, STAFF_AND_UTILITIES)
    in_scope = {s.site_id for s in scope(ops, who)}
    called = called_events(ops.events().book().events.values(), ops.clock.now())
    rules = {
        r.program_id: r
        for r in ops.events().rules
        if any(e.program_id == r.program_id for e in called)
    }
    metered = metered_from_store(ops.store, ops.program, called)
    # A season not over yet is extrapolated (each line says so; programs.settlement).
    lines, _ = settle_program(
        ops.program, rules, called, metered, season_year=season, covered=(None, ops.clock.now())
    )
    return [
        {k: (round(v, 2) if isinstance(v, float) else v) for k, v in line.as_dict().items()}
        for line in lines
        if line.site_id in in_scope
    ]


def _shown_event(ops: Operations, who: Principal, event: ProgramEvent) -> dict[str, Any]:
    """An event as the caller may see it: beyond an admin, only their own sites in its
    site list and opt-outs."""
    document = event_document(event, ops.clock.now())
    if who.role is not Role.ADMIN:
        mine = {s.site_id for s in scope(ops, who)}
        document["sites"] = [s for s in document["sites"] if s in mine]
        document["opt_outs"] = sorted(set(document["opt_outs"]) & mine)
        if str(document["source"]).startswith("api:"):  # a staff token's name: not theirs
            document["source"] = "api"
    return document


def _territory_event(
    ops: Operations, who: Principal, body: dict[str, Any], target: str
) -> dict[str, Any]:
    """A utility calls its own customers only: the sites it names must be in its
    territory, and naming none means its territory's sites enrolled in the program."""
    territory = scope(ops, who)
    named = body.get("sites") or []
    if not isinstance(named, list):
        return body  # the event service names the field
    if named:
        return body  # enrolled_sites() refuses what is not its own, as if unknown
    program_id = body.get("program_id")
    enrolled = sorted(s.site_id for s in territory if program_id in s.enrollments)
    if not enrolled:
        ops.access().audit(who, "event-submit", target, "refused", {"status": 422})
        raise HttpError(
            422, f"no site of {who.utility} is enrolled in '{program_id}'", "program_id"
        )
    return {**body, "sites": enrolled}


def _time_of(body: dict[str, Any], key: str) -> datetime | None:
    """The body's ``key`` time, if it reads as an aware time (else the event service names
    it)."""
    try:
        at = datetime.fromisoformat(str(body.get(key, "")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _unfit_event(
    ops: Operations, in_scope: Sequence[Site], body: dict[str, Any]
) -> list[tuple[str, str]]:
    """What makes a new event unfit before the program's rules look at it: it is already
    over (``end``), or it names a site that is not one of the caller's enrolled in its
    program (``sites``; a site outside a utility's territory reads as an unknown one)."""
    problems = []
    end = _time_of(body, "end")
    if end is not None and end <= ops.clock.now():
        problems.append(("end", "is past: the event is already over"))
    named = body.get("sites") or []
    program_id = body.get("program_id")
    if isinstance(named, list):
        enrolled = {s.site_id for s in in_scope if program_id in s.enrollments}
        unfit = sorted({str(site) for site in named} - enrolled)
        if unfit:
            problems.append(("sites", f"not sites enrolled in '{program_id}': {unfit}"))
    return problems


def _without_power(line: SitePerformance) -> SitePerformance:
    """An event's line for one site without its power or energy."""
    return replace(line, kw=None, net_discharge_kwh=None)
