"""One event model for every source (utility API, OpenADR, program operator).

An event belongs to a program, has a window and a notice time, names the enrolled sites it
calls (none named: every enrolled site), and moves through announced → active → completed,
or is cancelled. Site owners may opt out of one event. The :class:`EventBook` refuses what
the program's rules refuse, with the reason, and treats the same event id posted twice as one
event.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import Enum

from lightson.domain.demand_response import DREvent
from lightson.domain.errors import ConfigError
from lightson.programs.rules import ProgramRules


class EventState(Enum):
    ANNOUNCED = "announced"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class ProgramEvent:
    event_id: str
    program_id: str
    start: datetime
    end: datetime
    notice_at: datetime
    sites: tuple[str, ...] = ()  # empty: every enrolled site
    source: str = "operator"
    cancelled_at: datetime | None = None
    opt_outs: frozenset[str] = field(default_factory=frozenset)

    def state(self, now: datetime) -> EventState:
        if self.cancelled_at is not None and self.cancelled_at <= now:
            return EventState.CANCELLED
        if now < self.start:
            return EventState.ANNOUNCED
        if now < self.end:
            return EventState.ACTIVE
        return EventState.COMPLETED

    def calls(self, site_id: str) -> bool:
        """Whether the event asks this (enrolled) site to deliver."""
        if self.cancelled_at is not None or site_id in self.opt_outs:
            return False
        return not self.sites or site_id in self.sites

    def as_dr_event(self) -> DREvent:
        return DREvent(self.event_id, self.program_id, self.start, self.end, self.notice_at)

    def same_request(self, other: ProgramEvent) -> bool:
        """Posted twice with the same content (state changes aside)."""
        keys = ("event_id", "program_id", "start", "end", "notice_at", "sites")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


class EventBook:
    """The events of a program season, with the rules that bound them."""

    def __init__(self, rules: Iterable[ProgramRules] = (), events: Iterable[ProgramEvent] = ()):
        self.rules = {r.program_id: r for r in rules}
        self.events: dict[str, ProgramEvent] = {e.event_id: e for e in events}

    def add(self, event: ProgramEvent) -> ProgramEvent:
        """Accept an event, or raise :class:`ConfigError` naming the field and the reason.
        Posting an accepted event again returns it unchanged."""
        known = self.events.get(event.event_id)
        if known is not None:
            if known.same_request(event):
                return known
            raise ConfigError.at("event_id", f"'{event.event_id}' is taken by another event")
        self._check(event)
        self.events[event.event_id] = event
        return event

    def _check(self, event: ProgramEvent) -> None:
        for name in ("start", "end", "notice_at"):
            if getattr(event, name).tzinfo is None:
                raise ConfigError.at(name, "must carry a time zone")
        if not event.event_id.strip():
            raise ConfigError.at("event_id", "must not be empty")
        if event.end <= event.start:
            raise ConfigError.at("end", "must be after start")
        if event.notice_at > event.start:
            raise ConfigError.at("notice_at", "must not be after start")
        rules = self.rules.get(event.program_id)
        if self.rules and rules is None:
            raise ConfigError.at(
                "program_id",
                f"unknown program '{event.program_id}'; known: {', '.join(sorted(self.rules))}",
            )
        if rules is not None:
            _check_against_rules(event, rules)
            self._check_count(event, rules)
        for other in self.events.values():
            if (
                other.program_id == event.program_id
                and other.cancelled_at is None
                and _call_a_common_site(other, event)
                and other.start < event.end
                and event.start < other.end
            ):
                raise ConfigError.at(
                    "start", f"overlaps event '{other.event_id}' of the same program"
                )

    def _check_count(self, event: ProgramEvent, rules: ProgramRules) -> None:
        season = rules.season_at(event.start)
        assert season is not None  # checked against the rules already
        year = season.season_year(event.start.astimezone(rules.timezone).date())
        same_season = [
            e
            for e in self.events.values()
            if e.program_id == event.program_id
            and e.cancelled_at is None
            and rules.season_at(e.start) == season
            and season.season_year(e.start.astimezone(rules.timezone).date()) == year
        ]
        # The limit is per site: the most events any site this one calls was called to.
        to_all = sum(1 for e in same_season if not e.sites)
        listed: dict[str, int] = {}
        for e in same_season:
            for site_id in e.sites:
                listed[site_id] = listed.get(site_id, 0) + 1
        among = event.sites or tuple(listed)
        if to_all + max((listed.get(s, 0) for s in among), default=0) >= season.max_events:
            raise ConfigError.at(
                "start",
                f"the {season.name} {year} season already has {season.max_events} events,"
                " the most the rules allow",
            )

    def replace(self, event: ProgramEvent) -> ProgramEvent:
        """A modified event (same id, new content, e.g. an OpenADR modification): checked as
        new against every other event; the old version stays if the new one is refused."""
        old = self.get(event.event_id)
        if old.same_request(event):
            return old
        del self.events[event.event_id]
        try:
            return self.add(replace(event, opt_outs=old.opt_outs))
        except ConfigError:
            self.events[event.event_id] = old
            raise

    def cancel(self, event_id: str, at: datetime) -> ProgramEvent:
        event = self.get(event_id)
        if event.cancelled_at is not None:
            return event
        if at >= event.end:
            raise ConfigError.at("event_id", f"'{event_id}' is already over")
        cancelled = replace(event, cancelled_at=at)
        self.events[event_id] = cancelled
        return cancelled

    def opt_out(self, event_id: str, site_id: str, at: datetime) -> ProgramEvent:
        """The site owner declines one event (allowed until it starts)."""
        event = self.get(event_id)
        if at >= event.start:
            raise ConfigError.at("event_id", f"'{event_id}' has started; opt out before it")
        changed = replace(event, opt_outs=event.opt_outs | {site_id})
        self.events[event_id] = changed
        return changed

    def get(self, event_id: str) -> ProgramEvent:
        event = self.events.get(event_id)
        if event is None:
            raise ConfigError.at("event_id", f"no event '{event_id}'")
        return event

    def for_site(self, site_id: str, enrolled: Iterable[str]) -> list[DREvent]:
        """The events a site should plan for: its programs, called, not opted out."""
        programs = set(enrolled)
        return sorted(
            (
                e.as_dr_event()
                for e in self.events.values()
                if e.program_id in programs and e.calls(site_id)
            ),
            key=lambda e: e.start,
        )


def _call_a_common_site(a: ProgramEvent, b: ProgramEvent) -> bool:
    """Whether two events may call the same site (an empty list calls every enrolled site).
    Each utility calls its own customers: events that share no site neither overlap nor
    count against each other's season limit."""
    return not a.sites or not b.sites or bool(set(a.sites) & set(b.sites))


