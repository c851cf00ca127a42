"""Demand-response program rules, as read from the data files in ``data/dr-programs``.

A program has one or more seasons; each season has its own event window, event limits and
rate. Nothing here is specific to one season's numbers: a new season's rules are a new file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from lightson.domain.demand_response import DRProgram

MASSACHUSETTS = ZoneInfo("America/New_York")


@dataclass(frozen=True)
class SeasonRules:
    """``first_day``/``last_day`` as (month, day); a season may wrap the new year (Dec–Mar)."""

    name: str
    first_day: tuple[int, int]
    last_day: tuple[int, int]
    window_start: time
    window_end: time
    holidays_excluded: bool
    max_events: int
    max_event_hours: float
    rate_usd_per_kw: float
    expected_events: int
    expected_event_hours: float
    weekend_bonus_usd_per_kw: float = 0.0

    def contains(self, day: date) -> bool:
        key = (day.month, day.day)
        if self.first_day <= self.last_day:
            return self.first_day <= key <= self.last_day
        return key >= self.first_day or key <= self.last_day

    def days(self, season_year: int) -> tuple[date, date]:
        """The season's first and last day (local) in the season year named."""
        last_year = season_year + 1 if self.first_day > self.last_day else season_year
        return date(season_year, *self.first_day), date(last_year, *self.last_day)

    def season_year(self, day: date) -> int:
        """The year a season is named by: the year it starts in (winter 2026 = Dec 2026–Mar
        2027)."""
        wraps = self.first_day > self.last_day
        return day.year - 1 if wraps and (day.month, day.day) <= self.last_day else day.year


@dataclass(frozen=True)
class ProgramRules:
    program_id: str
    name: str
    customer_class: str
    sponsors: tuple[str, ...]
    source: str
    notice_hours: float
    performance: str
    cap_to_load_without_export: bool
    seasons: tuple[SeasonRules, ...]
    timezone: ZoneInfo = field(default_factory=lambda: MASSACHUSETTS)  # windows: local time

    def season_at(self, instant: datetime) -> SeasonRules | None:
        day = instant.astimezone(self.timezone).date() if instant.tzinfo else instant.date()
        for season in self.seasons:
            if season.contains(day):
                return season
        return None

    def as_dr_program(self, season_name: str | None = None) -> DRProgram:
        """The optimizer's expectation model for one season (the first by default):
        ``rate / (expected events × expected hours)`` per kWh delivered in an event."""
        season = self.seasons[0]
        if season_name is not None:
            season = next(s for s in self.seasons if s.name == season_name)
        return DRProgram(
            self.program_id,
            self.name,
            season.rate_usd_per_kw,
            season.expected_events,
            season.expected_event_hours,
            source=self.source,
        )
