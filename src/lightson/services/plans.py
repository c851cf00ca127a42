"""Plans the live loop's controllers made, as stored (``plans`` table): what each site planned,
when, to put next to what happened; the newest is shown after a restart until the site's
controller makes its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from lightson.domain.plan import Plan
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware


def rounded(plan: Plan) -> dict[str, Any]:
    """A plan's arrays as stored and shown: site net power and each vehicle's power to
    0.01 kW, its SoC to 0.0001."""
    return {
        "site_net_kw": [round(float(x), 2) for x in plan.site_net_power_kw],
        "vehicles": [
            {
                "vehicle_id": v.vehicle_id,
                "evse_id": v.evse_id,
                "power_kw": [round(float(x), 2) for x in v.power_kw],
                "soc": [round(float(x), 4) for x in v.soc],
            }
            for v in plan.vehicles
        ],
    }


def plans_made(store: Store, site_id: str, since: datetime) -> list[dict[str, Any]]:
    """The plans made at a site since ``since``, oldest first (summaries, no arrays)."""
    table = db.plans
    query = (
        select(
            table.c.id,
            table.c.made_at,
            table.c.start,
            table.c.step_s,
            table.c.controller,
            table.c.solve_time_s,
        )
        .where(table.c.site_id == site_id, table.c.made_at >= since.astimezone(UTC))
        .order_by(table.c.made_at, table.c.id)
    )
    with store.engine.connect() as connection:
        return [
            {
                "plan_id": row.id,
                "made_at": aware(row.made_at).isoformat(),
                "start": aware(row.start).isoformat(),
                "step_minutes": row.step_s / 60,
                "controller": row.controller,
                "solve_time_s": round(row.solve_time_s, 4),
            }
            for row in connection.execute(query)
        ]


def latest_plan(store: Store, site_id: str, now: datetime) -> dict[str, Any] | None:
    """The newest stored plan of a site, as ``GET /api/sites/{id}/plan`` shows a plan,
    while its horizon has not ended (``None``: none, or it is over)."""
    table = db.plans
    query = (
        select(table)
        .where(table.c.site_id == site_id)
        .order_by(table.c.made_at.desc(), table.c.id.desc())
        .limit(1)
    )
    with store.engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return None
    if aware(row.start) + timedelta(seconds=row.step_s * len(row.site_net_kw)) <= now:
        return None
    return {
        "site_id": site_id,
        "start": aware(row.start).isoformat(),
        "step_minutes": row.step_s / 60,
        "site_net_kw": row.site_net_kw,
        "vehicles": row.vehicles,
        "made_at": aware(row.made_at).isoformat(),
    }


def prune_plans(store: Store, before: datetime, batch: int = 5000) -> int:
    """Delete the plans made before ``before`` (``lightson serve --keep-plans-days``), in
    batches of ``batch`` rows so that no one transaction holds the database long (a plan is
    about 4 KB; a season of ``ma-2026`` keeps some 1 GB). Returns how many went. SQLite does
    not shrink its file by itself: ``VACUUM`` gives the space back."""
    plans = db.plans
    gone = 0
    while True:
        with store.engine.begin() as connection:
            ids = list(
                connection.scalars(
                    select(plans.c.id).where(plans.c.made_at < before.astimezone(UTC)).limit(batch)
                )
            )
            if not ids:
                return gone
            connection.execute(delete(plans).where(plans.c.id.in_(ids)))
        gone += len(ids)
