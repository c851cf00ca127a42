"""Sites and their chargers: the site list, one site's detail, plan, plans, sessions and
telemetry, a vehicle's departure, the site meter's readings, data completeness, the
quarantine and the station list (``/api/sites``, ``/api/completeness``,
``/api/quarantine``, ``/api/stations``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import AwareDatetime

from lightson.api.deps import (
    ADMIN,
    Operations,
    Ops,
    Who,
    refuse,
    require,
    scope,
    scoped_site,
    visible_site,
)
from lightson.api.documents import (
    available_kw,
    mode_shown,
    refusal,
    rounded_or_none,
    unreported_status,
)
from lightson.domain.assets import Site
from lightson.domain.errors import ConfigError
from lightson.services.access import Principal, Role
from lightson.services.completeness import completeness_rows
from lightson.services.departures import Departure, next_departures, set_departure
from lightson.services.live import LiveControl
from lightson.services.live_status import SiteStatus
from lightson.services.plans import latest_plan, plans_made, rounded
from lightson.services.quarantine import recent_quarantine
from lightson.services.sessions import sessions
from lightson.services.site_meter import record_readings
from lightson.store.live import recent_samples

router = APIRouter(tags=["sites"])


@router.get("/api/sites")
def sites(who: Who, ops: Ops) -> list[dict[str, Any]]:
    """Sites in the caller's scope; vehicle detail only where the caller may see it. A
    site no live worker reports (``lightson api``) is listed with ``status.mode`` ``no
    controller``, the age of its last status and the worker that wrote it."""
    lines = []
    for site in scope(ops, who):
        status = ops.live.status.get(site.site_id)
        if status is None:
            lines.append(_unreported_summary(site, ops.last_report(site.site_id)))
            continue
        personal = who.may_see_site(site.site_id)
        mode = mode_shown(site, status, who)
        lines.append(_site_summary(site, status, personal, mode, now=ops.clock.now()))
    return lines


@router.get("/api/sites/{site_id}")
def site(site_id: str, who: Who, ops: Ops) -> dict[str, Any]:
    chosen = visible_site(ops, who, site_id)
    departures = next_departures(
        ops.store, site_id, (v.vehicle_id for v in chosen.vehicles), ops.clock.now()
    )
    status = ops.live.status[site_id]
    return _site_detail(chosen, status, ops.live, departures, ops.clock.now())


@router.get("/api/sites/{site_id}/plan")
def plan(site_id: str, who: Who, ops: Ops) -> dict[str, Any]:
    visible_site(ops, who, site_id)
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


@router.get("/api/sites/{site_id}/plans")
def plans(
    site_id: str, who: Who, ops: Ops, hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24.0
) -> list[dict[str, Any]]:
    """The plans the site's controller made in the last ``hours`` (when, from when, how
    long the solver took)."""
    visible_site(ops, who, site_id)
    return plans_made(ops.store, site_id, ops.clock.now() - timedelta(hours=hours))


@router.get("/api/sites/{site_id}/sessions")
def site_sessions(
    site_id: str,
    who: Who,
    ops: Ops,
    hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24.0 * 7,
) -> list[dict[str, Any]]:
    """The charging sessions at the site's chargers open in the last ``hours``, with
    the energy each way (personal: admin and the owner)."""
    chosen = visible_site(ops, who, site_id)
    since = ops.clock.now() - timedelta(hours=hours)
    return sessions(ops.store, [c.evse_id for c in chosen.chargers], since)


@router.get("/api/sites/{site_id}/telemetry")
def telemetry(
    site_id: str, who: Who, ops: Ops, hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24.0
) -> list[dict[str, Any]]:
    chosen = visible_site(ops, who, site_id)
    since = ops.clock.now() - timedelta(hours=hours)
    rows = recent_samples(ops.store, [c.evse_id for c in chosen.chargers], since)
    return [{**row, "at": row["at"].isoformat()} for row in rows]


@router.get("/api/completeness")
def completeness(
    who: Who, ops: Ops, hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24.0
) -> list[dict[str, Any]]:
    """Per charger over the last ``hours``: how much of the plugged time fresh readings
    covered, readings, sequence gaps, setpoints not accepted (admin; an owner: their
    sites). A utility does not see it: at a home, plugged time is personal."""
    require(ops, who, frozenset({Role.ADMIN, Role.OWNER}))
    now = ops.clock.now()
    site_of = {c.evse_id: s.site_id for s in scope(ops, who) for c in s.chargers}
    rows = completeness_rows(ops.store, site_of, now - timedelta(hours=hours), now)
    return [
        {
            **row,
            "plugged_hours": round(row["plugged_hours"], 2),
            "covered_hours": round(row["covered_hours"], 2),
            "completeness": rounded_or_none(row["completeness"], 4),
            "last_reading_at": row["last_reading_at"].isoformat()
            if row["last_reading_at"]
            else None,
        }
        for row in rows
    ]


@router.get("/api/quarantine")
def quarantine(
    who: Who, ops: Ops, hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24.0
) -> list[dict[str, Any]]:
    """Readings refused or left out as implausible over the last ``hours``, newest first
    (at most 200; admin: a raw frame may carry an id token, so only an excerpt)."""
    require(ops, who, ADMIN)
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


@router.put("/api/sites/{site_id}/vehicles/{vehicle_id}/departure")
def set_departure_route(
    site_id: str,
    vehicle_id: str,
    who: Who,
    ops: Ops,
    departure: Annotated[AwareDatetime, Body(embed=True)],
    target_soc: Annotated[float | None, Body(embed=True, ge=0, le=1, strict=True)] = None,
) -> dict[str, Any]:
    """The owner's next departure for a vehicle (with the state of charge to leave with,
    if they say): the site re-plans for it at once, until it has passed."""
    return _departure_command(ops, site_id, vehicle_id, who, departure, target_soc)


@router.delete("/api/sites/{site_id}/vehicles/{vehicle_id}/departure")
def clear_departure_route(site_id: str, vehicle_id: str, who: Who, ops: Ops) -> dict[str, Any]:
    """Back to the vehicle's usual trips."""
    return _departure_command(ops, site_id, vehicle_id, who, None, None)


