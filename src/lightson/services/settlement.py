"""Settlement of demand-response seasons: from a simulated run or from what the chargers
metered, through one path (``settle_program``) and the program's rules.

Metered from the database: a site's event kW is the net discharge of its V2X equipment over
the event window, integrated from the meter values its chargers sent (each reading holds until
the next, a reading older than ``HOLD`` counts as nothing), and the building load over the
window from the site meter where its readings cover 90 % of it, else from the site's profile.
Time the site spent islanded (a stored grid signal) is left out, as in the simulator: power
given in a blackout served the building, not the event. An opted-out site is still called:
its missed event counts 0 kW.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise

from sqlalchemy import select

from lightson.control.grid import GridMonitor, GridSignal
from lightson.domain.assets import Program, Site
from lightson.domain.time import TimeGrid
from lightson.forecast.profiles import profile_forecast
from lightson.programs import CalledEvent, EnrolledSite, EventLine, SettlementLine, settle
from lightson.programs.events import ProgramEvent
from lightson.programs.rules import ProgramRules
from lightson.programs.settlement import Metered, event_kw
from lightson.services.site_meter import covers, metered_load_kwh
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware
from lightson.store.rollups import HOLD, STEP, station_intervals
from lightson.store.rollups import floor_step as _floor_step


def on_grid(at: datetime) -> bool:
    """On the rollups' 15-minute grid."""
    return _floor_step(at) == at


@dataclass(frozen=True)
class Settlement:
    lines: list[SettlementLine]
    event_lines: list[EventLine]
    unsettled: int  # called events with no data at all


def settle_program(
    program: Program,
    rules: Mapping[str, ProgramRules],
    events: Sequence[CalledEvent],
    metered: Mapping[tuple[str, str], Metered],
    participant_share: float = 1.0,
    season_year: int | None = None,
    covered: tuple[datetime | None, datetime] | None = None,
) -> tuple[list[SettlementLine], list[EventLine]]:
    """Every program's every season the events fall in (or only ``season_year``).
    ``covered``: the span the data covers, [from, until) (``from`` None: since before any
    season); a season it covers in part is extrapolated (``programs.settlement``)."""
    lines: list[SettlementLine] = []
    event_lines: list[EventLine] = []
    for program_id, program_rules in sorted(rules.items()):
        called = [e for e in events if e.program_id == program_id]
        sites = [
            EnrolledSite(s.site_id, s.export_permitted, participant_share)
            for s in program.sites
            if program_id in s.enrollments
        ]
        # Each event belongs to its own season and season year (winter 2026 runs into 2027).
        season_years = set()
        for event in called:
            season = program_rules.season_at(event.start)
            if season is None:
                continue
            day = event.start.astimezone(program_rules.timezone).date()
            season_years.add((season.name, season.season_year(day)))
        for season_name, year in sorted(season_years, key=lambda sy: (sy[1], sy[0])):
            if season_year is not None and year != season_year:
                continue
            site_lines, per_event = settle(
                program_rules, season_name, year, called, sites, metered, covered
            )
            lines += site_lines
            event_lines += per_event
    return lines, event_lines


def called_events(events: Iterable[ProgramEvent], now: datetime) -> list[CalledEvent]:
    """The book's events that have ended and were not cancelled."""
    return [
        CalledEvent(e.event_id, e.program_id, e.start, e.end, e.sites)
        for e in events
        if e.cancelled_at is None and e.end <= now
    ]


def metered_from_store(
    store: Store, program: Program, events: Sequence[CalledEvent]
) -> dict[tuple[str, str], Metered]:
    """What the chargers metered at each called site in each event (no data: no entry)."""
    metered = {}
    for event in events:
        for site in program.sites:
            if event.program_id not in site.enrollments or not event.calls(site.site_id):
                continue
            reading = _site_event(store, program, site, event)
            if reading is not None:
                metered[(site.site_id, event.event_id)] = reading
    return metered


def _site_event(store: Store, program: Program, site: Site, event: CalledEvent) -> Metered | None:
    islanded = islanded_spans(store, site.site_id, event.start, event.end)
    stations = [c.evse_id for c in site.chargers]
    if islanded or not (on_grid(event.start) and on_grid(event.end)):
        discharge_kwh = _raw_discharge_kwh(store, stations, event, islanded)
    else:  # the usual event: on the 15-minute grid, on the grid all along
        discharge_kwh = _rolled_discharge_kwh(store, stations, event)
    if discharge_kwh is None:
        return None
    outside_h = _hours_outside(event.start, event.end, islanded)
    metered_kwh, counted_h, covered_h = metered_load_kwh(
        store,
        site.site_id,
        event.start,
        event.end,
        lambda a, b: _hours_outside(a, b, islanded),
    )
    if covers(covered_h, event.start, event.end):  # the site meter, outside islanded time
        load_kwh = metered_kwh / counted_h * outside_h if counted_h > 0 else 0.0
    else:
        steps = max(1, round((event.end - event.start) / program.step))
        load = profile_forecast(program, site, TimeGrid(event.start, steps, program.step)).load_kw
        load_kwh = float(load.mean()) * outside_h
    return Metered(net_discharge_kwh=discharge_kwh, building_load_kwh=load_kwh)


