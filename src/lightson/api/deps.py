"""What every router depends on: the operations it serves (``Ops``), the caller (``Who``,
from the bearer token) and the access rules over sites (scope, refusals, audit).

A route takes ``ops: Ops`` and ``who: Who`` as parameters; neither adds anything to the
OpenAPI document beyond the bearer scheme. The rules (``docs/operations.md``): an admin
deals with every site, an owner with their own, a utility with its territory; a site
outside the caller's scope answers as an unknown one (404), so that ids cannot be found
out by trying them; a refused command is written to the audit log before the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lightson.api.errors import HttpError
from lightson.api.limits import DEFAULT_MAX_BODY_BYTES
from lightson.domain.assets import Program, Site
from lightson.domain.time import Clock
from lightson.programs.rules import ProgramRules
from lightson.services.access import AccessService, Principal, Role
from lightson.services.events import EventService
from lightson.services.live import LiveControl
from lightson.services.ratelimit import Buckets
from lightson.store import Store

ADMIN = frozenset({Role.ADMIN})
ANYONE = frozenset(Role)
MIN_HOMES_IN_TOTALS = 10  # a utility's power totals include homes only from this many on
MIN_SITES_IN_AGGREGATES = 5  # a utility sees no power figure over fewer sites than this
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_BEARER = HTTPBearer(auto_error=False)


@dataclass
class Operations:
    """What the API serves: the program, its database, the clock, the live loop (``None``
    when the API runs without one) and how many stations are connected (``None``: not
    known here, the API role: ``/metrics`` leaves the gauge out rather than show 0)."""

    program: Program
    store: Store
    clock: Clock
    live: LiveControl
    rules: Sequence[ProgramRules] | None = None
    connected_stations: Callable[[], int] | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # larger request bodies: 413, unread
    # Writes per token (POST, PUT, DELETE): 2 a second on average, 60 at once; failed
    # authentications per address: 10, then one every 6 s. Beyond either: 429.
    writes: Buckets = field(default_factory=lambda: Buckets(per_second=2.0, burst=60))
    failed_logins: Buckets = field(default_factory=lambda: Buckets(per_second=1 / 6, burst=10))
    # What else makes /api/health degraded (the API role: sites no live worker reports).
    problems: Callable[[datetime], list[str]] = lambda _now: []
    # A site with no status in ``live.status`` (the API role: no live worker reports it):
    # the age in seconds of its last status and the worker that wrote it, ``None`` if none
    # ever did. ``serve`` has every site's status, so never asks.
    last_report: Callable[[str], tuple[float, str] | None] = lambda _site_id: None
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


def operations(request: Request) -> Operations:
    """The operations the app was made with (``create_app`` keeps them in its state)."""
    ops: Operations = request.app.state.operations
    return ops


Ops = Annotated[Operations, Depends(operations)]


def principal(
    request: Request,
    ops: Ops,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> Principal:
    """The caller, from the bearer token (401 when there is none or it is unknown). An
    address that failed too often is refused (429) before its token is looked at, and a
    token that writes too often is refused (429) before the write is done."""
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


Who = Annotated[Principal, Depends(principal)]


def scope(ops: Operations, who: Principal) -> list[Site]:
    """The sites a caller deals with: all (admin), their own (owner), their territory
    (utility)."""
    if who.role is Role.ADMIN:
        return list(ops.program.sites)
    if who.role is Role.OWNER:
        return [s for s in ops.program.sites if s.site_id in who.sites]
    return [s for s in ops.program.sites if s.utility == who.utility]


def refuse(ops: Operations, who: Principal, action: str, target: str, message: str) -> None:
    """403, written to the audit log first when it refuses a command."""
    if action:
        ops.access().audit(who, action, target, "refused", {"status": 403})
    raise HttpError(403, message)


def require(
    ops: Operations,
    who: Principal,
    roles: frozenset[Role],
    action: str = "",
    target: str = "",
) -> None:
    """403 unless the caller's role is one of ``roles`` (a refused command audited)."""
    if who.role not in roles:
        refuse(ops, who, action, target, f"the {who.role.value} role may not do this")


def scoped_site(
    ops: Operations, who: Principal, site_id: str, action: str = "", target: str = ""
) -> Site:
    """The site if it is in the caller's scope. A site outside it answers as an unknown
    one (404, the same body), so that ids cannot be found out by trying them; a refused
    command is audited."""
    if site_id in {s.site_id for s in scope(ops, who)}:
        return ops.site(site_id)
    if action:
        ops.access().audit(who, action, target or site_id, "refused", {"status": 404})
    raise HttpError(404, f"no site '{site_id}'", "site_id")


def visible_site(ops: Operations, who: Principal, site_id: str) -> Site:
    """A site whose personal data (vehicles, power, sessions) the caller may see: a
    utility never (403, whatever the id), an owner their own (else 404)."""
    if who.role is Role.UTILITY:
        raise HttpError(403, f"the {who.role.value} role may not see a site's detail")
    return scoped_site(ops, who, site_id)