@router.post("/api/sites/{site_id}/meter")
def meter(
    site_id: str,
    who: Who,
    ops: Ops,
    readings: Annotated[list[dict[str, Any]], Body(embed=True)],
) -> dict[str, Any]:
    """Building load (and PV) readings from the site's own meter, posted by its gateway
    (admin): the loop plans on them while fresh, and settlement caps with them."""
    require(ops, who, ADMIN, "meter-readings", site_id)  # before the lookup: no id probing
    chosen = ops.site(site_id)
    try:
        count = record_readings(ops.store, chosen, readings, ops.clock.now())
    except ConfigError as error:
        ops.access().audit(who, "meter-readings", site_id, "refused", refusal(error))
        raise
    ops.access().audit(who, "meter-readings", site_id, "done", {"readings": count})
    ops.live.wake(site_id)
    return {"site_id": site_id, "readings": count}


@router.get("/api/stations")
def stations(who: Who, ops: Ops) -> list[dict[str, Any]]:
    require(ops, who, ADMIN)
    return [
        {
            "station_id": c.evse_id,
            "site_id": s.site_id,
            "model": c.model,
            "max_charge_kw": c.max_charge_kw,
            "max_discharge_kw": c.max_discharge_kw,
            "protocol": c.protocol.value,
            "answer": _answer(ops, s.site_id, c.evse_id),
        }
        for s in ops.program.sites
        for c in s.chargers
    ]


def _answer(ops: Operations, site_id: str, evse_id: str) -> str | None:
    """The charger's answer at its site's last tick (none while no controller reports)."""
    status = ops.live.status.get(site_id)
    return None if status is None else status.answers.get(evse_id)


def _departure_command(
    ops: Operations,
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
        refuse(ops, who, action, target, f"the {who.role.value} role may not set departures")
    chosen = scoped_site(ops, who, site_id, action, target)
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


# --- documents ------------------------------------------------------------------------------


def _departure_document(departure: Departure | None) -> dict[str, Any] | None:
    if departure is None:
        return None
    return {
        "at": departure.depart_at.isoformat(),
        "target_soc": departure.target_soc,
        "set_by": departure.set_by,
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


def _age_s(status: SiteStatus, now: datetime) -> float:
    """Seconds since the status's tick (an API server shows a worker's last one)."""
    return round(max(0.0, (now - status.at).total_seconds()), 1)


def _site_summary(
    site: Site,
    status: SiteStatus,
    personal: bool,
    mode: str | None = None,
    *,
    now: datetime,
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
        document["status"] = _status_document(status) | {"age_s": _age_s(status, now)}
        document["available_discharge_kw"] = round(available_kw(site, status), 1)
        document["vehicles"] = len(site.vehicles)
        document["plugged"] = sum(status.plugged.values())
    return document


def _unreported_summary(site: Site, last: tuple[float, str] | None) -> dict[str, Any]:
    """The site list's line of a site no live worker reports: no figure, nothing
    personal (there is no status to show), only why."""
    return {
        "site_id": site.site_id,
        "kind": site.kind.value,
        "utility": site.utility,
        "enrollments": list(site.enrollments),
        "status": unreported_status(last),
    }


def _site_detail(
    site: Site,
    status: SiteStatus,
    live: LiveControl,
    departures: dict[str, Departure],
    now: datetime,
) -> dict[str, Any]:
    power = {s.evse_id: s.power_kw for s in status.setpoints}
    return {
        **_site_summary(site, status, True, now=now),
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
