"""Backup and outages (``docs/resilience.md``): how many hours each load tier of a site
would be carried now, and an outage declared (or ended) through the API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from lightson.api.deps import Ops, Who, refuse, scoped_site, visible_site
from lightson.api.errors import HttpError
from lightson.control.grid import GridSignal
from lightson.services.access import Role

API_SOURCE = "api"  # how outages declared through the API are reported to the grid monitor

router = APIRouter(tags=["resilience"])


@router.get("/api/sites/{site_id}/backup")
def backup(site_id: str, who: Who, ops: Ops) -> dict[str, Any]:
    visible_site(ops, who, site_id)
    estimate = ops.live.backup(site_id)
    return {
        "site_id": site_id,
        "at": estimate.at.isoformat(),
        "horizon_h": estimate.horizon_h,
        "hours": {tier.value: round(h, 2) for tier, h in estimate.hours.items()},
        "islanded": ops.live.islanded(site_id),
    }


@router.post("/api/sites/{site_id}/outage")
def outage(
    site_id: str,
    who: Who,
    ops: Ops,
    state: Annotated[str, Body(pattern="^(lost|restored)$", embed=True)],
    released_vehicles: Annotated[list[str], Body(embed=True)] = [],  # noqa: B006
) -> dict[str, Any]:
    """Declare the grid lost at a site (it islands at once) or restored (it re-syncs
    after the enter-service delay, once no other source still reports the grid lost).
    ``released_vehicles`` may use their route reserve during this outage. Every user of
    the API speaks as one source, so anyone allowed may end an outage another declared;
    ending one the API did not declare is 409."""
    action = f"outage-{state}"
    chosen = scoped_site(ops, who, site_id, action)
    releasing = state == "lost" and bool(released_vehicles)
    if who.role is Role.OWNER and not releasing:
        refuse(ops, who, action, site_id, "an owner may only release vehicles during an outage")
    if who.role is Role.UTILITY and released_vehicles:
        # A route or owner reserve is the owner's to give up, not the utility's.
        refuse(ops, who, action, site_id, "only the site's owner or program staff may release")
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
