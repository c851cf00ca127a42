"""The program as a whole: ``/api/health`` (no token), ``/api/me``, ``/api/program``
(aggregates every role may see) and the Prometheus ``/metrics`` (admin)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from lightson.api.deps import (
    ADMIN,
    MIN_HOMES_IN_TOTALS,
    Operations,
    Ops,
    Who,
    require,
    scope,
)
from lightson.api.documents import NO_CONTROLLER, available_kw, calls_any, mode_shown, too_few
from lightson.domain.assets import Site, SiteKind
from lightson.services.access import Role
from lightson.services.quarantine import quarantine_counts

router = APIRouter(tags=["program"])


@router.get("/api/health")
def health(ops: Ops) -> JSONResponse:
    """200 ``ok``, or 503 ``degraded`` with the problems: the database could not be
    written at its last commit (read-only, disk full, server gone), the control loop
    stopped ticking, or (``lightson api``) sites no live worker controls. No token
    needed: a load balancer or a monitor asks it. ``dr`` is the OpenADR VEN's state; a
    VTN that does not answer leaves the server ``ok`` (it serves the chargers and the
    other event sources), a monitor reads ``dr.state``."""
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
    problems.extend(ops.problems(now))
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


@router.get("/api/me")
def me(who: Who) -> dict[str, Any]:
    return {
        "name": who.name,
        "role": who.role.value,
        "sites": sorted(who.sites),
        "utility": who.utility,
    }


@router.get("/api/program")
def program(who: Who, ops: Ops) -> dict[str, Any]:
    """Aggregates every role may see (no vehicle or person named). A site no live worker
    reports (``lightson api``) counts in ``modes`` as ``no controller`` and in
    ``sites_without_controller``, and adds nothing to the power now."""
    sites = scope(ops, who)
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
        withheld = too_few(len(powered), ops.min_sites_in_aggregates)
        powered = []
    # The API role: a site no live worker reports adds nothing to the power now.
    statuses = {s.site_id: ops.live.status.get(s.site_id) for s in sites}
    reported = [(s, st) for s in powered if (st := statuses[s.site_id]) is not None]
    power = {
        "installed_discharge_kw": round(
            sum(c.max_discharge_kw for s in powered for c in s.chargers), 1
        ),
        "vehicles_kw_now": round(sum(st.vehicles_kw for _, st in reported), 1),
        "available_discharge_kw_now": round(sum(available_kw(s, st) for s, st in reported), 1),
    }
    unreported = [s.site_id for s in sites if statuses[s.site_id] is None]
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
        "sites_without_controller": len(unreported),
        "modes": _count(
            NO_CONTROLLER if (st := statuses[s.site_id]) is None else mode_shown(s, st, who)
            for s in sites
        ),
        "next_event": _next_event(ops, sites),
    }


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(who: Who, ops: Ops) -> Response:
    require(ops, who, ADMIN)
    registry = CollectorRegistry()  # read at every scrape: nothing kept between them
    registry.register(_Metrics(ops))
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _next_event(ops: Operations, sites: Sequence[Site]) -> dict[str, Any] | None:
    now = ops.clock.now()
    upcoming = [
        e
        for e in ops.events().book().events.values()
        if e.end > now and e.cancelled_at is None and calls_any(e, sites)
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


class _Metrics:
    """Read at every scrape, from the live loop's statuses."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    def collect(self) -> Iterator[Metric]:
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
        for site in self.ops.program.sites:
            status = self.ops.live.status.get(site.site_id)
            if status is None:  # the API role: no live worker reports the site
                mode.add_metric([site.site_id, NO_CONTROLLER], 1.0)
                continue
            power.add_metric([site.site_id], status.vehicles_kw)
            load.add_metric([site.site_id], status.load_kw)
            mode.add_metric([site.site_id, status.mode], 1.0)
            # Never negative: the tick's time is another machine's clock (API role).
            age.add_metric([site.site_id], max(0.0, (now - status.at).total_seconds()))
        yield power
        yield load
        yield mode
        yield age
        if self.ops.connected_stations is not None:  # the API role does not know it
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
