"""Pieces of answers that more than one router gives: what a caller may see of a site's
mode and of aggregate power, the discharge power available now, which sites an event
calls, how a refusal is written to the audit log, and what a list shows of a site no
controller reports (``lightson api``: its worker is gone)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightson.domain.assets import Site, SiteKind
from lightson.domain.errors import ConfigError
from lightson.programs.events import ProgramEvent
from lightson.services.access import Principal, Role
from lightson.services.live_status import SiteStatus

NO_CONTROLLER = "no controller"  # the mode a list shows of a site no live worker reports


def unreported_status(last: tuple[float, str] | None) -> dict[str, Any]:
    """A list's ``status`` of a site with no controller: ``age_s`` of its last status and
    the ``worker`` that wrote it (both ``None``: no worker ever reported it)."""
    age_s, worker = (None, None) if last is None else (round(last[0], 1), last[1])
    reason = (
        "no worker has reported it"
        if last is None
        else f"its last status came {last[0]:.0f} s ago from worker {last[1]}"
    )
    return {"mode": NO_CONTROLLER, "reason": reason, "age_s": age_s, "worker": worker}


def too_few(counted: int, least: int) -> str:
    """Why a utility gets no power figure: too few sites for no one site to show."""
    return (
        f"{counted} site(s) would be counted, fewer than {least}: "
        "no power figure over so few sites, so that no one customer's power shows"
    )


def rounded_or_none(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def refusal(error: ConfigError) -> dict[str, Any]:
    """The audit log's detail of a command the program's rules refused."""
    return {"status": 422, "error": str(error)}


def available_kw(site: Site, status: SiteStatus) -> float:
    """Discharge power the plugged V2X vehicles could give now (equipment limits)."""
    return sum(
        min(v.max_discharge_kw, site.charger(v.evse_id).max_discharge_kw)
        for v in site.vehicles
        if v.max_discharge_kw > 0 and status.plugged.get(v.vehicle_id, False)
    )


def mode_shown(site: Site, status: SiteStatus, who: Principal) -> str:
    """A home's mode as a utility may see it: islanded or parallel. ``fallback`` would say
    that a car is plugged in there (its readings went stale)."""
    if who.role is Role.UTILITY and site.kind is SiteKind.HOME:
        return "islanded" if status.mode == "islanded" else "parallel"
    return status.mode


def calls_any(event: ProgramEvent, sites: Sequence[Site]) -> bool:
    """Whether the event calls one of ``sites`` (enrolled in its program, and listed or
    the event lists none)."""
    return any(
        event.program_id in s.enrollments and (not event.sites or s.site_id in event.sites)
        for s in sites
    )
