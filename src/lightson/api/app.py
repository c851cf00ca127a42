"""The operations HTTP API and the dashboard that uses it (``docs/operations.md``).

Every route under ``/api`` takes a bearer token (``lightson token add``); what a token may
see and do depends on its role (``lightson.services.access``). Errors are mapped once:
a refused body or rule is 422 with ``{"errors": [{"field", "message"}]}``, an unknown site
or event 404, a missing or bad token 401, a role that may not 403. Every command (events,
outages, opt-outs) is written to the audit log, done or refused, before the answer.
The OpenAPI document is at ``/api/openapi.json``; Prometheus metrics at ``/metrics``.
"""

from __future__ import annotations

import math
import multiprocessing
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pydantic import AwareDatetime
from starlette.exceptions import HTTPException as FrameworkHttpError

from lightson.api.events import event_document
from lightson.api.headers import SecurityHeaders
from lightson.api.limits import DEFAULT_MAX_BODY_BYTES, BodyLimit
from lightson.control.grid import GridSignal
from lightson.domain.assets import Program, Site, SiteKind
from lightson.domain.errors import ConfigError
from lightson.domain.time import Clock
from lightson.programs.events import ProgramEvent
from lightson.programs.rules import ProgramRules
from lightson.services.access import AccessService, Principal, Role
from lightson.services.completeness import data_completeness
from lightson.services.departures import Departure, next_departures, set_departure
from lightson.services.events import EventService
from lightson.services.live import LiveControl, SiteStatus
from lightson.services.plans import latest_plan, plans_made, rounded
from lightson.services.quarantine import quarantine_counts, recent_quarantine
from lightson.services.ratelimit import Buckets
from lightson.services.season_report import season_report_bytes
from lightson.services.sessions import sessions
from lightson.services.settlement import (
    SitePerformance,
    called_events,
    event_performance,
    metered_from_store,
    settle_program,
)
from lightson.services.site_meter import record_readings
from lightson.store import Store
from lightson.store.live import recent_samples

ADMIN = frozenset({Role.ADMIN})
MIN_HOMES_IN_TOTALS = 10  # a utility's power totals include homes only from this many on
MIN_SITES_IN_AGGREGATES = 5  # a utility sees no power figure over fewer sites than this
REPORT_TIMEOUT_S = 600.0  # the demo's database takes about 6 s; a season of readings more
MAX_REPORT_DAYS = 400  # a season and then some: GET /api/report reads every reading in it
API_SOURCE = "api"  # how outages declared through the API are reported to the grid monitor
ANYONE = frozenset(Role)


