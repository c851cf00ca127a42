"""Grid outages: a site is islanded behind its transfer switch from ``start`` to ``end``, and
stays so for the enter-service delay after the grid returns (IEEE 1547: the inverter waits,
300 s by default, before it re-synchronizes and the site runs parallel again)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

DEFAULT_ENTER_SERVICE_DELAY = timedelta(seconds=300)


@dataclass(frozen=True)
class Outage:
    """``released_vehicles``: vehicles whose next-trip reserve the operator has released for
    this outage (a bus may then give its route energy to the building)."""

    outage_id: str
    site_ids: frozenset[str]
    start: datetime
    end: datetime
    enter_service_delay: timedelta = DEFAULT_ENTER_SERVICE_DELAY
    released_vehicles: frozenset[str] = field(default_factory=frozenset)

    def covers(self, site_id: str, instant: datetime) -> bool:
        """The grid is down at the site."""
        return site_id in self.site_ids and self.start <= instant < self.end

    def islanded(self, site_id: str, instant: datetime) -> bool:
        """The site runs non-parallel: the grid is down, or back for less than the
        enter-service delay."""
        return site_id in self.site_ids and self.start <= instant < self.end + (
            self.enter_service_delay
        )
