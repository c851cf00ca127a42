"""A live season as interval data: what the chargers, the site meters and the grid signals
recorded, laid on the program's 15-minute grid as the simulator's ``SiteRun``, so the same
KPI functions (``lightson.sim.kpis``) and the same program report measure a live season and
a simulated one (``docs/reports.md``).

How each column is read from the operations database:

- **vehicle power**: the chargers' meter values, each holding until the next one and at most
  ``HOLD`` (as settlement integrates them), averaged over the interval; nothing known is 0 kW.
- **vehicle energy**: the last state-of-charge reading by the end of the interval times the
  battery of the vehicle assigned to that charger (before the first reading: the first one).
- **plugged**: a transaction was open at the middle of the interval (one whose end was lost
  ends at the charger's next transaction or its connector's next ``Available``; see
  ``_sessions``).
- **building load and PV**: the site meter where its readings cover at least half of the
  interval, else the site's profile (the live loop's own fallback).
- **islanded**: the stored grid signals (the enter-service delay included) cover at least half
  of the interval. Islanded, nothing is imported; the load served and the critical load not
  served are estimates from what the vehicles and PV gave: the chargers meter the vehicles,
  not the building.
- **departures below target**: at the end of each session, its own last state-of-charge
  reading against the target the vehicle asked for over ISO 15118, or the owner's departure
  request, or else (as the simulator) the departure floor plus the scheduled trip leaving
  within ``TRIP_MATCH``; a session with no reading of its own, or no known end, is not judged.
  Trip energy is not measured live (0).
- **event kW**: settlement's own measure of each site in each event (``measured_season``).

Alongside, ``event_conditions`` tells, for each site called to each event, whether it opted
out, whether a charger faulted (a ``Faulted`` status in the event or standing at its start,
or a setpoint rejected or answered with an error) and whether communication failed (a
setpoint unanswered or cut off, or a charger plugged in for ``HOLD`` of the event with no
reading in it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sqlalchemy import func, or_, select

from lightson.domain.assets import LoadTier, Program, Site, Vehicle
from lightson.domain.demand_response import DREvent
from lightson.domain.time import TimeGrid
from lightson.forecast.profiles import profile_forecast
from lightson.physics.trips import occurrences
from lightson.programs.events import EventBook, ProgramEvent
from lightson.programs.rules import ProgramRules
from lightson.reports.program_report import CONDITIONS_FILE, MEASURED
from lightson.services.settlement import event_performance, islanded_spans
from lightson.services.site_meter import FRESH
from lightson.sim.engine import SiteRun
from lightson.sim.kpis import EventPerformance, SiteKpis, dr_payment_usd, site_kpis
from lightson.sim.output import write_run
from lightson.sim.runner import ProgramRun
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware
from lightson.store.rollups import HOLD, Intervals, held_average, last_soc, station_intervals
from lightson.store.transactions import ended_at

COVERED = 0.5  # a reading (or signal) that covers this share of an interval speaks for it
FAULT_STATUSES = ("Faulted",)
REFUSED_ANSWERS = ("Rejected", "Error")  # the charger answered: no, or with an error
UNANSWERED = ("Timeout", "Offline")  # no answer came, or the connection closed first
EPOCH = pd.Timestamp(0, tz="UTC")
TRIP_MATCH = timedelta(hours=2)  # a session's end this close to a scheduled trip is that trip


@dataclass(frozen=True)
class MeasuredSeason:
    """``program`` with the events called in the period; ``run`` the sites' interval data;
    ``kpis`` and ``events`` as the simulator's KPI functions measure them;
    ``conditions`` one row per site and event called (opted out, faulted, silent)."""

    program: Program
    run: ProgramRun
    kpis: list[SiteKpis]
    events: list[EventPerformance]
    conditions: pd.DataFrame


def measured_season(
    store: Store,
    program: Program,
    book: EventBook,
    since: datetime,
    until: datetime,
    rules: Mapping[str, ProgramRules] | None = None,
) -> MeasuredSeason:
    """The program's sites from ``since`` to ``until``, as recorded: narrowed to the time the
    database has records for (a season that started late, or a demo's few hours, is not
    padded with months of nothing but profiles).

    A site's kW in an event is the one settlement measures (``services.settlement``: islanded
    time left out to the second, the site meter where it covers 90 % of the event, the
    program's own cap rule), not one read off the 15-minute grid, so the report and the
    payment agree; the KPIs' payment estimate follows from it."""
    step = program.step
    since, until = recorded_span(store, program, book, since, until)
    start = since.astimezone(UTC)
    start -= (start - start.replace(minute=0, second=0, microsecond=0)) % step
    n_steps = max(1, -(-(until.astimezone(UTC) - start) // step))
    grid = TimeGrid(start, n_steps, step)
    called = [
        e
        for e in sorted(book.events.values(), key=lambda e: e.start)
        if e.cancelled_at is None and e.start >= grid.start and e.end <= min(until, grid.end)
    ]
    settled = {
        (line.site_id, event.event_id): line.kw or 0.0  # no reading: nothing delivered
        for event in called
        for line in event_performance(
            store, program, event, (rules or {}).get(event.program_id), until
        )
    }
    runs, kpis, performance = [], [], []
    for site in program.sites:
        run = measured_site(store, program, site, grid, called)
        mine = tuple(_dr_event(e) for e in called if _calls(e, site))
        site_kpi, site_events = site_kpis(replace(program, events=mine), run)
        site_events = [
            replace(e, delivered_kw=settled.get((e.site_id, e.event_id), e.delivered_kw))
            for e in site_events
        ]
        payment = dr_payment_usd(program, site_events)
        site_kpi = replace(
            site_kpi,
            dr_average_kw=float(np.mean([e.delivered_kw for e in site_events]))
            if site_events
            else 0.0,
            dr_payment_usd=payment,
            net_cost_usd=site_kpi.net_cost_usd + site_kpi.dr_payment_usd - payment,
        )
        runs.append(run)
        kpis.append(site_kpi)
        performance += site_events
    return MeasuredSeason(
        replace(program, events=tuple(_dr_event(e) for e in called)),
        ProgramRun(MEASURED, grid.start, n_steps, 0, tuple(runs)),
        kpis,
        performance,
        event_conditions(store, program, called),
    )


def write_measured(
    store: Store,
    program: Program,
    book: EventBook,
    since: datetime,
    until: datetime,
    out: Path,
    rules: Mapping[str, ProgramRules] | None = None,
) -> list[Path]:
    """The measured season written as a run folder (``lightson simulate``'s files, and
    ``event_conditions.csv``), for ``lightson report`` and anyone's own analysis."""
    season = measured_season(store, program, book, since, until, rules)
    written = write_run(season.program, season.run, season.kpis, season.events, out)
    season.conditions.to_csv(out / CONDITIONS_FILE, index=False)
    return [*written, out / CONDITIONS_FILE]


def recorded_span(
    store: Store,
    program: Program,
    book: EventBook,
    since: datetime,
    until: datetime,
    pad: timedelta | None = None,
) -> tuple[datetime, datetime]:
    """[since, until) narrowed to the first and last record of the program's chargers
    (meter values, transaction events, statuses), site meters, grid signals and the windows
    of the events called in it, the last one's interval included (``pad``, default the
    program's step; 0: the span ends at the last record); unchanged when there is none."""
    stations = [c.evse_id for s in program.sites for c in s.chargers]
    sites = [s.site_id for s in program.sites]
    sources = (
        (db.meter_samples, db.meter_samples.c.station_id, stations),
        (db.transaction_events, db.transaction_events.c.station_id, stations),
        (db.evse_status, db.evse_status.c.station_id, stations),
        (db.site_meter, db.site_meter.c.site_id, sites),
        (db.grid_signals, db.grid_signals.c.site_id, sites),
    )
    found: list[datetime] = []
    with store.engine.connect() as connection:
        for table, owner, names in sources:
            query = select(func.min(table.c.at), func.max(table.c.at)).where(
                owner.in_(names),
                table.c.at >= since.astimezone(UTC),
                table.c.at < until.astimezone(UTC),
            )
            found += [aware(at) for at in connection.execute(query).one() if at is not None]
    step = program.step if pad is None else pad
    for event in book.events.values():
        if event.cancelled_at is None and event.start >= since and event.end <= until:
            found += [event.start, event.end - step]
    if not found:
        return since, until
    return max(since, min(found)), min(until, max(found) + step)


def measured_site(
    store: Store, program: Program, site: Site, grid: TimeGrid, called: Sequence[ProgramEvent]
) -> SiteRun:
    """One site's interval data over ``grid``, as recorded."""
    edges = _edges(grid)
    n, vehicles = grid.n_steps, site.vehicles
    sessions = _sessions(store, [v.evse_id for v in vehicles], grid.start, grid.end)
    power = np.zeros((len(vehicles), n))
    energy = np.zeros((len(vehicles), n))
    initial = np.zeros(len(vehicles))
    plugged = np.zeros((len(vehicles), n), dtype=bool)
    short = np.zeros((len(vehicles), n))
    middles = (edges[:-1] + edges[1:]) / 2
    rolled = _intervals(store, [v.evse_id for v in vehicles], grid)
    for i, vehicle in enumerate(vehicles):
        power[i] = rolled[vehicle.evse_id].mean_kw[1:]
        energy[i], initial[i] = _energies(rolled[vehicle.evse_id], vehicle)
        for session in sessions.get(vehicle.evse_id, []):
            plugged[i] |= (middles >= session.started) & (middles < session.ended)
            if not session.departed or session.ended >= edges[-1]:
                continue
            # The energy it left with: its own last reading (none: nothing to judge).
            since = max(session.started, edges[0] - HOLD.total_seconds())
            left = last_soc(store, vehicle.evse_id, *_instants(since, session.ended))
            if left is not None:
                k = int(np.searchsorted(edges, session.ended, side="right")) - 1
                target = _target_kwh(store, program, vehicle, session.started, session.ended)
                short[i, k] = max(target - left * vehicle.battery_kwh, 0.0)
    load, pv, in_outage = _building(store, program, site, grid, edges)
    vehicles_kw = power.sum(axis=0)
    supply = pv - vehicles_kw  # what PV and the vehicles gave the building
    served = np.where(in_outage, np.clip(supply, 0.0, load), load)
    net = _net_kw(load, pv, vehicles_kw, in_outage)
    in_event = grid.starts_within((e.start, e.end) for e in called if _calls(e, site))
    critical = site.building.tiers.share(LoadTier.CRITICAL) * load
    return SiteRun(
        site_id=site.site_id,
        controller=MEASURED,
        start=grid.start,
        step=grid.step,
        vehicle_ids=tuple(v.vehicle_id for v in vehicles),
        evse_ids=tuple(v.evse_id for v in vehicles),
        load_kw=load,
        pv_kw=pv,
        net_kw=net,
        load_served_kw=served,
        pv_curtailed_kw=np.where(in_outage, np.clip(supply - load, 0.0, None), 0.0),
        in_outage=in_outage,
        critical_unserved_kw=np.where(in_outage, np.clip(critical - served, 0.0, None), 0.0),
        in_event=in_event,
        power_kw=power,
        energy_kwh=energy,
        plugged=plugged,
        trip_energy_kwh=np.zeros((len(vehicles), n)),
        unserved_trip_kwh=np.zeros((len(vehicles), n)),
        departure_short_kwh=short,
        interventions=0,
        plans_made=_plans_made(store, site.site_id, grid),
        initial_energy_kwh=initial,
    )


def measured_net_kw(
    store: Store, program: Program, site: Site, grid: TimeGrid
) -> NDArray[np.float64]:
    """The site's net import over each interval of ``grid`` as ``measured_site`` reads it
    (what a demand charge is on), without the sessions, departures and energies it also
    reads: the live loop's month's peak asks for it every interval."""
    edges = _edges(grid)
    vehicles_kw = np.zeros(grid.n_steps)
    rolled = _intervals(store, [v.evse_id for v in site.vehicles], grid)
    for vehicle in site.vehicles:
        vehicles_kw += rolled[vehicle.evse_id].mean_kw[1:]
    load, pv, in_outage = _building(store, program, site, grid, edges)
    return _net_kw(load, pv, vehicles_kw, in_outage)


def _building(
    store: Store, program: Program, site: Site, grid: TimeGrid, edges: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Building load and PV (the site meter, else the profile) and the islanded intervals."""
    profile = profile_forecast(program, site, grid)
    load, pv = _metered_building(store, site, edges, profile.load_kw, profile.pv_kw)
    spans = islanded_spans(store, site.site_id, grid.start, grid.end)
    _, islanded_share = held_average(
        _seconds([a for a, _ in spans]),
        np.ones(len(spans)),
        edges,
        np.inf,
        until=_seconds([b for _, b in spans]),
    )
    return load, pv, islanded_share >= COVERED


def _net_kw(
    load: NDArray[np.float64],
    pv: NDArray[np.float64],
    vehicles_kw: NDArray[np.float64],
    in_outage: NDArray[np.bool_],
) -> NDArray[np.float64]:
    """Import (+) or export (−) at the site's meter; islanded, nothing crosses it."""
    return np.where(in_outage, 0.0, load - pv + vehicles_kw)


def _intervals(store: Store, stations: Sequence[str], grid: TimeGrid) -> dict[str, Intervals]:
    """The stations' meter values on ``grid`` with one interval before it (the state of
    charge a season starts from), from the rollups (``store.rollups``)."""
    return station_intervals(store, stations, grid.start - grid.step, grid.end, grid.step)


def _energies(rolled: Intervals, vehicle: Vehicle) -> tuple[NDArray[np.float64], float]:
    """The vehicle's energy by the end of each interval of the grid (the last state-of-charge
    reading before it; before the first reading, the first one; with none, its initial
    state of charge) and by the grid's start."""
    has = ~np.isnan(rolled.first_soc)
    if not has.any():
        energy = np.full(len(rolled.mean_kw) - 1, vehicle.initial_soc * vehicle.battery_kwh)
        return energy, float(energy[0]) if len(energy) else 0.0
    last = pd.Series(rolled.last_soc).ffill().to_numpy(float)
    by_end = np.where(np.isnan(last), rolled.first_soc[np.argmax(has)], last)
    kwh = by_end * vehicle.battery_kwh
    return kwh[1:], float(kwh[0])


def _instants(*seconds: float) -> tuple[datetime, ...]:
    return tuple(datetime.fromtimestamp(s, UTC) for s in seconds)


def _edges(grid: TimeGrid) -> NDArray[np.float64]:
    return _seconds([grid.start + k * grid.step for k in range(grid.n_steps + 1)])


def event_conditions(
    store: Store, program: Program, called: Sequence[ProgramEvent]
) -> pd.DataFrame:
    """Per site called to each event: opted out, chargers that faulted, chargers silent."""
    rows = []
    for event in called:
        window = (event.start.astimezone(UTC), event.end.astimezone(UTC))
        for site in program.sites:
            if not _calls(event, site):
                continue
            stations = [c.evse_id for c in site.chargers if c.max_discharge_kw > 0]
            faulted, silent = _troubles(store, stations, *window)
            rows.append(
                {
                    "event_id": event.event_id,
                    "site_id": site.site_id,
                    "opted_out": site.site_id in event.opt_outs,
                    "faulted_chargers": len(faulted),
                    "silent_chargers": len(silent - faulted),
                }
            )
    columns = ["event_id", "site_id", "opted_out", "faulted_chargers", "silent_chargers"]
    return pd.DataFrame(rows, columns=columns)


def _troubles(
    store: Store, stations: Sequence[str], start: datetime, end: datetime
) -> tuple[set[str], set[str]]:
    """Stations that were faulted in [start, end) (a ``Faulted`` status in it or still
    standing at its start, or a setpoint answered no or with an error), and stations that did
    not communicate: a setpoint unanswered, or a vehicle plugged in for at least ``HOLD`` of
    the window with no meter value in it."""
    if not stations:
        return set(), set()
    status, sent, samples = db.evse_status, db.setpoints_sent, db.meter_samples
    # Each connector's newest status by the start (by the charger's own time, then arrival).
    newest = (
        select(
            status.c.station_id,
            status.c.status,
            func.row_number()
            .over(
                partition_by=(status.c.station_id, status.c.evse_id, status.c.connector_id),
                order_by=(status.c.at.desc(), status.c.id.desc()),
            )
            .label("rank"),
        )
        .where(status.c.station_id.in_(stations), status.c.at <= start)
        .subquery()
    )
    with store.engine.connect() as connection:
        standing = set(
            connection.scalars(
                select(newest.c.station_id).where(
                    newest.c.rank == 1, newest.c.status.in_(FAULT_STATUSES)
                )
            )
        )
        faulted = standing | set(
            connection.scalars(
                select(status.c.station_id).where(
                    status.c.station_id.in_(stations),
                    status.c.status.in_(FAULT_STATUSES),
                    status.c.at >= start,
                    status.c.at < end,
                )
            )
        )
        answers = list(
            connection.execute(
                select(sent.c.station_id, sent.c.status).where(
                    sent.c.station_id.in_(stations), sent.c.sent_at >= start, sent.c.sent_at < end
                )
            )
        )
        heard = set(
            connection.scalars(
                select(samples.c.station_id)
                .where(
                    samples.c.station_id.in_(stations), samples.c.at >= start, samples.c.at < end
                )
                .distinct()
            )
        )
    faulted |= {s for s, answer in answers if answer in REFUSED_ANSWERS}
    silent = {s for s, answer in answers if answer in UNANSWERED}
    plugged = {
        station
        for station, sessions in _sessions(store, stations, start, end).items()
        if sum(max(0.0, x.ended - max(x.started, start.timestamp())) for x in sessions)
        >= HOLD.total_seconds()
    }
    return faulted, silent | (plugged - heard)


@dataclass(frozen=True)
class _Session:
    started: float  # s
    ended: float  # s
    departed: bool  # the session's end was reported (or a later one started on the charger)


def _sessions(
    store: Store, stations: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[_Session]]:
    """Each station's transactions that overlap [start, end), in seconds, clipped to it. A
    transaction ends at the station's ``Ended``, else at the CSMS's closing of it (a reboot,
    ``Available``, a long disconnection: ``store.transactions``). One with neither (a
    closing not made yet, or reopened by the station) ends when the
    charger next started another transaction, or next reported the transaction's own
    connector ``Available`` (a connector-0 status at boot says nothing of the vehicle);
    with neither, it is taken as still open (a charger that stopped talking mid-session)."""
    events, status = db.transaction_events, db.evse_status
    ended = ended_at()  # the station's Ended, else a CSMS closing not reopened since
    query = (
        select(events.c.station_id, func.min(events.c.at), ended, func.max(events.c.evse_id))
        .where(events.c.station_id.in_(stations), events.c.at < end.astimezone(UTC))
        .group_by(events.c.station_id, events.c.transaction_id)
        .having(
            or_(
                func.max(events.c.at) >= start.astimezone(UTC),
                ended.is_(None),
            )
        )
    )
    with store.engine.connect() as connection:
        rows = [
            (station, aware(began).timestamp(), aware(done).timestamp() if done else None, evse)
            for station, began, done, evse in connection.execute(query)
        ]
        unclosed = sorted({station for station, _, done, _ in rows if done is None})
        # Every later start on those chargers, also of transactions that ended before start.
        later = connection.execute(
            select(events.c.station_id, func.min(events.c.at))
            .where(events.c.station_id.in_(unclosed), events.c.at < end.astimezone(UTC))
            .group_by(events.c.station_id, events.c.transaction_id)
        ).all()
        free = connection.execute(
            select(status.c.station_id, status.c.evse_id, status.c.at).where(
                status.c.station_id.in_(unclosed),
                status.c.status == "Available",
                status.c.evse_id > 0,
                status.c.connector_id > 0,
                status.c.at < end.astimezone(UTC),
            )
        ).all()
    starts: dict[str, list[float]] = {}
    for station, began in later:
        starts.setdefault(station, []).append(aware(began).timestamp())
    first, last = start.timestamp(), end.timestamp()
    found: dict[str, list[_Session]] = {s: [] for s in stations}
    for station, began, done, evse in rows:
        if done is not None:
            until, departed = done, True
        else:
            marks = [t for t in starts.get(station, []) if t > began] + [
                aware(at).timestamp()
                for where, on, at in free
                if where == station
                and (evse is None or on == evse)
                and aware(at).timestamp() > began
            ]
            until, departed = (min(marks), True) if marks else (last, False)
        if until > first:
            found[station].append(_Session(began, min(until, last), departed))
    return found


def _target_kwh(
    store: Store, program: Program, vehicle: Vehicle, started: float, ended: float
) -> float:
    """What the vehicle should have had when a session ended: the target state of charge it
    asked for (ISO 15118), else the owner's departure request, else, as in the simulator,
    the departure floor plus the energy of its scheduled trip leaving within ``TRIP_MATCH``
    of that moment (the floor alone when none does)."""
    needs, asked = db.charging_needs, db.departures
    begin = datetime.fromtimestamp(started, UTC)
    finish = datetime.fromtimestamp(ended, UTC)
    with store.engine.connect() as connection:
        target = connection.scalar(
            select(needs.c.target_soc)
            .where(
                needs.c.station_id == vehicle.evse_id,
                needs.c.at >= begin,
                needs.c.at <= finish,
                needs.c.target_soc.is_not(None),
            )
            .order_by(needs.c.at.desc())
            .limit(1)
        )
        if target is None:
            target = connection.scalar(
                select(asked.c.target_soc)
                .where(
                    asked.c.vehicle_id == vehicle.vehicle_id,
                    asked.c.set_at <= finish,
                    asked.c.depart_at >= begin,
                    asked.c.depart_at <= finish + HOLD,
                    asked.c.target_soc.is_not(None),
                )
                .order_by(asked.c.set_at.desc())
                .limit(1)
            )
    if target is not None:
        return min(float(target) * vehicle.battery_kwh, vehicle.max_energy_kwh)
    floor_kwh = vehicle.departure_floor_soc * vehicle.battery_kwh
    trips = occurrences(vehicle.trips, finish - TRIP_MATCH, finish + TRIP_MATCH, program.timezone)
    near = [t for t in trips if abs(t.depart - finish) <= TRIP_MATCH]
    if near:
        trip = min(near, key=lambda t: abs(t.depart - finish))
        return min(trip.need_kwh + floor_kwh, vehicle.max_energy_kwh)
    return min(floor_kwh, vehicle.max_energy_kwh)


def _metered_building(
    store: Store,
    site: Site,
    edges: NDArray[np.float64],
    profile_load: NDArray[np.float64],
    profile_pv: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    table = db.site_meter
    first = datetime.fromtimestamp(edges[0], UTC) - FRESH
    query = (
        select(table.c.at, table.c.load_kw, table.c.pv_kw)
        .where(
            table.c.site_id == site.site_id,
            table.c.at >= first,
            table.c.at < datetime.fromtimestamp(edges[-1], UTC),
        )
        .order_by(table.c.at)
    )
    with store.engine.connect() as connection:
        rows = [(aware(at).timestamp(), load, pv) for at, load, pv in connection.execute(query)]
    load, pv = profile_load.copy(), profile_pv.copy()
    if not rows:
        return load, pv
    at_s = np.array([r[0] for r in rows])
    for column, values in ((1, load), (2, pv)):
        known = np.array([r[column] is not None for r in rows])
        readings = np.array([r[column] if r[column] is not None else 0.0 for r in rows])
        average, share = held_average(at_s[known], readings[known], edges, FRESH.total_seconds())
        metered = share >= COVERED
        values[metered] = average[metered] / share[metered]
    return load, pv


def _plans_made(store: Store, site_id: str, grid: TimeGrid) -> int:
    plans = db.plans
    with store.engine.connect() as connection:
        return int(
            connection.scalar(
                select(func.count())
                .select_from(plans)
                .where(
                    plans.c.site_id == site_id,
                    plans.c.made_at >= grid.start.astimezone(UTC),
                    plans.c.made_at < grid.end.astimezone(UTC),
                )
            )
            or 0
        )


def _seconds(instants: Sequence[datetime] | pd.Series) -> NDArray[np.float64]:
    return np.array([t.timestamp() for t in instants], dtype=float)


def _calls(event: ProgramEvent, site: Site) -> bool:
    """Called, as settlement counts it: an opted-out site still counts (and missed)."""
    return event.program_id in site.enrollments and (not event.sites or site.site_id in event.sites)


def _dr_event(event: ProgramEvent) -> DREvent:
    return event.as_dr_event()
