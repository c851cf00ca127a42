"""Demand-response programs and events (ConnectedSolutions and the like).

ConnectedSolutions pays ``rate_usd_per_kw_season`` × the season-average kW delivered
over all events (a missed event counts 0 kW). One kWh delivered in an event is
therefore worth ``rate / (expected_events × expected_event_hours)`` in expectation:
that is ``value_usd_per_kwh``, the price the optimizer sees inside event windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class DRProgram:
    program_id: str
    name: str
    rate_usd_per_kw_season: float
    expected_events: int
    expected_event_hours: float
    source: str = ""

    @property
    def value_usd_per_kwh(self) -> float:
        """Expected payment per kWh of net discharge delivered inside an event."""
        return self.rate_usd_per_kw_season / (self.expected_events * self.expected_event_hours)


@dataclass(frozen=True)
class DREvent:
    """An event of ``program_id`` over ``[start, end)`` (timezone-aware), announced at
    ``announced_at`` (``None``: known from the start, as in a one-shot plan)."""

    event_id: str
    program_id: str
    start: datetime
    end: datetime
    announced_at: datetime | None = None

    def known_at(self, instant: datetime) -> bool:
        return self.announced_at is None or self.announced_at <= instant
