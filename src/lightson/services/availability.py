"""Each vehicle's availability learned from the sessions its charger recorded
(:mod:`lightson.forecast.availability`), for the live loop: where a vehicle has at least
``min_sessions`` finished sessions in the last ``lookback``, its learned weekday/weekend trips
replace the program file's schedule; otherwise the schedule holds. The owner's stated
departure (``services.departures``) still moves the day's trip, learned or scheduled.

A session is a transaction at the vehicle's charger (the program file assigns each vehicle
one): plugged in when it started, left when it ended, and its energy the net rise of the
charger's registers over it (imported less exported: what a V2X session gave back is not
what the trip used). Sessions still open, or closed by the CSMS because the station was lost
(rebooted, offline: the end is not when the EV left), are not counted; a charger that sends
no register gives 0 kWh for its sessions (the trip's need then rests on the departure floor).

The patterns are learned once a local day per site (``refresh``, which reads the database:
call it off the event loop), and read from memory in between (``trips``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select

from lightson.domain.assets import Site, Trip
from lightson.forecast.availability import (
    DEFAULT_MIN_SESSIONS,
    LOOKBACK,
    NEED_QUANTILE,
    Availability,
    RecordedSession,
    learn_availability,
    learned_trips,
)
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware
from lightson.store.transactions import CSMS_BOOT, CSMS_OFFLINE, closed_by_csms, ended_at

LOGGER = logging.getLogger("lightson.availability")


def recorded_sessions(
    store: Store, station_id: str, since: datetime, until: datetime
) -> list[RecordedSession]:
    """The finished sessions at a charger that started in [``since``, ``until``). A session
    the CSMS closed because the station was lost (rebooted, offline) is left out: its end is
    not when the EV left (a closing on the connector reported ``Available`` is: unplugged)."""
    events, samples = db.transaction_events, db.meter_samples
    ended = ended_at()
    query = (
        select(
            events.c.transaction_id,
            func.min(events.c.at).label("started"),
            ended.label("ended"),
            closed_by_csms().label("by_csms"),
            func.sum(
                case((events.c.trigger_reason.in_((CSMS_BOOT, CSMS_OFFLINE)), 1), else_=0)
            ).label("lost"),
        )
        .where(events.c.station_id == station_id)
        .group_by(events.c.transaction_id)
        .having(
            func.min(events.c.at) >= since.astimezone(UTC),
            func.min(events.c.at) < until.astimezone(UTC),
        )
    )
    registers = (
        select(
            samples.c.transaction_id,
            func.max(samples.c.energy_imported_kwh) - func.min(samples.c.energy_imported_kwh),
            func.max(samples.c.energy_exported_kwh) - func.min(samples.c.energy_exported_kwh),
        )
        .where(
            samples.c.station_id == station_id,
            samples.c.transaction_id.is_not(None),
            samples.c.at >= since.astimezone(UTC),  # one partition a month on PostgreSQL
        )
        .group_by(samples.c.transaction_id)
    )
    with store.engine.connect() as connection:
        rows = [
            r
            for r in connection.execute(query)
            if r.ended is not None and not (r.by_csms and r.lost)
        ]
        energy = {t: (i, e) for t, i, e in connection.execute(registers)}
    found = []
    for row in rows:
        started, left = aware(row.started), aware(row.ended)
        if left < started:
            continue
        imported, exported = energy.get(row.transaction_id, (None, None))
        energy_kwh = (imported or 0.0) - (exported or 0.0)
        found.append(RecordedSession(started, left, max(energy_kwh, 0.0)))
    return sorted(found, key=lambda s: s.plugged_in)


@dataclass
class LearnedAvailability:
    """The learned trips of each site's vehicles, refreshed once a local day."""

    store: Store
    tz: ZoneInfo
    min_sessions: int = DEFAULT_MIN_SESSIONS
    lookback: timedelta = LOOKBACK
    quantile: float = NEED_QUANTILE
    _learned: dict[str, tuple[date, dict[str, Availability]]] = field(default_factory=dict)

    def refresh(self, site: Site, now: datetime) -> dict[str, Availability]:
        """Learn the site's vehicles' patterns if not yet today (reads the database)."""
        today = now.astimezone(self.tz).date()
        cached = self._learned.get(site.site_id)
        if cached is not None and cached[0] == today:
            return cached[1]
        learned = {}
        for vehicle in site.vehicles:
            recorded = recorded_sessions(self.store, vehicle.evse_id, now - self.lookback, now)
            found = learn_availability(
                recorded, self.tz, min_sessions=self.min_sessions, observed_until=now
            )
            if found is not None:
                learned[vehicle.vehicle_id] = found
        before = set(cached[1]) if cached is not None else set()
        for vehicle_id in sorted(set(learned) ^ before):
            LOGGER.info(
                "%s at %s: planned on %s",
                vehicle_id,
                site.site_id,
                "its learned sessions" if vehicle_id in learned else "the program's schedule",
            )
        self._learned[site.site_id] = (today, learned)
        return learned

    def learned(self, site_id: str) -> dict[str, Availability]:
        """What the last ``refresh`` of the site learned (no database read)."""
        cached = self._learned.get(site_id)
        return {} if cached is None else cached[1]

    def trips(self, site: Site) -> dict[str, tuple[Trip, ...]]:
        """Each vehicle's trips: learned where it has enough sessions, else the program
        file's schedule (no database read)."""
        learned = self.learned(site.site_id)
        return {
            v.vehicle_id: (
                learned_trips(learned[v.vehicle_id], self.quantile)
                if v.vehicle_id in learned
                else v.trips
            )
            for v in site.vehicles
        }