def _check_against_rules(event: ProgramEvent, rules: ProgramRules) -> None:
    season = rules.season_at(event.start)
    if season is None:
        raise ConfigError.at("start", f"outside every season of {rules.program_id}")
    notice_h = (event.start - event.notice_at) / timedelta(hours=1)
    if notice_h < rules.notice_hours - 1e-9:
        raise ConfigError.at(
            "notice_at",
            f"{notice_h:.3g} h before the start; the rules give {rules.notice_hours:g} h notice",
        )
    local_day = event.start.astimezone(rules.timezone).date()
    if season.holidays_excluded and local_day in _massachusetts_holidays(local_day.year):
        raise ConfigError.at("start", f"{local_day} is a holiday, when the rules call no events")
    hours = (event.end - event.start) / timedelta(hours=1)
    if hours > season.max_event_hours + 1e-9:
        raise ConfigError.at(
            "end", f"{hours:g} h is longer than the {season.max_event_hours:g} h the rules allow"
        )
    local_start = event.start.astimezone(rules.timezone)
    local_end = event.end.astimezone(rules.timezone)
    if (
        local_start.time() < season.window_start
        or local_end.time() > season.window_end
        or local_end.date() != local_start.date()
    ):
        raise ConfigError.at(
            "start",
            f"must lie within {season.window_start:%H:%M}-{season.window_end:%H:%M} local time",
        )


@functools.cache
def _massachusetts_holidays(year: int) -> frozenset[date]:
    import holidays

    return frozenset(holidays.country_holidays("US", subdiv="MA", years=year))
