"""Grid outages: a site is islanded behind its transfer switch from ``start`` to ``end``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Outage:
    outage_id: str
    site_ids: frozenset[str]
    start: datetime
    end: datetime

    def covers(self, site_id: str, instant: datetime) -> bool:
        return site_id in self.site_ids and self.start <= instant < self.end
