"""The event model: states, refusals with reasons, idempotent ids, cancel and opt-out."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from lightson.config.dr_rules import bundled_dr_rules
from lightson.domain.errors import ConfigError
from lightson.programs.events import EventBook, EventState, ProgramEvent

EASTERN = ZoneInfo("America/New_York")
DAY = datetime(2026, 7, 15, tzinfo=EASTERN)


def event(
    event_id: str = "cs-1",
    start_h: float = 15,
    hours: float = 3,
    program_id: str = "cs-ci-daily",
    **extra: object,
) -> ProgramEvent:
    start = DAY + timedelta(hours=start_h)
    return ProgramEvent(
        event_id,
        program_id,
        start,
        start + timedelta(hours=hours),
        notice_at=DAY - timedelta(hours=8),
        **extra,
    )  # type: ignore[arg-type]


@pytest.fixture
def book() -> EventBook:
    return EventBook(bundled_dr_rules().values())


def test_states_follow_the_clock() -> None:
    e = event()
    assert e.state(DAY) is EventState.ANNOUNCED
    assert e.state(DAY + timedelta(hours=16)) is EventState.ACTIVE
    assert e.state(DAY + timedelta(hours=18)) is EventState.COMPLETED


def test_the_same_event_posted_twice_is_one_event(book: EventBook) -> None:
    first = book.add(event())
    assert book.add(event()) is first
    assert len(book.events) == 1
    with pytest.raises(ConfigError, match="event_id: 'cs-1' is taken by another event"):
        book.add(event(start_h=16, hours=2))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (event(hours=4), "end: 4 h is longer than the 3 h the rules allow"),
        (event(start_h=13), "start: must lie within 15:00-20:00 local time"),
        (event(hours=-1), "end: must be after start"),
        (event(program_id="cs-nothing"), "program_id: unknown program 'cs-nothing'"),
        (
            ProgramEvent(
                "w",
                "cs-ci-daily",
                datetime(2026, 1, 5, 15, tzinfo=EASTERN),
                datetime(2026, 1, 5, 17, tzinfo=EASTERN),
                datetime(2026, 1, 4, 15, tzinfo=EASTERN),
            ),
            "start: outside every season",
        ),
        (
            ProgramEvent(
                "n",
                "cs-ci-daily",
                DAY + timedelta(hours=15),
                DAY + timedelta(hours=17),
                DAY + timedelta(hours=16),
            ),
            "notice_at: must not be after start",
        ),
    ],
)
def test_malformed_events_are_refused_with_the_field_named(
    book: EventBook, bad: ProgramEvent, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        book.add(bad)
    assert book.events == {}


def test_overlapping_events_of_one_program_are_refused_but_not_across_programs(
    book: EventBook,
) -> None:
    book.add(event("a", start_h=15, hours=3))
    with pytest.raises(ConfigError, match="start: overlaps event 'a'"):
        book.add(event("b", start_h=17, hours=2))
    book.add(event("c", start_h=17, hours=2, program_id="cs-ci-targeted"))
    book.cancel("a", DAY)
    book.add(event("b", start_h=17, hours=2))  # the cancelled one no longer blocks


def test_cancel_and_opt_out_change_who_plans_for_the_event(book: EventBook) -> None:
    book.add(event("a", sites=("school", "office")))
    assert [e.event_id for e in book.for_site("school", ["cs-ci-daily"])] == ["a"]
    assert book.for_site("home", ["cs-ci-daily"]) == []  # not called
    assert book.for_site("school", ["cs-residential-battery"]) == []  # not enrolled
    book.opt_out("a", "school", DAY)
    assert book.for_site("school", ["cs-ci-daily"]) == []
    assert [e.event_id for e in book.for_site("office", ["cs-ci-daily"])] == ["a"]
    with pytest.raises(ConfigError, match="has started"):
        book.opt_out("a", "office", DAY + timedelta(hours=16))
    cancelled = book.cancel("a", DAY + timedelta(hours=1))
    assert cancelled.state(DAY + timedelta(hours=2)) is EventState.CANCELLED
    assert book.for_site("office", ["cs-ci-daily"]) == []
    with pytest.raises(ConfigError, match="no event 'zz'"):
        book.cancel("zz", DAY)


def test_the_rules_limits_on_count_notice_and_holidays_hold(book: EventBook) -> None:
    # Targeted Dispatch: at most 8 events a season, 24 h notice.
    for day in range(1, 9):
        start = datetime(2026, 7, day, 16, tzinfo=EASTERN)
        book.add(
            ProgramEvent(
                f"t{day}",
                "cs-ci-targeted",
                start,
                start + timedelta(hours=2),
                start - timedelta(hours=24),
            )
        )
    ninth = datetime(2026, 7, 20, 16, tzinfo=EASTERN)
    with pytest.raises(ConfigError, match="already has 8 events"):
        book.add(
            ProgramEvent(
                "t9", "cs-ci-targeted", ninth, ninth + timedelta(hours=2), ninth - timedelta(days=2)
            )
        )
    book.cancel("t1", datetime(2026, 6, 1, tzinfo=EASTERN))  # a cancelled one frees its place
    book.add(
        ProgramEvent(
            "t9", "cs-ci-targeted", ninth, ninth + timedelta(hours=2), ninth - timedelta(days=2)
        )
    )
    with pytest.raises(ConfigError, match="notice_at: 1 h before the start; the rules give 24 h"):
        book.add(
            ProgramEvent(
                "late",
                "cs-ci-targeted",
                ninth + timedelta(days=2),
                ninth + timedelta(days=2, hours=2),
                ninth + timedelta(days=2, hours=-1),
            )
        )
    # Residential events skip holidays: not on the Fourth of July.
    fourth = datetime(2026, 7, 4, 16, tzinfo=EASTERN)
    with pytest.raises(ConfigError, match="2026-07-04 is a holiday"):
        book.add(
            ProgramEvent(
                "july4",
                "cs-residential-battery",
                fourth,
                fourth + timedelta(hours=2),
                fourth - timedelta(days=1),
            )
        )


def test_a_modified_event_replaces_the_old_unless_refused(book: EventBook) -> None:
    book.add(event("a", start_h=15, hours=3))
    moved = book.replace(event("a", start_h=16, hours=2))
    assert moved.start == DAY + timedelta(hours=16) and len(book.events) == 1
    with pytest.raises(ConfigError, match="longer than"):
        book.replace(event("a", start_h=15, hours=5))
    assert book.events["a"] == moved  # the refused version changed nothing


def test_each_utility_calls_its_own_sites_so_limits_are_per_site(book: EventBook) -> None:
    # National Grid and Eversource call the same afternoon, each its own customers.
    book.add(event("ng", sites=("school",)))
    book.add(event("ev", sites=("office",)))
    with pytest.raises(ConfigError, match="start: overlaps event 'ng'"):
        book.add(event("again", start_h=16, sites=("school", "depot")))
    with pytest.raises(ConfigError, match="start: overlaps event 'ng'"):
        book.add(event("everyone", start_h=16))  # no list: every enrolled site, school too

    def targeted(event_id: str, day: int, sites: tuple[str, ...] = ()) -> ProgramEvent:
        start = datetime(2026, 8, day, 16, tzinfo=EASTERN)
        return ProgramEvent(
            event_id,
            "cs-ci-targeted",
            start,
            start + timedelta(hours=2),
            start - timedelta(days=2),
            sites,
        )

    for day in range(3, 11):  # 8 events call the school: the season's most
        book.add(targeted(f"school-{day}", day, ("school",)))
    with pytest.raises(ConfigError, match="already has 8 events"):
        book.add(targeted("school-9th", 11, ("school",)))
    with pytest.raises(ConfigError, match="already has 8 events"):
        book.add(targeted("all-9th", 11))  # it would call the school a ninth time
    book.add(targeted("office-1st", 11, ("office",)))  # the office was called none
