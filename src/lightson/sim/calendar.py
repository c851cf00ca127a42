"""A ConnectedSolutions season calendar chosen by the program rules from real zone load.

No public list of past event days exists (PROVENANCE.md §6), so the calendar is made the
way the program administrators call events: on the non-holiday weekdays of the season
with the highest load in the NEMA/Boston zone. Load comes from a reference year (2020-2024
in the vendored EIA data), aligned to the season year by whole weeks so weekdays match.

- Daily dispatch (C&I) and the residential battery offer: the ``n_daily`` highest days,
  ``event_hours`` long, placed where the day's load is highest inside the program window
  (15:00-20:00), announced the day before at 16:00.
- Targeted dispatch: the ``n_targeted`` highest of those days, over the same hours,
  announced 24 hours ahead.

The result is plain program-file events; a program manager can replace them with the real
calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pandas as pd

from lightson.domain.demand_response import DREvent


@dataclass(frozen=True)
class CalendarRules:
    season_start: tuple[int, int] = (6, 1)
    season_end: tuple[int, int] = (9, 30)
    window_start_hour: int = 15
    window_end_hour: int = 20
    event_hours: int = 3
    n_daily: int = 45
    n_targeted: int = 5
    announce_local: time = time(16, 0)


def connected_solutions_events(
    zone_load_mw: pd.Series,
    season_year: int,
    reference_year: int,
    tz: ZoneInfo,
    programs: dict[str, str],
    rules: CalendarRules | None = None,
) -> list[DREvent]:
    """Events of ``season_year`` for ``programs`` = {"daily": id, "residential": id,
    "targeted": id} (any may be left out), from ``zone_load_mw`` (UTC hour starts)."""
    rules = rules or CalendarRules()
    season_first = date(season_year, *rules.season_start)
    shift = timedelta(
        weeks=round((season_first - date(reference_year, *rules.season_start)).days / 7)
    )
    days = _ranked_days(zone_load_mw, season_year, shift, tz, rules)
    events = []
    for rank, (day, start_hour) in enumerate(days[: rules.n_daily]):
        start = datetime.combine(day, time(start_hour), tzinfo=tz)
        end = start + timedelta(hours=rules.event_hours)
        day_ahead = datetime.combine(day - timedelta(days=1), rules.announce_local, tzinfo=tz)
        for key in ("daily", "residential"):
            if key in programs:
                events.append(
                    DREvent(
                        f"{programs[key]}-{day.isoformat()}", programs[key], start, end, day_ahead
                    )
                )
        if "targeted" in programs and rank < rules.n_targeted:
            events.append(
                DREvent(
                    f"{programs['targeted']}-{day.isoformat()}",
                    programs["targeted"],
                    start,
                    end,
                    start - timedelta(hours=24),
                )
            )
    return sorted(events, key=lambda e: (e.start, e.program_id))


def _ranked_days(
    zone_load_mw: pd.Series, season_year: int, shift: timedelta, tz: ZoneInfo, rules: CalendarRules
) -> list[tuple[date, int]]:
    """Season weekdays (not holidays) by the reference day's peak load, highest first, each
    with the start hour of its highest-load window."""
    local = zone_load_mw.tz_convert(tz)
    off = holidays.country_holidays("US", subdiv="MA", years=season_year)
    day = date(season_year, *rules.season_start)
    scored = []
    while day <= date(season_year, *rules.season_end):
        if day.weekday() < 5 and day not in off:
            reference = day - shift
            hours = local[local.index.date == reference]
            if len(hours):
                scored.append((float(hours.max()), day, _best_start_hour(hours, rules)))
        day += timedelta(days=1)
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [(d, hour) for _, d, hour in scored]


def _best_start_hour(hours: pd.Series, rules: CalendarRules) -> int:
    by_hour = {int(h): float(v) for h, v in zip(hours.index.hour, hours.to_numpy(), strict=True)}
    starts = range(rules.window_start_hour, rules.window_end_hour - rules.event_hours + 1)
    return max(
        starts, key=lambda s: (sum(by_hour.get(s + i, 0.0) for i in range(rules.event_hours)), -s)
    )
