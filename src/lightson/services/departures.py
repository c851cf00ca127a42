"""An owner's "next departure" for a vehicle: when it leaves and, if they say, with what state
of charge. Kept in the ``departures`` table (the newest row per vehicle holds; clearing adds
a row with no time, so the history stays); the live loop plans for it until it has passed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from lightson.domain.assets import Site
from lightson.domain.errors import ConfigError
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware

FURTHEST = timedelta(days=7)  # a departure further ahead is a typo more often than a plan


@dataclass(frozen=True)
class Departure:
    vehicle_id: str
    depart_at: datetime
    target_soc: float | None
    set_at: datetime
    set_by: str


def set_departure(
    store: Store,
    site: Site,
    vehicle_id: str,
    depart_at: datetime | None,
    target_soc: float | None,
    who: str,
    now: datetime,
) -> Departure | None:
    """Store the owner's next departure (``depart_at`` ``None``: clear it); refused with the
    field named when it is past, too far ahead, or asks for a charge the battery cannot hold."""
    vehicle = next((v for v in site.vehicles if v.vehicle_id == vehicle_id), None)
    if vehicle is None:
        raise ConfigError.at("vehicle_id", f"no vehicle '{vehicle_id}' at {site.site_id}")
    if depart_at is not None:
        if depart_at.tzinfo is None:
            raise ConfigError.at("departure", "must carry a time zone")
        if depart_at <= now:
            raise ConfigError.at("departure", "is past")
        if depart_at > now + FURTHEST:
            raise ConfigError.at("departure", "is more than 7 days ahead")
    if target_soc is not None and not vehicle.soc_min <= target_soc <= vehicle.soc_max:
        raise ConfigError.at(
            "target_soc",
            f"must be within the battery's window {vehicle.soc_min:g}-{vehicle.soc_max:g}",
        )
    row = {
        "site_id": site.site_id,
        "vehicle_id": vehicle_id,
        "depart_at": depart_at.astimezone(UTC) if depart_at is not None else None,
        "target_soc": target_soc if depart_at is not None else None,
        "set_at": now,
        "set_by": who,
    }
    store.write([(db.departures, row)]).result(30)
    if depart_at is None:
        return None
    return Departure(vehicle_id, depart_at, target_soc, now, who)


def next_departures(
    store: Store, site_id: str, vehicle_ids: Iterable[str], now: datetime
) -> dict[str, Departure]:
    """The departures still ahead at ``site_id``, by vehicle (cleared and passed ones are
    not). Vehicle ids are unique within a site only."""
    ids = sorted(set(vehicle_ids))
    table = db.departures
    newest = (
        select(func.max(table.c.id).label("id"))
        .where(table.c.site_id == site_id, table.c.vehicle_id.in_(ids))
        .group_by(table.c.vehicle_id)
        .subquery()
    )
    with store.engine.connect() as connection:
        rows = connection.execute(select(table).join(newest, table.c.id == newest.c.id)).all()
    found = {}
    for row in rows:
        if row.depart_at is None or aware(row.depart_at) <= now:
            continue
        found[row.vehicle_id] = Departure(
            row.vehicle_id, aware(row.depart_at), row.target_soc, aware(row.set_at), row.set_by
        )
    return found
