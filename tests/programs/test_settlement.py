"""Hand-computed settlements (ConnectedSolutions storage rule)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightson.config.dr_rules import bundled_dr_rules, load_dr_rules, parse_dr_rules
from lightson.domain.catalog import DR_PROGRAMS
from lightson.domain.errors import ConfigError, UnknownNameError
from lightson.programs import CalledEvent, EnrolledSite, Metered, event_kw, settle

EASTERN = ZoneInfo("America/New_York")
RESIDENTIAL = load_dr_rules("cs-residential-battery")
TARGETED = load_dr_rules("cs-ci-targeted")


def _season_events(
    program_id: str, count: int, first: datetime, hours: float = 3.0
) -> list[CalledEvent]:
    return [
        CalledEvent(
            f"e{i:02d}",
            program_id,
            first + timedelta(days=i),
            first + timedelta(days=i, hours=hours),
        )
        for i in range(count)
    ]


def test_two_kw_in_every_event_of_a_60_event_season_earns_550_usd() -> None:
    events = _season_events("cs-residential-battery", 60, datetime(2026, 6, 1, 16, tzinfo=EASTERN))
    home = EnrolledSite("home-1", export_permitted=True)
    metered = {("home-1", e.event_id): Metered(6.0, 4.0) for e in events}  # 6 kWh over 3 h
    (line,), event_lines = settle(RESIDENTIAL, "summer", 2026, events, [home], metered)
    assert line.events_called == 60 and line.events_with_delivery == 60
    assert line.season_average_kw == pytest.approx(2.0)
    assert line.payment_usd == pytest.approx(550.0)  # 275 $/kW × 2 kW
    assert line.total_usd == line.participant_usd == pytest.approx(550.0)
    assert line.season == "summer 2026"
    assert len(event_lines) == 60 and all(e.credited_kw == 2.0 for e in event_lines)


def test_a_missed_event_counts_zero_in_the_season_average() -> None:
    events = _season_events("cs-residential-battery", 60, datetime(2026, 6, 1, 16, tzinfo=EASTERN))
    metered = {("home-1", e.event_id): Metered(6.0, 4.0) for e in events[1:]}  # missed e00
    (line,), _ = settle(
        RESIDENTIAL,
        "summer",
        2026,
        events,
        [EnrolledSite("home-1", export_permitted=True)],
        metered,
    )
    assert line.season_average_kw == pytest.approx(2.0 * 59 / 60)
    assert line.payment_usd == pytest.approx(275 * 2.0 * 59 / 60)  # 540.83 $
    assert line.events_with_delivery == 59


def test_a_home_without_export_permission_is_capped_by_its_load() -> None:
    # 9 kWh discharged over a 3 h event, but the house used only 4.5 kWh: 1.5 kW credited.
    assert event_kw(Metered(9.0, 4.5), 3.0, export_permitted=False, cap_to_load=True) == 1.5
    assert event_kw(Metered(9.0, 4.5), 3.0, export_permitted=True, cap_to_load=True) == 3.0
    # Net charging during an event is a miss (0 kW), never negative.
    assert event_kw(Metered(-2.0, 4.5), 3.0, export_permitted=True, cap_to_load=True) == 0.0
    with pytest.raises(ValueError, match="positive time"):
        event_kw(Metered(1.0, 1.0), 0.0, export_permitted=True, cap_to_load=True)


def test_weekend_bonus_and_aggregator_split() -> None:
    # Targeted Dispatch: 4 events, two on a weekend (Sat 2026-07-18, Sun 2026-07-19).
    days = [datetime(2026, 7, d, 16, tzinfo=EASTERN) for d in (16, 17, 18, 19)]
    events = [
        CalledEvent(f"t{i}", "cs-ci-targeted", d, d + timedelta(hours=2))
        for i, d in enumerate(days)
    ]
    delivered_kwh = {"t0": 100.0, "t1": 60.0, "t2": 120.0, "t3": 0.0}  # 50, 30, 60, 0 kW
    metered = {("school", k): Metered(v, 500.0) for k, v in delivered_kwh.items()}
    site = EnrolledSite("school", export_permitted=True, participant_share=0.8)
    (line,), _ = settle(TARGETED, "summer", 2026, events, [site], metered)
    assert line.season_average_kw == pytest.approx((50 + 30 + 60 + 0) / 4)  # 35 kW
    assert line.payment_usd == pytest.approx(45 * 35)  # 1575 $
    assert line.weekend_events == 2
    assert line.weekend_average_kw == pytest.approx(30.0)  # (60 + 0) / 2
    assert line.weekend_bonus_usd == pytest.approx(300.0)  # 10 $/kW × 30 kW
    assert line.participant_usd == pytest.approx(0.8 * 1875)
    assert line.aggregator_usd == pytest.approx(0.2 * 1875)


def test_only_the_seasons_events_of_the_program_count() -> None:
    winter_rules = load_dr_rules("cs-residential-battery-2019")
    dec = datetime(2026, 12, 10, 15, tzinfo=EASTERN)
    jan = datetime(2027, 1, 12, 15, tzinfo=EASTERN)
    events = [
        CalledEvent("w1", "cs-residential-battery-2019", dec, dec + timedelta(hours=2)),
        CalledEvent("w2", "cs-residential-battery-2019", jan, jan + timedelta(hours=2)),
        CalledEvent(
            "s1",
            "cs-residential-battery-2019",
            datetime(2026, 7, 1, 15, tzinfo=EASTERN),
            datetime(2026, 7, 1, 17, tzinfo=EASTERN),
        ),
        CalledEvent("x", "another-program", dec, dec + timedelta(hours=2)),
    ]
    metered = {("h", e): Metered(4.0, 4.0) for e in ("w1", "w2", "s1", "x")}
    (line,), _ = settle(winter_rules, "winter", 2026, events, [EnrolledSite("h", True)], metered)
    assert line.events_called == 2  # Dec 2026 and Jan 2027 are winter 2026
    assert line.payment_usd == pytest.approx(50 * 2.0)
    with pytest.raises(ValueError, match="no season 'autumn'"):
        settle(winter_rules, "autumn", 2026, events, [], metered)


@given(
    kw=st.lists(st.floats(0, 60, allow_nan=False), min_size=1, max_size=60),
    share=st.floats(0, 1),
)
def test_payment_is_rate_times_average_and_splits_add_up(kw: list[float], share: float) -> None:
    first = datetime(2026, 6, 1, 16, tzinfo=EASTERN)
    events = _season_events("cs-ci-daily", len(kw), first, hours=2.0)
    metered = {("s", e.event_id): Metered(k * 2.0, 1e9) for e, k in zip(events, kw, strict=True)}
    (line,), _ = settle(
        load_dr_rules("cs-ci-daily"),
        "summer",
        2026,
        events,
        [EnrolledSite("s", False, share)],
        metered,
    )
    assert line.payment_usd == pytest.approx(200 * sum(kw) / len(kw))
    assert line.participant_usd + line.aggregator_usd == pytest.approx(line.total_usd)
    assert 0 <= line.season_average_kw <= max(kw) + 1e-9


# --- the rule files --------------------------------------------------------------------------


def test_every_bundled_rule_file_loads_and_agrees_with_the_catalog() -> None:
    rules = bundled_dr_rules()
    assert set(rules) == {
        "cs-residential-battery",
        "cs-ci-daily",
        "cs-ci-targeted",
        "cs-residential-battery-2019",
    }
    for program_id, dr in DR_PROGRAMS.items():
        season = rules[program_id].seasons[0]
        assert (dr.rate_usd_per_kw_season, dr.expected_events, dr.expected_event_hours) == (
            season.rate_usd_per_kw,
            season.expected_events,
            season.expected_event_hours,
        ), program_id
        assert rules[program_id].as_dr_program().value_usd_per_kwh == dr.value_usd_per_kwh
    assert all(r.source for r in rules.values())


def test_a_bad_rule_file_is_refused_by_field() -> None:
    text = RESIDENTIAL_TEXT.replace("rate_usd_per_kw: 275", "rate_usd_per_kw: -5").replace(
        'first_day: "06-01"', 'first_day: "6/1"'
    )
    with pytest.raises(ConfigError) as caught:
        parse_dr_rules(text, where="mine.yaml")
    message = str(caught.value)
    assert "mine.yaml:seasons[0].rate_usd_per_kw" in message
    assert "mine.yaml:seasons[0].first_day" in message
    with pytest.raises(UnknownNameError, match="known: cs-ci-daily"):
        load_dr_rules("cs-nothing")


RESIDENTIAL_TEXT = """
program_id: cs-residential-battery
name: x
customer_class: residential
source: test
notice_hours: 16
seasons:
  - name: summer
    first_day: "06-01"
    last_day: "09-30"
    window: ["15:00", "20:00"]
    max_events: 60
    max_event_hours: 3
    rate_usd_per_kw: 275
    expected_events: 45
    expected_event_hours: 3
