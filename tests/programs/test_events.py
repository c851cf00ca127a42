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
