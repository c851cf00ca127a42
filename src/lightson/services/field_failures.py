"""The twin's failure model measured from what the platform recorded (#16): how often and how
long chargers faulted and lost their link, how often owners opted out, plugged in late or
left early, and how often a school bus ran a route off its schedule, side by side with the
twin's assumptions, and as a ``FailureModel`` (or a program file's ``failures:`` section) the
twin can run with. Causes are named by ``domain.failures.CAUSES``.

How each is read from the operations database over the recorded period (``recorded_span``):

- **Charger faults**: per connector, a spell from a ``Faulted`` status to its next other
  status (open at the end: to the end). Rate = spells starting in the period ÷ charger-years
  (the program's chargers × the period); durations of the spells in it, clipped to it.
- **Communication losses**: per charger, a spell from a setpoint left unanswered (``Timeout``,
  ``Offline``: ``services.measured.UNANSWERED``) to the next setpoint answered; the platform
  sends one at least every plan, so a link lost while nothing was sent is not seen.
- **Opt-outs**: per site kind, the site-events called that the site opted out of ÷ the
  site-events called (ended, not cancelled).
- **Late plug-ins, early departures**: each recorded trip (between two sessions,
  ``services.availability.recorded_sessions``) is matched with the program file's scheduled
  trip it overlaps most; it is late when plugged in back more than 3σ of the twin's own
  return jitter after the scheduled return (90 min), early when it left more than 3σ of the
  departure jitter before (45 min). Probability = such trips ÷ matched trips, the delay's
  median and log standard deviation from those trips.
- **Summer routes**: at school sites, the route days (the twin's ``summer_route`` months and
  weekdays) on which a bus made a trip matching no scheduled trip ÷ bus-route-days observed.

A lognormal's median is the sample median, its σ the standard deviation of the logs (with one
spell: the assumption's σ). A cause with nothing to measure keeps the assumption.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import select

from lightson.domain.assets import Program, SiteKind
from lightson.domain.failures import (
    CAUSES,
    FIELD_FAILURES,
    HOURS_PER_YEAR,
    Delay,
    Downtime,
    FailureCause,
    FailureModel,
)
from lightson.physics.trips import TripOccurrence, occurrences
from lightson.programs.events import EventBook
from lightson.services.availability import recorded_sessions
from lightson.services.measured import FAULT_STATUSES, UNANSWERED, recorded_span
from lightson.sim.world import DEPART_JITTER, RETURN_JITTER
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware

LATE_AFTER = 3 * RETURN_JITTER  # beyond the twin's own return jitter (3σ)
EARLY_BEFORE = 3 * DEPART_JITTER  # beyond its departure jitter (3σ)
MIN_HOURS = 1 / 60  # a program file's durations are > 0: a minute at least
LONGEST_TRIP = timedelta(hours=36)
SETPOINT_LEAD = timedelta(days=1)  # longer gaps between sessions are no trip (a holiday)


@dataclass(frozen=True)
class Spells:
    """Spells out of service over ``charger_years``: ``started`` began in the period;
    ``hours`` the durations of all spells in it (clipped to it)."""

    started: int
    charger_years: float
    hours: tuple[float, ...]

    @property
    def per_charger_year(self) -> float:
        return self.started / self.charger_years if self.charger_years > 0 else 0.0


@dataclass(frozen=True)
class Shifts:
    """Of ``matched`` trips, the ``hours`` each shifted one was off its schedule."""

    matched: int
    hours: tuple[float, ...]

    @property
    def probability(self) -> float:
        return len(self.hours) / self.matched if self.matched else 0.0


@dataclass(frozen=True)
class FieldFailureRates:
    """What the platform recorded from ``since`` to ``until``."""

    since: datetime
    until: datetime
    faults: Spells
    comms: Spells
    opt_outs: dict[str, tuple[int, int]]  # kind: (opted out, site-events called)
    late: Shifts
    early: Shifts
    route_days: tuple[int, int]  # (route days with an unscheduled trip, bus-route-days)

    def model(self, assumed: FailureModel = FIELD_FAILURES) -> FailureModel:
        """``assumed`` with every cause measured here replaced by the field's figures."""
        opt_out = dict(assumed.opt_out_probability)
        for kind, (opted, called) in self.opt_outs.items():
            if called:
                opt_out[kind] = opted / called
        route = assumed.summer_route
        if route is not None and self.route_days[1]:
            route = replace(route, probability=self.route_days[0] / self.route_days[1])
        return FailureModel(
            charger_faults=_downtime(self.faults, assumed.charger_faults),
            communication_losses=_downtime(self.comms, assumed.communication_losses),
            opt_out_probability=tuple(opt_out.items()),
            late_plug_in=_delay(self.late, assumed.late_plug_in),
            early_departure=_delay(self.early, assumed.early_departure),
            summer_route=route,
        )