"""


def test_targeted_events_count_only_for_the_sites_they_call_and_weekends_are_local() -> None:
    utc = ZoneInfo("UTC")
    # 2026-07-19 02:00 UTC is Saturday 22:00 in Boston: a weekend event (by local date).
    saturday_night = datetime(2026, 7, 19, 2, tzinfo=utc)
    events = [
        CalledEvent(
            "all",
            "cs-ci-targeted",
            datetime(2026, 7, 16, 19, tzinfo=utc),
            datetime(2026, 7, 16, 21, tzinfo=utc),
        ),
        CalledEvent(
            "only-b",
            "cs-ci-targeted",
            saturday_night,
            saturday_night + timedelta(hours=2),
            sites=("b",),
        ),
    ]
    metered = {
        ("a", "all"): Metered(40.0, 1e9),
        ("b", "all"): Metered(40.0, 1e9),
        ("b", "only-b"): Metered(80.0, 1e9),
    }
    a, b = settle(
        TARGETED,
        "summer",
        2026,
        events,
        [EnrolledSite("a", True), EnrolledSite("b", True)],
        metered,
    )[0]
    assert (a.events_called, a.season_average_kw) == (1, 20.0)  # not diluted by only-b
    assert (b.events_called, b.season_average_kw) == (2, 30.0)
    assert (b.weekend_events, b.weekend_average_kw) == (1, 40.0)


def test_an_impossible_season_day_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"seasons\[0\]\.last_day: 02-30 is not a day"):
        parse_dr_rules(RESIDENTIAL_TEXT.replace('last_day: "09-30"', 'last_day: "02-30"'), "x")
