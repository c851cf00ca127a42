"""Each vehicle's availability learned from the sessions its charger recorded
(:mod:`lightson.forecast.availability`), for the live loop: where a vehicle has at least
``min_sessions`` finished sessions in the last ``lookback``, its learned weekday/weekend trips
replace the program file's schedule; otherwise the schedule holds. The owner's stated
departure (``services.departures``) still moves the day's trip, learned or scheduled.

A session is a transaction at the vehicle's charger (the program file assigns each vehicle
one): plugged in when it started, left when it ended, and its energy the net rise of the
charger's registers over it (imported less exported: what a V2X session gave back is not
what the trip used). Sessions still open are not counted; a charger that sends no register
gives 0 kWh for its sessions (the trip's need then rests on the departure floor).

The patterns are learned once a local day per site (``refresh``, which reads the database:
call it off the event loop), and read from memory in between (``trips``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from lightson.domain.assets import Site, Trip
from lightson.forecast.availability import (
    DEFAULT_MIN_SESSIONS,
    Availability,
    RecordedSession,
    learn_availability,
    learned_trips,
)
from lightson.services.sessions import sessions as stored_sessions
from lightson.store import Store

LOGGER = logging.getLogger("lightson.availability")
LOOKBACK = timedelta(days=56)  # eight weeks: recent habits, and a season's change shows
NEED_QUANTILE = 0.9  # plan for nine trips in ten, not the average one


def recorded_sessions(
    store: Store, station_id: str, since: datetime, until: datetime
) -> list[RecordedSession]:
    """The finished sessions at a charger that started in [``since``, ``until``)."""
    found = []
    for row in stored_sessions(store, [station_id], since):
        if row["ended"] is None:
            continue
        started, ended = (
            datetime.fromisoformat(row["started"]),
            datetime.fromisoformat(row["ended"]),
        )
        if not since <= started < until or ended < started:
            continue
        energy_kwh = (row["energy_in_kwh"] or 0.0) - (row["energy_out_kwh"] or 0.0)
        found.append(RecordedSession(started, ended, max(energy_kwh, 0.0)))
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
            found = learn_availability(recorded, self.tz, min_sessions=self.min_sessions)
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