def measure_failure_rates(
    store: Store, program: Program, book: EventBook, since: datetime, until: datetime
) -> FieldFailureRates:
    """The failure rates recorded in [since, until), narrowed to the recorded period."""
    span = recorded_span(store, program, book, since, until, pad=timedelta(0))
    recorded = span != (since, until)  # unchanged: nothing recorded, nothing measured
    since, until = span
    chargers = [c.evse_id for s in program.sites for c in s.chargers]
    hours = max((until - since).total_seconds(), 0.0) / 3600 if recorded else 0.0
    years = len(chargers) * hours / HOURS_PER_YEAR
    late, early, route_days = _trips(store, program, since, until)
    return FieldFailureRates(
        since,
        until,
        _fault_spells(store, chargers, since, until, years),
        _comms_spells(store, chargers, since, until, years),
        _opt_outs(program, book, since, until),
        late,
        early,
        route_days,
    )


def _fault_spells(
    store: Store, stations: Sequence[str], since: datetime, until: datetime, years: float
) -> Spells:
    status = db.evse_status
    query = (
        select(status.c.station_id, status.c.connector_id, status.c.status, status.c.at)
        .where(status.c.station_id.in_(stations), status.c.at < until.astimezone(UTC))
        .order_by(status.c.station_id, status.c.connector_id, status.c.at, status.c.id)
    )
    with store.engine.connect() as connection:
        rows = list(connection.execute(query))
    by_connector: dict[tuple[str, int], list[tuple[bool, datetime]]] = {}
    for row in rows:
        key = (row.station_id, row.connector_id)
        by_connector.setdefault(key, []).append((row.status in FAULT_STATUSES, aware(row.at)))
    spells = []
    for changes in by_connector.values():
        spells += _spells_of(changes, until)
    return _within(spells, since, until, years)


def _comms_spells(
    store: Store, stations: Sequence[str], since: datetime, until: datetime, years: float
) -> Spells:
    sent = db.setpoints_sent
    query = (
        select(sent.c.station_id, sent.c.status, sent.c.sent_at)
        .where(
            sent.c.station_id.in_(stations),
            # a setpoint every plan: a spell under way at ``since`` began within a day of it
            sent.c.sent_at >= (since - SETPOINT_LEAD).astimezone(UTC),
            sent.c.sent_at < until.astimezone(UTC),
        )
        .order_by(sent.c.station_id, sent.c.sent_at, sent.c.id)
    )
    with store.engine.connect() as connection:
        rows = list(connection.execute(query))
    by_station: dict[str, list[tuple[bool, datetime]]] = {}
    for row in rows:
        by_station.setdefault(row.station_id, []).append(
            (row.status in UNANSWERED, aware(row.sent_at))
        )
    spells = []
    for changes in by_station.values():
        spells += _spells_of(changes, until)
    return _within(spells, since, until, years)


def _spells_of(
    changes: Sequence[tuple[bool, datetime]], until: datetime
) -> list[tuple[datetime, datetime]]:
    """Spells from each ``True`` after a ``False`` (or the first) to the next ``False``."""
    spells, start = [], None
    for out, at in changes:
        if out and start is None:
            start = at
        elif not out and start is not None:
            spells.append((start, at))
            start = None
    if start is not None:
        spells.append((start, until))
    return spells