_BEARER = HTTPBearer(auto_error=False)
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class HttpError(Exception):
    def __init__(
        self, status: int, message: str, field: str = "", retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s  # 429: when to try again (Retry-After)


@dataclass
class Operations:
    """What the API serves: the program, its database, the clock, the live loop (``None``
    when the API runs without one) and how many stations are connected."""

    program: Program
    store: Store
    clock: Clock
    live: LiveControl
    rules: Sequence[ProgramRules] | None = None
    connected_stations: Callable[[], int] = lambda: 0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # larger request bodies: 413, unread
    # Writes per token (POST, PUT, DELETE): 2 a second on average, 60 at once; failed
    # authentications per address: 10, then one every 6 s. Beyond either: 429.
    writes: Buckets = field(default_factory=lambda: Buckets(per_second=2.0, burst=60))
    failed_logins: Buckets = field(default_factory=lambda: Buckets(per_second=1 / 6, burst=10))
    # The OpenADR VEN's state (docs/demand-response.md); it never makes health degraded.
    dr_status: Callable[[], dict[str, Any]] = lambda: {"state": "disabled"}
    # A utility's power figures cover at least this many sites (else none are given), so
    # that no one customer's power shows through.
    min_sites_in_aggregates: int = MIN_SITES_IN_AGGREGATES
    # /api/docs (Swagger UI) loads its script from a CDN (no installed package ships it):
    # off unless asked for. /api/openapi.json is always served.
    api_docs: bool = False

    def events(self) -> EventService:
        return EventService(self.store, self.clock, self.rules)

    def access(self) -> AccessService:
        return AccessService(self.store, self.clock)

    def site(self, site_id: str) -> Site:
        try:
            return self.program.site(site_id)
        except KeyError:
            raise HttpError(404, f"no site '{site_id}'", "site_id") from None


def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> Principal:
    """The caller, from the bearer token (401 when there is none or it is unknown). An
    address that failed too often is refused (429) before its token is looked at, and a
    token that writes too often is refused (429) before the write is done."""
    ops: Operations = request.app.state.operations
    address = request.client.host if request.client is not None else "?"
    waiting_s = ops.failed_logins.wait_s(address)
    if waiting_s > 0:
        raise HttpError(
            429, "too many failed authentications from this address", "Authorization", waiting_s
        )
    if credentials is None:  # no guess: not counted
        raise HttpError(401, "a bearer token is required", "Authorization")
    who = ops.access().principal(credentials.credentials)
    if who is None:
        ops.failed_logins.take(address)
        raise HttpError(401, "unknown or revoked token", "Authorization")
    if request.method in WRITES:
        waiting_s = ops.writes.take(who.name)
        if waiting_s > 0:
            raise HttpError(429, f"too many writes by {who.name}", "Authorization", waiting_s)
    return who


Who = Annotated[Principal, Depends(_principal)]


def create_app(ops: Operations) -> FastAPI:
    app = FastAPI(
        title="Lights On",
        summary="Operations API of a V2X program",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs" if ops.api_docs else None,
        redoc_url=None,
    )
    app.state.operations = ops
    app.add_middleware(BodyLimit, max_bytes=ops.max_body_bytes)  # before any other work
    app.add_middleware(SecurityHeaders)  # outermost: the 413 gets the headers too

    def refuse(who: Principal, action: str, target: str, message: str) -> None:
        """403, written to the audit log first when it refuses a command."""
        if action:
            ops.access().audit(who, action, target, "refused", {"status": 403})
        raise HttpError(403, message)

    def require(who: Principal, roles: frozenset[Role], action: str = "", target: str = "") -> None:
        if who.role not in roles:
            refuse(who, action, target, f"the {who.role.value} role may not do this")

    def shown_event(who: Principal, event: ProgramEvent) -> dict[str, Any]:
        """An event as the caller may see it: beyond an admin, only their own sites in its
        site list and opt-outs."""
        document = event_document(event, ops.clock.now())
        if who.role is not Role.ADMIN:
            mine = {s.site_id for s in _scope(ops, who)}
            document["sites"] = [s for s in document["sites"] if s in mine]
            document["opt_outs"] = sorted(set(document["opt_outs"]) & mine)
            if str(document["source"]).startswith("api:"):  # a staff token's name: not theirs
                document["source"] = "api"
        return document

    def territory_event(who: Principal, body: dict[str, Any], target: str) -> dict[str, Any]:
        """A utility calls its own customers only: the sites it names must be in its
        territory, and naming none means its territory's sites enrolled in the program."""
        territory = _scope(ops, who)
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

    def scoped_site(who: Principal, site_id: str, action: str = "", target: str = "") -> Site:
        """The site if it is in the caller's scope. A site outside it answers as an unknown
        one (404, the same body), so that ids cannot be found out by trying them; a refused
        command is audited."""
        if site_id in {s.site_id for s in _scope(ops, who)}:
            return ops.site(site_id)
        if action:
            ops.access().audit(who, action, target or site_id, "refused", {"status": 404})
        raise HttpError(404, f"no site '{site_id}'", "site_id")

    def visible_site(who: Principal, site_id: str) -> Site:
        """A site whose personal data (vehicles, power, sessions) the caller may see: a
        utility never (403, whatever the id), an owner their own (else 404)."""
        if who.role is Role.UTILITY:
            raise HttpError(403, f"the {who.role.value} role may not see a site's detail")
        return scoped_site(who, site_id)

    # --- errors, mapped once -------------------------------------------------------------

    @app.exception_handler(HttpError)
    def _http_error(_: Request, error: HttpError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        if error.retry_after_s is not None:
            headers = {"Retry-After": str(math.ceil(error.retry_after_s))}
        return JSONResponse(
            status_code=error.status,
            content={"errors": [{"field": error.field, "message": error.message}]},
            headers=headers,
        )

    @app.exception_handler(FrameworkHttpError)
    def _framework_error(request: Request, error: FrameworkHttpError) -> JSONResponse:
        """The framework's own answers (no such path, a method a route does not take) in
        the documented shape."""
        field = "method" if error.status_code == 405 else "path"
        return JSONResponse(
            status_code=error.status_code,
            content={"errors": [{"field": field, "message": str(error.detail)}]},
            headers=error.headers,
        )

    @app.exception_handler(ConfigError)
    def _refused(_: Request, error: ConfigError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"errors": [{"field": path, "message": rule} for path, rule in error.issues]},
        )

    @app.exception_handler(RequestValidationError)
    def _bad_request(request: Request, error: RequestValidationError) -> JSONResponse:
        issues = [
            {
                "field": ".".join(str(part) for part in issue["loc"] if part != "body"),
                "message": issue["msg"],
            }
            for issue in error.errors()
        ]
        if request.method != "GET":  # a refused command is audited like the others
            scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
            who = ops.access().principal(credentials) if scheme.lower() == "bearer" else None
            if who is not None:
                ops.access().audit(
                    who, request.method, request.url.path, "refused", {"status": 422}
                )
        return JSONResponse(status_code=422, content={"errors": issues})

    # --- the program -----------------------------------------------------------------------

    @app.get("/api/health", tags=["program"])
    def health() -> JSONResponse:
        """200 ``ok``, or 503 ``degraded`` with the problems: the database could not be
        written at its last commit (read-only, disk full, server gone), or the control loop
        stopped ticking. No token needed: a load balancer or a monitor asks it. ``dr`` is
        the OpenADR VEN's state; a VTN that does not answer leaves the server ``ok`` (it
        serves the chargers and the other event sources), a monitor reads ``dr.state``."""
        now = ops.clock.now()
        problems = []
        failure = ops.store.write_failure
        if failure is not None:
            since, reason = failure
            problems.append(
                f"the database cannot be written (since {since:%Y-%m-%d %H:%M:%S} UTC): {reason}"
            )
        last_tick = ops.live.last_tick_at
        if last_tick is not None and ops.live.stalled(now):
            problems.append(f"the control loop has not ticked since {last_tick.isoformat()}")
        return JSONResponse(
            status_code=503 if problems else 200,
            content={
                "status": "degraded" if problems else "ok",
                "problems": problems,
                "now": now.isoformat(),
                "timezone": str(ops.program.timezone),
                "ticks": ops.live.ticks,
                "last_tick": None if last_tick is None else last_tick.isoformat(),
                "dr": ops.dr_status(),
            },
        )

    @app.get("/api/me", tags=["program"])
    def me(who: Who) -> dict[str, Any]:
        return {
            "name": who.name,
            "role": who.role.value,
            "sites": sorted(who.sites),
            "utility": who.utility,
        }

    @app.get("/api/program", tags=["program"])
    def program(who: Who) -> dict[str, Any]:
        """Aggregates every role may see (no vehicle or person named)."""
        sites = _scope(ops, who)
        # A utility's power totals leave homes out unless there are enough of them that no
        # one home shows through (a territory of one home would be that home's power).
        powered = [
            s
            for s in sites
            if who.role is not Role.UTILITY
            or s.kind is not SiteKind.HOME
            or sum(x.kind is SiteKind.HOME for x in sites) >= MIN_HOMES_IN_TOTALS
        ]
        withheld = None
        if who.role is Role.UTILITY and len(powered) < ops.min_sites_in_aggregates:
            withheld = _too_few(len(powered), ops.min_sites_in_aggregates)
            powered = []
        statuses = [ops.live.status[s.site_id] for s in powered]
        next_event = _next_event(ops, sites)
        power = {
            "installed_discharge_kw": round(
                sum(c.max_discharge_kw for s in powered for c in s.chargers), 1
            ),
            "vehicles_kw_now": round(sum(st.vehicles_kw for st in statuses), 1),
            "available_discharge_kw_now": round(
                sum(_available_kw(s, ops.live.status[s.site_id]) for s in powered), 1
            ),
        }
        return {
            "name": ops.program.name,
            "now": ops.clock.now().isoformat(),
            "sites": len(sites),
            "sites_by_kind": _count(s.kind.value for s in sites),
            "vehicles": sum(len(s.vehicles) for s in sites),
            "chargers": sum(len(s.chargers) for s in sites),
            **{name: None if withheld else value for name, value in power.items()},
            "sites_in_power_totals": len(powered),
            "power_withheld": withheld,
            "modes": _count(_mode_shown(s, ops.live.status[s.site_id], who) for s in sites),
            "next_event": next_event,
        }

    @app.get("/api/sites", tags=["sites"])
    def sites(who: Who) -> list[dict[str, Any]]:
        """Sites in the caller's scope; vehicle detail only where the caller may see it."""
        return [
            _site_summary(
                site,
                ops.live.status[site.site_id],
                who.may_see_site(site.site_id),
                _mode_shown(site, ops.live.status[site.site_id], who),
            )
            for site in _scope(ops, who)
        ]

    @app.get("/api/sites/{site_id}", tags=["sites"])
    def site(site_id: str, who: Who) -> dict[str, Any]:
        chosen = visible_site(who, site_id)
        departures = next_departures(
            ops.store, site_id, (v.vehicle_id for v in chosen.vehicles), ops.clock.now()
        )
        return _site_detail(chosen, ops.live.status[site_id], ops.live, departures)

    @app.get("/api/sites/{site_id}/plan", tags=["sites"])
    def plan(site_id: str, who: Who) -> dict[str, Any]:
        visible_site(who, site_id)
        current = ops.live.plan(site_id)
        if current is None:  # none made since the server started: the newest stored,
            stored = latest_plan(ops.store, site_id, ops.clock.now())  # if it still runs
            return stored or {"site_id": site_id, "start": None, "intervals": []}
        return {
            "site_id": site_id,
            "start": current.start.isoformat(),
            "step_minutes": current.step.total_seconds() / 60,
            "made_at": None,  # the plan the controller follows now
            **rounded(current),
        }

    @app.get("/api/sites/{site_id}/plans", tags=["sites"])
    def plans(
        site_id: str, who: Who, hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24.0
    ) -> list[dict[str, Any]]:
        """The plans the site's controller made in the last ``hours`` (when, from when, how
        long the solver took)."""
        visible_site(who, site_id)
        return plans_made(ops.store, site_id, ops.clock.now() - timedelta(hours=hours))

    @app.get("/api/sites/{site_id}/sessions", tags=["sites"])
    def site_sessions(
        site_id: str, who: Who, hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24.0 * 7
    ) -> list[dict[str, Any]]:
        """The charging sessions at the site's chargers open in the last ``hours``, with
        the energy each way (personal: admin and the owner)."""
        chosen = visible_site(who, site_id)
        since = ops.clock.now() - timedelta(hours=hours)
        return sessions(ops.store, [c.evse_id for c in chosen.chargers], since)

    @app.get("/api/sites/{site_id}/backup", tags=["resilience"])
    def backup(site_id: str, who: Who) -> dict[str, Any]:
        visible_site(who, site_id)
        estimate = ops.live.backup(site_id)
        return {
            "site_id": site_id,
            "at": estimate.at.isoformat(),
            "horizon_h": estimate.horizon_h,
            "hours": {tier.value: round(h, 2) for tier, h in estimate.hours.items()},
            "islanded": ops.live.islanded(site_id),
        }

    @app.get("/api/sites/{site_id}/telemetry", tags=["sites"])
    def telemetry(
        site_id: str, who: Who, hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24.0
    ) -> list[dict[str, Any]]:
        chosen = visible_site(who, site_id)
        since = ops.clock.now() - timedelta(hours=hours)
        rows = recent_samples(ops.store, [c.evse_id for c in chosen.chargers], since)
        return [{**row, "at": row["at"].isoformat()} for row in rows]

    @app.post("/api/sites/{site_id}/outage", tags=["resilience"])
    def outage(
        site_id: str,
        who: Who,
        state: Annotated[str, Body(pattern="^(lost|restored)$", embed=True)],
        released_vehicles: Annotated[list[str], Body(embed=True)] = [],  # noqa: B006
    ) -> dict[str, Any]:
        """Declare the grid lost at a site (it islands at once) or restored (it re-syncs
        after the enter-service delay, once no other source still reports the grid lost).
        ``released_vehicles`` may use their route reserve during this outage. Every user of
        the API speaks as one source, so anyone allowed may end an outage another declared;
        ending one the API did not declare is 409."""
        action = f"outage-{state}"
        chosen = scoped_site(who, site_id, action)
        releasing = state == "lost" and bool(released_vehicles)
        if who.role is Role.OWNER and not releasing:
            refuse(who, action, site_id, "an owner may only release vehicles during an outage")
        if who.role is Role.UTILITY and released_vehicles:
            # A route or owner reserve is the owner's to give up, not the utility's.
            refuse(who, action, site_id, "only the site's owner or program staff may release")
        if who.role is Role.OWNER and not ops.live.islanded(site_id):
            ops.access().audit(who, action, site_id, "refused", {"status": 409})
            raise HttpError(409, f"no outage at '{site_id}': nothing to release vehicles for")
        unknown = sorted(set(released_vehicles) - {v.vehicle_id for v in chosen.vehicles})
        if unknown:
            ops.access().audit(who, action, site_id, "refused", {"status": 422})
            raise HttpError(422, f"not a vehicle of {site_id}: {unknown}", "released_vehicles")
        signal = GridSignal(state)
        lost_by, _ = ops.live.grid_losses(site_id)
        if signal is GridSignal.RESTORED and API_SOURCE not in lost_by:
            others = ", ".join(sorted(lost_by)) or "no source"
            ops.access().audit(who, action, site_id, "refused", {"status": 409})
            raise HttpError(
                409, f"no outage declared through the API at '{site_id}' ({others} reports one)"
            )
        ops.access().audit(who, action, site_id, "done", {"released_vehicles": released_vehicles})
        ops.live.report_grid(
            site_id, API_SOURCE, signal, released_vehicles=frozenset(released_vehicles)
        )
        lost_by, resync_at = ops.live.grid_losses(site_id)
        return {
            "site_id": site_id,
            "islanded": ops.live.islanded(site_id),
            "lost_by": sorted(lost_by),
            "resync_at": resync_at.isoformat() if resync_at else None,
        }

    @app.get("/api/completeness", tags=["sites"])
    def completeness(
        who: Who, hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24.0
    ) -> list[dict[str, Any]]:
        """Per charger over the last ``hours``: how much of the plugged time fresh readings
        covered, readings, sequence gaps, setpoints not accepted (admin; an owner: their
        sites). A utility does not see it: at a home, plugged time is personal."""
        require(who, frozenset({Role.ADMIN, Role.OWNER}))
        now = ops.clock.now()
        site_of = {c.evse_id: s.site_id for s in _scope(ops, who) for c in s.chargers}
        lines = data_completeness(ops.store, site_of, now - timedelta(hours=hours), now)
        return [
            {
                "station_id": line.station_id,
                "site_id": site_of[line.station_id],
                "plugged_hours": round(line.plugged_hours, 2),
                "covered_hours": round(line.covered_hours, 2),
                "completeness": _round(line.completeness, 4),
                "samples": line.samples,
                "last_reading_at": line.last_reading_at.isoformat()
                if line.last_reading_at
                else None,
                "sequence_gaps": line.sequence_gaps,
                "setpoints_sent": line.setpoints_sent,
                "setpoints_not_accepted": line.setpoints_not_accepted,
                "quarantined": line.quarantined,
            }
            for line in lines
        ]

    @app.get("/api/quarantine", tags=["sites"])
    def quarantine(
        who: Who, hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24.0
    ) -> list[dict[str, Any]]:
        """Readings refused or left out as implausible over the last ``hours``, newest first
        (at most 200; admin: a raw frame may carry an id token, so only an excerpt)."""
        require(who, ADMIN)
        since = ops.clock.now() - timedelta(hours=hours)
        return [
            {
                "received_at": q.received_at.isoformat(),
                "source": q.source,
                "station_id": q.station_id,
                "site_id": q.site_id,
                "action": q.action,
                "field": q.field,
                "value": q.value,
                "reason": q.reason,
                "raw_excerpt": q.raw_excerpt,
            }
            for q in recent_quarantine(ops.store, since)
        ]

    @app.put("/api/sites/{site_id}/vehicles/{vehicle_id}/departure", tags=["sites"])
    def set_departure_route(
        site_id: str,
        vehicle_id: str,
        who: Who,
        departure: Annotated[AwareDatetime, Body(embed=True)],
        target_soc: Annotated[float | None, Body(embed=True, ge=0, le=1, strict=True)] = None,
    ) -> dict[str, Any]:
        """The owner's next departure for a vehicle (with the state of charge to leave with,
        if they say): the site re-plans for it at once, until it has passed."""
        return departure_command(site_id, vehicle_id, who, departure, target_soc)

    @app.delete("/api/sites/{site_id}/vehicles/{vehicle_id}/departure", tags=["sites"])
    def clear_departure_route(site_id: str, vehicle_id: str, who: Who) -> dict[str, Any]:
        """Back to the vehicle's usual trips."""
        return departure_command(site_id, vehicle_id, who, None, None)

    def departure_command(
        site_id: str,
        vehicle_id: str,
        who: Principal,
        departure: datetime | None,
        target_soc: float | None,
    ) -> dict[str, Any]:
        action, target = (
            "departure-set" if departure else "departure-clear",
            f"{site_id}/{vehicle_id}",
        )
        if who.role is Role.UTILITY:
            refuse(who, action, target, f"the {who.role.value} role may not set departures")
        chosen = scoped_site(who, site_id, action, target)
        detail = {
            "departure": departure.isoformat() if departure else None,
            "target_soc": target_soc,
        }
        try:
            kept = set_departure(
                ops.store, chosen, vehicle_id, departure, target_soc, who.name, ops.clock.now()
            )
        except ConfigError as error:
            ops.access().audit(who, action, target, "refused", {**detail, "error": str(error)})
            raise
        ops.access().audit(who, action, target, "done", detail)
        ops.live.wake(site_id)
        return {
            "site_id": site_id,
            "vehicle_id": vehicle_id,
            "departure": kept.depart_at.isoformat() if kept else None,
            "target_soc": kept.target_soc if kept else None,
        }

    @app.post("/api/sites/{site_id}/meter", tags=["sites"])
    def meter(
        site_id: str,
        who: Who,
        readings: Annotated[list[dict[str, Any]], Body(embed=True)],
    ) -> dict[str, Any]:
        """Building load (and PV) readings from the site's own meter, posted by its gateway
        (admin): the loop plans on them while fresh, and settlement caps with them."""
        require(who, ADMIN, "meter-readings", site_id)  # before the lookup: no id probing
        chosen = ops.site(site_id)
        try:
            count = record_readings(ops.store, chosen, readings, ops.clock.now())
        except ConfigError as error:
            ops.access().audit(who, "meter-readings", site_id, "refused", _refusal(error))
            raise
        ops.access().audit(who, "meter-readings", site_id, "done", {"readings": count})
        ops.live.wake(site_id)
        return {"site_id": site_id, "readings": count}

    @app.get("/api/stations", tags=["sites"])
    def stations(who: Who) -> list[dict[str, Any]]:
        require(who, ADMIN)
        return [
            {
                "station_id": c.evse_id,
                "site_id": s.site_id,
                "model": c.model,
                "max_charge_kw": c.max_charge_kw,
                "max_discharge_kw": c.max_discharge_kw,
                "protocol": c.protocol.value,
                "answer": ops.live.status[s.site_id].answers.get(c.evse_id),
            }
            for s in ops.program.sites
            for c in s.chargers
        ]

    # --- events ----------------------------------------------------------------------------

    @app.get("/api/events", tags=["demand response"])
    def events(who: Who) -> list[dict[str, Any]]:
        service = ops.events()
        now = ops.clock.now()
        listed = sorted(service.book().events.values(), key=lambda e: e.start)
        if who.role is Role.ADMIN:
            return [event_document(e, now) for e in listed]
        # An owner sees the events that call one of their sites, a utility those that call
        # its territory; neither sees another's sites or opt-outs.
        scope = _scope(ops, who)
        return [shown_event(who, e) for e in listed if _calls_any(e, scope)]

    @app.post("/api/events", tags=["demand response"], status_code=201, response_model=None)
    def submit(
        who: Who,
        body: dict[str, Any] = Body(...),  # noqa: B008 - FastAPI's idiom
    ) -> Any:
        target = str(body.get("event_id", ""))
        require(who, frozenset({Role.ADMIN, Role.UTILITY}), "event-submit", target)
        service = ops.events()
        known = target in service.book().events
        if who.role is Role.UTILITY:
            # The notice counts from when the server received the event, whatever the body
            # says: a backdated notice_at would get round the program's notice rule.
            body = {k: v for k, v in body.items() if k != "notice_at"}
            body = territory_event(who, body, target)
            started = _time_of(body, "start")
            if started is not None and started <= ops.clock.now():
                # A past event would read out whether a home's car was there then.
                ops.access().audit(who, "event-submit", target, "refused", {"status": 422})
                raise HttpError(
                    422, "is past: a utility announces events before they start", "start"
                )
            body["source"] = f"utility:{who.utility}"[:24]  # who sent it, not what they say
        if not known:
            problems = _unfit_event(ops, _scope(ops, who), body)
            if problems:
                ops.access().audit(who, "event-submit", target, "refused", {"status": 422})
                raise ConfigError(problems)
        try:
            event = service.submit({**body, "source": body.get("source", f"api:{who.name}")})
        except ConfigError as error:
            ops.access().audit(who, "event-submit", target, "refused", _refusal(error))
            raise
        ops.access().audit(who, "event-submit", event.event_id, "done", {"body": body})
        ops.live.wake()
        return JSONResponse(status_code=200 if known else 201, content=shown_event(who, event))

    @app.delete("/api/events/{event_id}", tags=["demand response"])
    def cancel(event_id: str, who: Who) -> dict[str, Any]:
        require(who, frozenset({Role.ADMIN, Role.UTILITY}), "event-cancel", event_id)
        service = ops.events()
        known = service.book().events.get(event_id)
        if known is None:
            ops.access().audit(who, "event-cancel", event_id, "refused", {"status": 404})
            raise HttpError(404, f"no event '{event_id}'", "event_id")
        if who.role is Role.UTILITY:
            territory = {s.site_id for s in _scope(ops, who)}
            if not _calls_any(known, _scope(ops, who)):  # as if unknown: no id probing
                ops.access().audit(who, "event-cancel", event_id, "refused", {"status": 404})
                raise HttpError(404, f"no event '{event_id}'", "event_id")
            if not known.sites or not set(known.sites) <= territory:
                refuse(
                    who,
                    "event-cancel",
                    event_id,
                    f"event '{event_id}' calls sites outside {who.utility}'s territory",
                )
        try:
            event = service.cancel(event_id)
        except ConfigError as error:
            ops.access().audit(who, "event-cancel", event_id, "refused", _refusal(error))
            raise
        ops.access().audit(who, "event-cancel", event_id, "done")
        ops.live.wake()
        return shown_event(who, event)

    @app.post("/api/events/{event_id}/opt-out/{site_id}", tags=["demand response"])
    def opt_out(event_id: str, site_id: str, who: Who) -> dict[str, Any]:
        """The owner takes a site out of one event that calls it (admins may too)."""
        target = f"{event_id}/{site_id}"
        if who.role is Role.UTILITY:
            refuse(who, "event-opt-out", target, "a site's owner or program staff opts out")
        site = scoped_site(who, site_id, "event-opt-out", target)
        service = ops.events()
        known = service.book().events.get(event_id)
        if known is None or not _calls_any(known, [site]):
            raise HttpError(404, f"no event '{event_id}' calls site '{site_id}'", "event_id")
        try:
            event = service.opt_out(event_id, site_id)
        except ConfigError as error:
            ops.access().audit(who, "event-opt-out", target, "refused", _refusal(error))
            raise
        ops.access().audit(who, "event-opt-out", target, "done")
        ops.live.wake(site_id)
        return shown_event(who, event)

    @app.get("/api/events/{event_id}/performance", tags=["demand response"])
    def performance(event_id: str, who: Who) -> dict[str, Any]:
        """Each called site's kW in the event so far, measured as settlement measures it,
        against its chargers' discharge rating (an owner: their sites; a utility: its
        territory, for the events it may see)."""
        event = ops.events().book().events.get(event_id)
        if event is None:
            raise HttpError(404, f"no event '{event_id}'", "event_id")
        called = {
            s.site_id
            for s in _scope(ops, who)
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
                total_kw, withheld = None, _too_few(len(lines), ops.min_sites_in_aggregates)
            lines = [_without_power(line) for line in lines]
        return {
            **shown_event(who, event),
            "total_kw": total_kw,
            "power_withheld": withheld,
            "site_power_shown": who.role is not Role.UTILITY,
            "sites": [
                {
                    "site_id": line.site_id,
                    "kind": line.kind,
                    "opted_out": line.opted_out,
                    "hours": round(line.hours, 2),
                    "net_discharge_kwh": _round(line.net_discharge_kwh),
                    "kw": _round(line.kw),
                    "capacity_kw": round(line.capacity_kw, 1),
                }
                for line in lines
            ],
        }

    @app.get("/api/settlements", tags=["demand response"])
    def settlements(
        who: Who, season: Annotated[int | None, Query(ge=1901, le=2199)] = None
    ) -> list[dict[str, Any]]:
        """Each site's season settlement from what its chargers metered in the events that
        have ended (admin; a utility sees its own territory)."""
        require(who, frozenset({Role.ADMIN, Role.UTILITY}))
        in_scope = {s.site_id for s in _scope(ops, who)}
        called = called_events(ops.events().book().events.values(), ops.clock.now())
        rules = {
            r.program_id: r
            for r in ops.events().rules
            if any(e.program_id == r.program_id for e in called)
        }
        metered = metered_from_store(ops.store, ops.program, called)
        lines, _ = settle_program(ops.program, rules, called, metered, season_year=season)
        return [
            {k: (round(v, 2) if isinstance(v, float) else v) for k, v in line.as_dict().items()}
            for line in lines
            if line.site_id in in_scope
        ]

    report_running = app.state.report_running = threading.Lock()  # one report at a time

    @app.get("/api/report", tags=["program"], response_class=HTMLResponse)
    def season_report(
        who: Who,
        days: Annotated[int, Query(ge=1, le=MAX_REPORT_DAYS)] = 30,
        season: Annotated[int | None, Query(ge=1901, le=2199)] = None,
        as_: Annotated[Literal["html", "pdf"], Query(alias="format")] = "html",
    ) -> Response:
        """The live season's report (``lightson report --db``): the last ``days`` of program
        time, or the calendar year ``season``, as one HTML page with its figures inside, or as
        a PDF (admin: it names every site and vehicle). Made in a process of its own, one at a
        time (429 while one is being made), so that reading a season of readings takes no
        time or memory from the chargers' connections and the control loop."""
        require(who, ADMIN)
        now = ops.clock.now()
        since = now - timedelta(days=days)
        if season is not None:
            since = datetime(season, 1, 1, tzinfo=ops.program.timezone)
            now = min(now, datetime(season + 1, 1, 1, tzinfo=ops.program.timezone))
        events = ops.events()
        rules = {r.program_id: r for r in events.rules}
        if not report_running.acquire(blocking=False):
            raise HttpError(429, "a report is being made; ask again when it is done")
        try:
            # A pool's exit terminates its worker: a report that hangs (a locked database)
            # is stopped at the timeout rather than holding the lock for good.
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                made = pool.apply_async(
                    season_report_bytes,
                    (
                        ops.store.url,
                        ops.program,
                        events.book(),
                        rules,
                        since,
                        now,
                        as_ == "pdf",
                    ),
                )
                try:
                    content = made.get(timeout=REPORT_TIMEOUT_S)
                except multiprocessing.TimeoutError:
                    raise HttpError(
                        504, f"the report took over {REPORT_TIMEOUT_S:.0f} s; ask for fewer days"
                    ) from None
        finally:
            report_running.release()
        if as_ == "pdf":
            return Response(content, media_type="application/pdf")
        return HTMLResponse(content.decode("utf-8"))

    # --- metrics and the dashboard --------------------------------------------------------

    registry = CollectorRegistry()
    registry.register(_Metrics(ops))

    @app.get("/metrics", tags=["program"], response_class=PlainTextResponse)
    def metrics(who: Who) -> Response:
        require(who, ADMIN)
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    static = resources.files("lightson.api") / "static"
    app.mount("/", StaticFiles(directory=str(static), html=True), name="dashboard")
    return app


# --- documents ------------------------------------------------------------------------------


def _scope(ops: Operations, who: Principal) -> list[Site]:
    """The sites a caller deals with: all (admin), their own (owner), their territory
    (utility)."""
    if who.role is Role.ADMIN:
        return list(ops.program.sites)
    if who.role is Role.OWNER:
        return [s for s in ops.program.sites if s.site_id in who.sites]
    return [s for s in ops.program.sites if s.utility == who.utility]


def _departure_document(departure: Departure | None) -> dict[str, Any] | None:
    if departure is None:
        return None
    return {
        "at": departure.depart_at.isoformat(),
        "target_soc": departure.target_soc,
        "set_by": departure.set_by,
    }


def _time_of(body: dict[str, Any], key: str) -> datetime | None:
    """The body's ``key`` time, if it reads as an aware time (else the event service names
    it)."""
    try:
        at = datetime.fromisoformat(str(body.get(key, "")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _unfit_event(
    ops: Operations, scope: Sequence[Site], body: dict[str, Any]
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
        enrolled = {s.site_id for s in scope if program_id in s.enrollments}
        unfit = sorted({str(site) for site in named} - enrolled)
        if unfit:
            problems.append(("sites", f"not sites enrolled in '{program_id}': {unfit}"))
    return problems


def _refusal(error: ConfigError) -> dict[str, Any]:
    return {"status": 422, "error": str(error)}


def _too_few(counted: int, least: int) -> str:
    """Why a utility gets no power figure: too few sites for no one site to show."""
    return (
        f"{counted} site(s) would be counted, fewer than {least}: "
        "no power figure over so few sites, so that no one customer's power shows"
    )


def _without_power(line: SitePerformance) -> SitePerformance:
    """An event's line for one site without its power or energy."""
    return replace(line, kw=None, net_discharge_kwh=None)


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _available_kw(site: Site, status: SiteStatus) -> float:
    """Discharge power the plugged V2X vehicles could give now (equipment limits)."""
    return sum(
        min(v.max_discharge_kw, site.charger(v.evse_id).max_discharge_kw)
        for v in site.vehicles
        if v.max_discharge_kw > 0 and status.plugged.get(v.vehicle_id, False)
    )


def _mode_shown(site: Site, status: SiteStatus, who: Principal) -> str:
    """A home's mode as a utility may see it: islanded or parallel. ``fallback`` would say
    that a car is plugged in there (its readings went stale)."""
    if who.role is Role.UTILITY and site.kind is SiteKind.HOME:
        return "islanded" if status.mode == "islanded" else "parallel"
    return status.mode


def _calls_any(event: ProgramEvent, sites: Sequence[Site]) -> bool:
    """Whether the event calls one of ``sites`` (enrolled in its program, and listed or
    the event lists none)."""
    return any(
        event.program_id in s.enrollments and (not event.sites or s.site_id in event.sites)
        for s in sites
    )


def _next_event(ops: Operations, sites: Sequence[Site]) -> dict[str, Any] | None:
    now = ops.clock.now()
    upcoming = [
        e
        for e in ops.events().book().events.values()
        if e.end > now and e.cancelled_at is None and _calls_any(e, sites)
    ]
    if not upcoming:
        return None
    first = min(upcoming, key=lambda e: e.start)
    return {
        "event_id": first.event_id,
        "program_id": first.program_id,
        "start": first.start.isoformat(),
        "end": first.end.isoformat(),
    }


def _status_document(status: SiteStatus) -> dict[str, Any]:
    return {
        "mode": status.mode,
        "reason": status.reason,
        "at": status.at.isoformat(),
        "load_kw": round(status.load_kw, 2),
        "pv_kw": round(status.pv_kw, 2),
        "vehicles_kw": round(status.vehicles_kw, 2),
        "grid_kw": round(
            0.0
            if status.mode == "islanded"
            else status.load_kw - status.pv_kw + status.vehicles_kw,
            2,
        ),
        "critical_unserved_kw": round(status.critical_unserved_kw, 2),
        "tier": status.tier,
        "fallback": list(status.fallback),
        "load_source": status.load_source,
    }


def _site_summary(
    site: Site, status: SiteStatus, personal: bool, mode: str | None = None
) -> dict[str, Any]:
    """One line of the site list. Power, load and vehicles only where the caller may see the
    site's personal data: at a home they tell whether the car, and the family, are there."""
    document: dict[str, Any] = {
        "site_id": site.site_id,
        "kind": site.kind.value,
        "utility": site.utility,
        "enrollments": list(site.enrollments),
        "status": {"mode": mode or status.mode},
    }
    if personal:
        document["status"] = _status_document(status)
        document["available_discharge_kw"] = round(_available_kw(site, status), 1)
        document["vehicles"] = len(site.vehicles)
        document["plugged"] = sum(status.plugged.values())
    return document


def _site_detail(
    site: Site, status: SiteStatus, live: LiveControl, departures: dict[str, Departure]
) -> dict[str, Any]:
    power = {s.evse_id: s.power_kw for s in status.setpoints}
    return {
        **_site_summary(site, status, True),
        "service_limit_kw": site.service_limit_kw,
        "export_permitted": site.export_permitted,
        "islanded": live.islanded(site.site_id),
        "answers": dict(status.answers),
        "interventions": [
            {
                "evse_id": i.evse_id,
                "rule": i.rule.value,
                "requested_kw": round(i.requested_kw, 2),
                "allowed_kw": round(i.allowed_kw, 2),
            }
            for i in status.interventions
        ],
        "vehicles": [
            {
                "vehicle_id": v.vehicle_id,
                "model": v.model,
                "evse_id": v.evse_id,
                "battery_kwh": v.battery_kwh,
                "v2x": v.max_discharge_kw > 0,
                "plugged": status.plugged.get(v.vehicle_id, False),
                "soc": status.soc.get(v.vehicle_id),
                "power_kw": round(power.get(v.evse_id, 0.0), 2),
                "departure": _departure_document(departures.get(v.vehicle_id)),
            }
            for v in site.vehicles
        ],
    }


class _Metrics:
    """Read at every scrape, from the live loop's statuses."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    def collect(self) -> Any:
        power = GaugeMetricFamily(
            "lightson_site_vehicles_kw", "Vehicle power at a site (+ charging)", labels=["site"]
        )
        load = GaugeMetricFamily("lightson_site_load_kw", "Building load", labels=["site"])
        mode = GaugeMetricFamily(
            "lightson_site_mode", "1 for the mode a site is in", labels=["site", "mode"]
        )
        age = GaugeMetricFamily(
            "lightson_site_status_age_seconds", "Since the site's last tick", labels=["site"]
        )
        now: datetime = self.ops.clock.now()
        for site_id, status in self.ops.live.status.items():
            power.add_metric([site_id], status.vehicles_kw)
            load.add_metric([site_id], status.load_kw)
            mode.add_metric([site_id, status.mode], 1.0)
            age.add_metric([site_id], (now - status.at).total_seconds())
        yield power
        yield load
        yield mode
        yield age
        stations = GaugeMetricFamily("lightson_stations_connected", "Open OCPP sessions")
        stations.add_metric([], float(self.ops.connected_stations()))
        yield stations
        ticks = GaugeMetricFamily("lightson_control_ticks", "Site ticks since start")
        ticks.add_metric([], float(self.ops.live.ticks))
        yield ticks
        quarantined = CounterMetricFamily(
            "lightson_quarantined",
            "Readings refused or left out as implausible, since the database began",
            labels=["source", "reason"],
        )
        for (source, reason), count in sorted(quarantine_counts(self.ops.store).items()):
            quarantined.add_metric([source, reason], float(count))
        yield quarantined
