"""A live season as interval data: what the chargers, the site meters and the grid signals
recorded, laid on the program's 15-minute grid as the simulator's ``SiteRun``, so the same
KPI functions (``lightson.sim.kpis``) and the same program report measure a live season and
a simulated one (``docs/reports.md``).

How each column is read from the operations database:

- **vehicle power**: the chargers' meter values, each holding until the next one and at most
  ``HOLD`` (as settlement integrates them), averaged over the interval; nothing known is 0 kW.
- **vehicle energy**: the last state-of-charge reading by the end of the interval times the
  battery of the vehicle assigned to that charger (before the first reading: the first one).
- **plugged**: a transaction was open at the middle of the interval.
- **building load and PV**: the site meter where its readings cover at least half of the
  interval, else the site's profile (the live loop's own fallback).
- **islanded**: the stored grid signals (the enter-service delay included) cover at least half
  of the interval. Islanded, nothing is imported; the load served and the critical load not
  served are estimates from what the vehicles and PV gave: the chargers meter the vehicles,
  not the building.
- **departures below target**: at the end of each session, the energy left against the target
  the vehicle asked for over ISO 15118, or the owner's departure request, or else the
  vehicle's departure floor. Trip energy is not measured live (0).

Alongside, ``event_conditions`` tells, for each site called to each event, whether it opted
out, whether a charger faulted (a ``Faulted`` status, or a setpoint the charger rejected) and
whether communication failed (a setpoint unanswered, or a plugged-in charger with no reading).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sqlalchemy import func, select

from lightson.domain.assets import LoadTier, Program, Site, Vehicle
from lightson.domain.demand_response import DREvent
from lightson.domain.time import TimeGrid
from lightson.forecast.profiles import profile_forecast
from lightson.programs.events import EventBook, ProgramEvent
from lightson.reports.program_report import CONDITIONS_FILE, MEASURED
from lightson.services.settlement import HOLD, islanded_spans
from lightson.services.site_meter import FRESH
from lightson.sim.engine import SiteRun
from lightson.sim.kpis import EventPerformance, SiteKpis, site_kpis
from lightson.sim.output import write_run
from lightson.sim.runner import ProgramRun
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware

COVERED = 0.5  # a reading (or signal) that covers this share of an interval speaks for it
FAULT_STATUSES = ("Faulted",)
REFUSED_ANSWERS = ("Rejected",)
UNANSWERED = ("Timeout", "Error")


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
    store: Store, program: Program, book: EventBook, since: datetime, until: datetime
) -> MeasuredSeason:
    """The program's sites from ``since`` to ``until``, as recorded: narrowed to the time the
    database has records for (a season that started late, or a demo's few hours, is not
    padded with months of nothing but profiles)."""
    step = program.step
    since, until = _recorded_span(store, program, book, since, until)
    start = since.astimezone(UTC)
    start -= (start - start.replace(minute=0, second=0, microsecond=0)) % step
    n_steps = max(1, -(-(until.astimezone(UTC) - start) // step))
    grid = TimeGrid(start, n_steps, step)
    called = [
        e
        for e in sorted(book.events.values(), key=lambda e: e.start)
        if e.cancelled_at is None and e.start >= grid.start and e.end <= min(until, grid.end)
    ]
    runs, kpis, performance = [], [], []
    for site in program.sites:
        run = measured_site(store, program, site, grid, called)
        mine = tuple(_dr_event(e) for e in called if _calls(e, site))
        site_kpi, site_events = site_kpis(replace(program, events=mine), run)
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
) -> list[Path]:
    """The measured season written as a run folder (``lightson simulate``'s files, and
    ``event_conditions.csv``), for ``lightson report`` and anyone's own analysis."""
    season = measured_season(store, program, book, since, until)
    written = write_run(season.program, season.run, season.kpis, season.events, out)
    season.conditions.to_csv(out / CONDITIONS_FILE, index=False)
    return [*written, out / CONDITIONS_FILE]