def _within(
    spells: Sequence[tuple[datetime, datetime]], since: datetime, until: datetime, years: float
) -> Spells:
    inside = [(max(a, since), min(b, until)) for a, b in spells if b > since and a < until]
    return Spells(
        started=sum(1 for a, _ in spells if since <= a < until),
        charger_years=years,
        hours=tuple((b - a).total_seconds() / 3600 for a, b in inside),
    )


def _opt_outs(
    program: Program, book: EventBook, since: datetime, until: datetime
) -> dict[str, tuple[int, int]]:
    counts = {kind.value: [0, 0] for kind in SiteKind}
    for event in book.events.values():
        if event.cancelled_at is not None or event.end > until or event.start < since:
            continue
        for site in program.sites:
            called = event.program_id in site.enrollments and (
                not event.sites or site.site_id in event.sites
            )
            if called:
                counts[site.kind.value][1] += 1
                counts[site.kind.value][0] += site.site_id in event.opt_outs
    return {kind: (opted, called) for kind, (opted, called) in counts.items()}


def _trips(
    store: Store, program: Program, since: datetime, until: datetime
) -> tuple[Shifts, Shifts, tuple[int, int]]:
    late, early, matched = [], [], 0
    route_hit, route_days = 0, 0
    route = FIELD_FAILURES.summer_route
    assert route is not None
    tz = program.timezone
    for site in program.sites:
        for vehicle in site.vehicles:
            sessions = recorded_sessions(store, vehicle.evse_id, since, until)
            recorded = [
                (a.left, b.plugged_in)
                for a, b in pairwise(sessions)
                if timedelta(0) < b.plugged_in - a.left <= LONGEST_TRIP
            ]
            scheduled = occurrences(
                vehicle.trips, since - timedelta(days=1), until + timedelta(days=1), tz
            )
            unscheduled_days = set()
            for left, back in recorded:
                planned = _best_match(left, back, scheduled)
                if planned is None:
                    unscheduled_days.add(left.astimezone(tz).date())
                    continue
                matched += 1
                if back - planned.arrive > LATE_AFTER:
                    late.append((back - planned.arrive).total_seconds() / 3600)
                if planned.depart - left > EARLY_BEFORE:
                    early.append((planned.depart - left).total_seconds() / 3600)
            if site.kind is SiteKind.SCHOOL and sessions:
                days = _route_days(sessions[0].plugged_in, sessions[-1].left, program, route)
                route_days += len(days)
                route_hit += len(days & unscheduled_days)
    return Shifts(matched, tuple(late)), Shifts(matched, tuple(early)), (route_hit, route_days)


def _best_match(
    left: datetime, back: datetime, scheduled: Sequence[TripOccurrence]
) -> TripOccurrence | None:
    """The scheduled trip the recorded one overlaps most (none overlapping: ``None``)."""
    best, most = None, timedelta(0)
    for trip in scheduled:
        overlap = min(back, trip.arrive) - max(left, trip.depart)
        if overlap > most:
            best, most = trip, overlap
    return best


def _route_days(first: datetime, last: datetime, program: Program, route: Any) -> set[Any]:
    tz = program.timezone
    day, end = first.astimezone(tz).date(), last.astimezone(tz).date()
    days = set()
    while day <= end:
        if day.month in route.months and day.weekday() in route.weekdays:
            days.add(day)
        day += timedelta(days=1)
    return days


def _downtime(spells: Spells, assumed: Downtime | None) -> Downtime | None:
    if spells.charger_years <= 0:
        return assumed
    if not spells.hours:
        return Downtime(0.0, assumed.median_hours if assumed else 1.0)
    sigma = _log_sigma(spells.hours, assumed.sigma if assumed else 1.0)
    return Downtime(spells.per_charger_year, statistics.median(spells.hours), sigma)


def _delay(shifts: Shifts, assumed: Delay | None) -> Delay | None:
    if not shifts.matched:
        return assumed
    if not shifts.hours:
        return Delay(0.0, assumed.median_hours if assumed else 1.0)
    base_sigma = assumed.sigma if assumed else 0.75
    return Delay(
        shifts.probability,
        statistics.median(shifts.hours),
        _log_sigma(shifts.hours, base_sigma),
        max(assumed.max_hours if assumed else 8.0, max(shifts.hours)),
    )