def _rolled_discharge_kwh(
    store: Store, stations: Sequence[str], event: CalledEvent
) -> float | None:
    """Net discharge over the event from the 15-minute rollups (``store.rollups``), the
    interval before it included to know whether any power reading counts; None: none."""
    rolled = station_intervals(store, stations, event.start - STEP, event.end)
    if not any(r.kw_samples.sum() > 0 for r in rolled.values()):
        return None
    hours = STEP.total_seconds() / 3600
    return sum(-float(r.mean_kw[1:].sum()) * hours for r in rolled.values())


def _raw_discharge_kwh(
    store: Store,
    stations: Sequence[str],
    event: CalledEvent,
    islanded: Sequence[tuple[datetime, datetime]],
) -> float | None:
    """Net discharge over the event from the samples, islanded time left out to the second;
    None: no power reading."""
    samples = db.meter_samples
    query = (
        select(samples.c.station_id, samples.c.at, samples.c.power_kw)
        .where(
            samples.c.station_id.in_(list(stations)),
            samples.c.at >= (event.start - HOLD).astimezone(UTC),
            samples.c.at < event.end.astimezone(UTC),
            samples.c.power_kw.is_not(None),
        )
        .order_by(samples.c.station_id, samples.c.at)
    )
    with store.engine.connect() as connection:
        rows = [(s, aware(at), float(kw)) for s, at, kw in connection.execute(query)]
    if not rows:
        return None
    discharge_kwh = 0.0
    for i, (station, at, kw) in enumerate(rows):
        following = rows[i + 1] if i + 1 < len(rows) and rows[i + 1][0] == station else None
        until = min(following[1] if following else event.end, at + HOLD, event.end)
        discharge_kwh += -kw * _hours_outside(max(at, event.start), until, islanded)
    return discharge_kwh


def islanded_spans(
    store: Store, site_id: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """When the site was islanded within [start, end), from its stored grid signals (the
    enter-service delay after a restoration included). The signals are replayed once, in
    time order: a season's report asks for months at a time."""
    rows = sorted(store.rows(db.grid_signals, site_id=site_id), key=lambda r: r["at"])
    points, monitor = {start, end}, GridMonitor()
    for row in rows:
        monitor.report(row["source"], GridSignal(row["signal"]), row["at"])
        points.add(row["at"])
        resync = monitor.resync_at()
        if resync is not None:
            points.add(resync)
    spans: list[tuple[datetime, datetime]] = []
    replay, fed = GridMonitor(), 0
    for left, right in pairwise(sorted(p for p in points if start <= p <= end)):
        while fed < len(rows) and rows[fed]["at"] <= left:
            row = rows[fed]
            replay.report(row["source"], GridSignal(row["signal"]), row["at"])
            fed += 1
        if replay.islanded(left):
            if spans and spans[-1][1] == left:
                spans[-1] = (spans[-1][0], right)
            else:
                spans.append((left, right))
    return spans


def _hours_outside(
    start: datetime, end: datetime, spans: Sequence[tuple[datetime, datetime]]
) -> float:
    """Hours of [start, end) not in any of ``spans``."""
    if end <= start:
        return 0.0
    total = (end - start).total_seconds()
    for left, right in spans:
        overlap = (min(end, right) - max(start, left)).total_seconds()
        total -= max(overlap, 0.0)
    return max(total, 0.0) / 3600


@dataclass(frozen=True)
class SitePerformance:
    """One called site in one event, so far: what its chargers metered and the kW it counts
    as (``None``: no meter value in the window yet)."""

    site_id: str
    kind: str
    opted_out: bool
    hours: float  # of the event elapsed (all of it once it has ended)
    net_discharge_kwh: float | None
    kw: float | None
    capacity_kw: float  # the bidirectional chargers' discharge rating at the site


def event_performance(
    store: Store,
    program: Program,
    event: ProgramEvent,
    rules: ProgramRules | None,
    now: datetime,
) -> list[SitePerformance]:
    """Each enrolled site the event calls, measured the way settlement measures it (net
    discharge of the V2X equipment, islanded time left out, the building-load cap where the
    site may not export), over the part of the event that has passed (up to its
    cancellation, if it was cancelled)."""
    end = min(event.end, now, event.cancelled_at or event.end)
    hours = max((end - event.start).total_seconds() / 3600, 0.0)
    window = CalledEvent(event.event_id, event.program_id, event.start, end, event.sites)
    cap = rules.cap_to_load_without_export if rules is not None else True
    lines = []
    for site in program.sites:
        if event.program_id not in site.enrollments or (
            event.sites and site.site_id not in event.sites
        ):
            continue
        reading = _site_event(store, program, site, window) if hours > 0 else None
        kw = (
            event_kw(reading, hours, site.export_permitted, cap)
            if reading is not None and hours > 0
            else None
        )
        lines.append(
            SitePerformance(
                site.site_id,
                site.kind.value,
                site.site_id in event.opt_outs,
                hours,
                reading.net_discharge_kwh if reading is not None else None,
                kw,
                sum(c.max_discharge_kw for c in site.chargers),
            )
        )
    return lines
