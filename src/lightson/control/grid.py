"""Whether a site runs parallel with the grid or islanded, from grid-loss signals.

Any source may report the grid lost or restored: the site meter, a charger (OCPP reports an
outage through its status and events), the HTTP API or an operator. The site goes islanded
(non-parallel behind its transfer switch) as soon as any source reports a loss. When the grid
is reported back, the site stays islanded for the enter-service delay (IEEE 1547: 300 s by
default) and only then re-synchronizes; a new loss during the delay starts over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from lightson.domain.outages import DEFAULT_ENTER_SERVICE_DELAY


class GridSignal(Enum):
    LOST = "lost"
    RESTORED = "restored"


@dataclass
class GridMonitor:
    """One site's grid state. ``report`` signals in time order; ``islanded(now)`` answers."""

    enter_service_delay: timedelta = DEFAULT_ENTER_SERVICE_DELAY
    lost_by: set[str] = field(default_factory=set)
    restored_at: datetime | None = None
    log: list[tuple[datetime, str, GridSignal]] = field(default_factory=list)

    def report(self, source: str, signal: GridSignal, at: datetime) -> None:
        self.log.append((at, source, signal))
        if signal is GridSignal.LOST:
            self.lost_by.add(source)
            self.restored_at = None
        elif source in self.lost_by:  # a "grid OK" from a source that saw no loss means nothing
            self.lost_by.discard(source)
            if not self.lost_by:
                self.restored_at = at

    def islanded(self, now: datetime) -> bool:
        if self.lost_by:
            return True
        if self.restored_at is None:
            return False
        return now < self.restored_at + self.enter_service_delay

    def resync_at(self) -> datetime | None:
        """When the site will run parallel again (None: not waiting to re-sync)."""
        if self.lost_by or self.restored_at is None:
            return None
        return self.restored_at + self.enter_service_delay