def _log_sigma(hours: Sequence[float], assumed: float) -> float:
    logs = [math.log(h) for h in hours if h > 0]
    return statistics.pstdev(logs) if len(logs) >= 2 else assumed


def rates_table(
    rates: FieldFailureRates, assumed: FailureModel = FIELD_FAILURES
) -> list[dict[str, str]]:
    """One row per cause: its label and category, what the field recorded, what the twin
    assumes."""
    measured = rates.model(assumed)
    years = f"{rates.faults.charger_years:.2f} charger-years"
    opted = [f"{kind} {n}/{called}" for kind, (n, called) in rates.opt_outs.items() if called]
    route = assumed.summer_route
    rows = {
        FailureCause.FAULT: (
            f"{_downtime_words(measured.charger_faults)}; {rates.faults.started} spells in {years}",
            _downtime_words(assumed.charger_faults),
        ),
        FailureCause.COMMS: (
            f"{_downtime_words(measured.communication_losses)}; "
            f"{rates.comms.started} spells in {years}",
            _downtime_words(assumed.communication_losses),
        ),
        FailureCause.OPT_OUT: (
            ", ".join(opted) or "no site-event called",
            ", ".join(f"{kind} {p:.0%}" for kind, p in assumed.opt_out_probability),
        ),
        FailureCause.LATE_PLUG_IN: (_shift_words(rates.late), _delay_words(assumed.late_plug_in)),
        FailureCause.EARLY_DEPARTURE: (
            _shift_words(rates.early),
            _delay_words(assumed.early_departure),
        ),
        FailureCause.ROUTE: (
            f"{rates.route_days[0]}/{rates.route_days[1]} bus-route-days"
            if rates.route_days[1]
            else "no school bus recorded on a route day",
            f"{route.probability:.0%} of route days" if route else "off",
        ),
    }
    return [
        {
            "cause": CAUSES[cause].label,
            "category": CAUSES[cause].category.value,
            "field": field_words,
            "twin": twin_words,
        }
        for cause, (field_words, twin_words) in rows.items()
    ]


def _downtime_words(downtime: Downtime | None) -> str:
    if downtime is None:
        return "off"
    return (
        f"{downtime.per_charger_year:.1f}/charger-year, median {downtime.median_hours:.1f} h "
        f"({downtime.unavailability:.2%} of the time)"
    )


def _delay_words(delay: Delay | None) -> str:
    if delay is None:
        return "off"
    return f"{delay.probability:.0%} of trips, median {delay.median_hours:.1f} h"


def _shift_words(shifts: Shifts) -> str:
    if not shifts.matched:
        return "no scheduled trip recorded"
    median = f", median {statistics.median(shifts.hours):.1f} h" if shifts.hours else ""
    return f"{len(shifts.hours)}/{shifts.matched} trips{median}"


def failures_section(model: FailureModel) -> dict[str, Any]:
    """``model`` as a program file's ``failures:`` section (docs/program-file.md)."""
    section: dict[str, Any] = {"base": "none"}
    for key, downtime in (
        ("charger_faults", model.charger_faults),
        ("communication_losses", model.communication_losses),
    ):
        if downtime is not None:
            section[key] = {
                "per_charger_year": round(downtime.per_charger_year, 4),
                "median_hours": round(max(downtime.median_hours, MIN_HOURS), 4),
                "sigma": round(min(downtime.sigma, 3.0), 4),
            }
    if model.opt_out_probability:
        section["opt_out"] = {kind: round(p, 4) for kind, p in model.opt_out_probability}
    for key, delay in (
        ("late_plug_in", model.late_plug_in),
        ("early_departure", model.early_departure),
    ):
        if delay is not None:
            section[key] = {
                "probability": round(delay.probability, 4),
                "median_hours": round(min(max(delay.median_hours, MIN_HOURS), 24.0), 4),
                "sigma": round(min(delay.sigma, 3.0), 4),
                "max_hours": round(min(delay.max_hours, 24.0), 4),
            }
    if model.summer_route is not None:
        section["summer_route"] = {"probability": round(model.summer_route.probability, 4)}
    return section