def _recorded_span(
    store: Store, program: Program, book: EventBook, since: datetime, until: datetime
) -> tuple[datetime, datetime]:
    """[since, until) narrowed to the first and last record of the program's chargers
    (meter values, transaction events), site meters, grid signals and the windows of the
    events called in it; unchanged when there is none."""
    stations = [c.evse_id for s in program.sites for c in s.chargers]
    sites = [s.site_id for s in program.sites]
    sources = (
        (db.meter_samples, db.meter_samples.c.station_id, stations),
        (db.transaction_events, db.transaction_events.c.station_id, stations),
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
    for event in book.events.values():
        if event.cancelled_at is None and event.start >= since and event.end <= until:
            found += [event.start, event.end - program.step]
    if not found:
        return since, until
    return max(since, min(found)), min(until, max(found) + program.step)


def measured_site(
    store: Store, program: Program, site: Site, grid: TimeGrid, called: Sequence[ProgramEvent]
) -> SiteRun:
    """One site's interval data over ``grid``, as recorded."""
    edges = _seconds([grid.start + k * grid.step for k in range(grid.n_steps + 1)])
    n, vehicles = grid.n_steps, site.vehicles
    samples = _samples(store, [v.evse_id for v in vehicles], grid)
    sessions = _sessions(store, [v.evse_id for v in vehicles], grid.start, grid.end)
    power = np.zeros((len(vehicles), n))
    energy = np.zeros((len(vehicles), n))
    initial = np.zeros(len(vehicles))
    plugged = np.zeros((len(vehicles), n), dtype=bool)
    short = np.zeros((len(vehicles), n))
    middles = (edges[:-1] + edges[1:]) / 2
    for i, vehicle in enumerate(vehicles):
        readings = samples[samples["station_id"] == vehicle.evse_id]
        kw = readings.dropna(subset=["power_kw"])
        average, _ = held_average(
            _seconds(kw["at"]), kw["power_kw"].to_numpy(float), edges, HOLD.total_seconds()
        )
        power[i] = average
        soc = readings.dropna(subset=["soc"])
        soc_s, soc_kwh = _seconds(soc["at"]), soc["soc"].to_numpy(float) * vehicle.battery_kwh
        energy[i] = _last_by(soc_s, soc_kwh, edges[1:], vehicle.initial_soc * vehicle.battery_kwh)
        initial[i] = _last_by(soc_s, soc_kwh, edges[:1], energy[i][0])[0]
        for started, ended in sessions.get(vehicle.evse_id, []):
            plugged[i] |= (middles >= started) & (middles < ended)
            if ended < edges[-1]:
                k = int(np.searchsorted(edges, ended, side="right")) - 1
                target = _target_kwh(store, vehicle, started, ended)
                left = _last_by(soc_s, soc_kwh, np.array([ended]), np.nan)[0]
                if not np.isnan(left):
                    short[i, k] = max(target - left, 0.0)
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
    in_outage = islanded_share >= COVERED
    vehicles_kw = power.sum(axis=0)
    supply = pv - vehicles_kw  # what PV and the vehicles gave the building
    served = np.where(in_outage, np.clip(supply, 0.0, load), load)
    net = np.where(in_outage, 0.0, load - pv + vehicles_kw)
    in_event = np.zeros(n, dtype=bool)
    for event in called:
        if _calls(event, site):
            first, end = grid.first_index_from(event.start), grid.first_index_from(event.end)
            in_event[max(first, 0) : max(end, 0)] = True
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


def held_average(
    at_s: NDArray[np.float64],
    values: NDArray[np.float64],
    edges_s: NDArray[np.float64],
    hold_s: float,
    until: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Readings taken at ``at_s`` (seconds, sorted) that each hold until the next one, at most
    ``hold_s`` (or until ``until``, when given): their average over each interval between
    ``edges_s`` (time not covered counts as 0) and the share of each interval they cover."""
    n = len(edges_s) - 1
    if len(at_s) == 0:
        return np.zeros(n), np.zeros(n)
    ends = np.minimum(np.append(at_s[1:], np.inf), at_s + hold_s) if until is None else until
    ends = np.maximum(ends, at_s)
    lengths = ends - at_s

    def integral(weights: NDArray[np.float64]) -> NDArray[np.float64]:
        before = np.concatenate([[0.0], np.cumsum(weights * lengths)])
        j = np.searchsorted(at_s, edges_s, side="right") - 1
        inside = np.clip(edges_s - at_s[np.maximum(j, 0)], 0.0, lengths[np.maximum(j, 0)])
        cumulative = before[np.maximum(j, 0)] + weights[np.maximum(j, 0)] * inside
        return np.where(j >= 0, cumulative, 0.0)

    width = np.diff(edges_s)
    total = np.diff(integral(np.asarray(values, dtype=float)))
    covered = np.diff(integral(np.ones(len(at_s))))
    return total / width, covered / width


def event_conditions(
    store: Store, program: Program, called: Sequence[ProgramEvent]
) -> pd.DataFrame:
    """Per site called to each event: opted out, chargers that faulted, chargers silent."""
    rows = []
    for event in called:
        window = (event.start.astimezone(UTC), event.end.astimezone(UTC))
        for site in program.sites:
            if event.program_id not in site.enrollments or not _calls(event, site):
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
    """Stations that faulted within [start, end), and stations that did not communicate: a
    setpoint unanswered, or a transaction open in the window with no meter value in it."""
    if not stations:
        return set(), set()
    status, sent, samples = db.evse_status, db.setpoints_sent, db.meter_samples
    with store.engine.connect() as connection:
        faulted = set(
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
                select(samples.c.station_id).where(
                    samples.c.station_id.in_(stations), samples.c.at >= start, samples.c.at < end
                )
            )
        )
    faulted |= {s for s, answer in answers if answer in REFUSED_ANSWERS}
    silent = {s for s, answer in answers if answer in UNANSWERED}
    sessions = _sessions(store, stations, start, end)
    opened = {s for s, spans in sessions.items() if spans}
    return faulted, silent | (opened - heard)


def _samples(store: Store, stations: Sequence[str], grid: TimeGrid) -> pd.DataFrame:
    samples = db.meter_samples
    query = (
        select(samples.c.station_id, samples.c.at, samples.c.power_kw, samples.c.soc)
        .where(
            samples.c.station_id.in_(stations),
            samples.c.at >= (grid.start - HOLD).astimezone(UTC),
            samples.c.at < grid.end.astimezone(UTC),
        )
        .order_by(samples.c.station_id, samples.c.at)
    )
    with store.engine.connect() as connection:
        rows = [(s, aware(at), kw, soc) for s, at, kw, soc in connection.execute(query)]
    return pd.DataFrame(rows, columns=["station_id", "at", "power_kw", "soc"])


def _sessions(
    store: Store, stations: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[tuple[float, float]]]:
    """Each station's transactions that overlap [start, end), as (start, end) seconds; one
    still open ends at ``end``."""
    events = db.transaction_events
    ended = func.max(events.c.at).filter(events.c.event_type == "Ended")
    query = (
        select(events.c.station_id, func.min(events.c.at), ended)
        .where(events.c.station_id.in_(stations), events.c.at < end.astimezone(UTC))
        .group_by(events.c.station_id, events.c.transaction_id)
    )
    first, last = start.timestamp(), end.timestamp()
    found: dict[str, list[tuple[float, float]]] = {s: [] for s in stations}
    with store.engine.connect() as connection:
        for station, started, finished in connection.execute(query):
            until = aware(finished).timestamp() if finished is not None else last
            if until > first:
                found[station].append((aware(started).timestamp(), min(until, last)))
    return found


def _target_kwh(store: Store, vehicle: Vehicle, started: float, ended: float) -> float:
    """What the vehicle should have had at the end of a session: the target state of charge
    it asked for (ISO 15118), else the owner's departure request, else its departure floor."""
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
    soc = float(target) if target is not None else vehicle.departure_floor_soc
    return min(soc * vehicle.battery_kwh, vehicle.max_energy_kwh)


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


def _last_by(
    at_s: NDArray[np.float64],
    values: NDArray[np.float64],
    instants: NDArray[np.float64],
    default: float,
) -> NDArray[np.float64]:
    """The last value read before each instant (the first one before any; ``default`` when
    there is none at all)."""
    if len(at_s) == 0:
        return np.full(len(instants), default)
    j = np.searchsorted(at_s, instants, side="left") - 1
    return np.asarray(values, dtype=float)[np.maximum(j, 0)]


def _seconds(instants: Sequence[datetime] | pd.Series) -> NDArray[np.float64]:
    return np.array([t.timestamp() for t in instants], dtype=float)


def _calls(event: ProgramEvent, site: Site) -> bool:
    """Called, as settlement counts it: an opted-out site still counts (and missed)."""
    return event.program_id in site.enrollments and (not event.sites or site.site_id in event.sites)


def _dr_event(event: ProgramEvent) -> DREvent:
    return event.as_dr_event()
