"""A settlement over part of a season says it is extrapolated, and gives the settled events'
own share beside the season projection (hand-computed)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from lightson.config.dr_rules import load_dr_rules
from lightson.programs import CalledEvent, EnrolledSite, Metered, settle
from lightson.programs.settlement import covers_season, extrapolation_factor

EASTERN = ZoneInfo("America/New_York")
RESIDENTIAL = load_dr_rules("cs-residential-battery")  # 275 $/kW, 45 expected events


def _events(count: int) -> list[CalledEvent]:
    first = datetime(2026, 7, 14, 16, tzinfo=EASTERN)
    return [
        CalledEvent(f"e{i}", "cs-residential-battery", first + timedelta(days=i),
                    first + timedelta(days=i, hours=3))
        for i in range(count)
    ]  # fmt: skip


def test_the_factor_is_season_events_over_settled_events() -> None:
    assert extrapolation_factor(45, 3) == pytest.approx(15.0)
    assert extrapolation_factor(45, 45) == 1.0
    assert extrapolation_factor(45, 50) == 1.0  # more called than expected: no scaling up
    assert extrapolation_factor(45, 0) == 1.0


def test_three_events_of_a_week_are_a_projection_of_45() -> None:
    events = _events(3)
    # 3, 0 and 6 kWh over 3 h: 1, 0 and 2 kW, average 1 kW; 275 $ for the season.
    metered = {("h", "e0"): Metered(3.0, 9.0), ("h", "e2"): Metered(6.0, 9.0)}
    week = (datetime(2026, 7, 13, tzinfo=EASTERN), datetime(2026, 7, 20, tzinfo=EASTERN))
    (line,), _ = settle(
        RESIDENTIAL, "summer", 2026, events, [EnrolledSite("h", True)], metered, week
    )
    assert line.extrapolated
    assert line.season_events == 45
    assert line.total_usd == pytest.approx(275.0)
    # These 3 events' own share: 275 × 3 / 45 = 18.33 $ = 275 × (1 + 0 + 2) kW / 45.
    assert line.events_payment_usd == pytest.approx(275.0 * 3 / 45)
    assert line.events_payment_usd * extrapolation_factor(45, 3) == pytest.approx(line.total_usd)


def test_a_season_covered_whole_is_not_extrapolated() -> None:
    events = _events(3)
    metered = {(("h", e.event_id)): Metered(3.0, 9.0) for e in events}
    whole = (datetime(2026, 5, 1, tzinfo=EASTERN), datetime(2026, 10, 1, tzinfo=EASTERN))
    (line,), _ = settle(
        RESIDENTIAL, "summer", 2026, events, [EnrolledSite("h", True)], metered, whole
    )
    assert not line.extrapolated
    assert line.season_events == 3
    assert line.events_payment_usd == pytest.approx(line.total_usd) == pytest.approx(275.0)


def test_the_season_ends_at_midnight_after_its_last_day() -> None:
    summer = RESIDENTIAL.seasons[0]  # Jun 1 - Sep 30
    assert summer.days(2026) == (datetime(2026, 6, 1).date(), datetime(2026, 9, 30).date())
    last = datetime(2026, 10, 1, tzinfo=EASTERN)
    assert covers_season(summer, 2026, EASTERN, (None, last))
    assert not covers_season(summer, 2026, EASTERN, (None, last - timedelta(seconds=1)))
    late = datetime(2026, 6, 1, 0, 15, tzinfo=EASTERN)
    assert not covers_season(summer, 2026, EASTERN, (late, last))
    assert covers_season(summer, 2026, EASTERN, None)
