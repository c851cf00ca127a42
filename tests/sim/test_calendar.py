"""The ConnectedSolutions season chosen from real Boston-zone load."""

from __future__ import annotations

from datetime import date, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from lightson.datasets.grid import read_zone_load
from lightson.sim.calendar import connected_solutions_events

NY = ZoneInfo("America/New_York")
PROGRAMS = {
    "daily": "cs-ci-daily",
    "residential": "cs-residential-battery",
    "targeted": "cs-ci-targeted",
}


@pytest.fixture(scope="module")
def events():  # type: ignore[no-untyped-def]
    return connected_solutions_events(read_zone_load(), 2026, 2024, NY, PROGRAMS)


def test_the_zone_load_is_the_cleaned_eia_series() -> None:
    load = read_zone_load()
    assert len(load) == 43_848
    assert load.min() == 1666 and load.max() == 5229  # PROVENANCE.md §3


def test_events_follow_the_program_rules(events) -> None:  # type: ignore[no-untyped-def]
    off = holidays.country_holidays("US", subdiv="MA", years=2026)
    daily = [e for e in events if e.program_id == "cs-ci-daily"]
    assert len(daily) == 45
    assert len([e for e in events if e.program_id == "cs-residential-battery"]) == 45
    assert len([e for e in events if e.program_id == "cs-ci-targeted"]) == 5
    for e in events:
        local = e.start.astimezone(NY)
        assert date(2026, 6, 1) <= local.date() <= date(2026, 9, 30)
        assert local.weekday() < 5 and local.date() not in off
        assert local.hour >= 15 and (e.end.astimezone(NY).hour <= 20)
        assert e.end - e.start == timedelta(hours=3)
    for e in daily:
        assert e.announced_at == e.start.replace(hour=16, minute=0) - timedelta(days=1)


def test_the_top_event_day_is_the_highest_load_weekday_of_the_reference_summer(events) -> None:  # type: ignore[no-untyped-def]
    local = read_zone_load().tz_convert(NY)
    summer = local[(local.index.month >= 6) & (local.index.month <= 9) & (local.index.year == 2024)]
    daily_peak = summer.groupby(summer.index.date).max()
    weekdays = daily_peak[
        [
            d.weekday() < 5 and d not in holidays.US(subdiv="MA", years=2024)
            for d in daily_peak.index
        ]
    ]
    top_2024 = weekdays.idxmax()
    targeted = [e for e in events if e.program_id == "cs-ci-targeted"]
    # Weeks are aligned (104 weeks = 728 days), so the weekday is kept.
    assert top_2024 + timedelta(days=728) in {e.start.astimezone(NY).date() for e in targeted}
    assert all(e.announced_at == e.start - timedelta(hours=24) for e in targeted)


def test_each_window_covers_the_days_highest_three_hours_in_15_to_20(events) -> None:  # type: ignore[no-untyped-def]
    local = read_zone_load().tz_convert(NY)
    event = next(e for e in events if e.program_id == "cs-ci-daily")
    reference = event.start.astimezone(NY).date() - timedelta(days=728)
    hours = local[local.index.date == reference]
    by_hour = dict(zip(hours.index.hour, hours.to_numpy(), strict=True))
    best = max(range(15, 18), key=lambda h: by_hour[h] + by_hour[h + 1] + by_hour[h + 2])
    assert event.start.astimezone(NY).time() == time(best)
