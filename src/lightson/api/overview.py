"""``GET /api/overview``: the program's state for the operator's console (``docs/operations.md``).

One document the overview page draws at every refresh, in the order an operator reads it
during an event or a storm:

- ``running``: the demand-response event running now (the events of the same window taken
  together: the program's events call homes and C&I sites at once), with ``kw_now`` (net
  discharge the vehicles of the called sites were set to at their last tick), ``kw_average``
  (net discharge metered since the start, measured as settlement measures it) and
  ``minutes_left``, against ``expected_kw`` (the program expects more than 1 MW in an event);
- ``islanded``: the sites islanded now, least backup first, with their hours of backup left;
- ``faults``: first the sites no live worker reports (``lightson api``: their worker is
  gone and none has taken them over yet; kind ``no-controller`` with ``age_s`` of their last
  status and the ``worker`` that wrote it), then sites on the charge-only default or whose
  plan is stale (the site did not re-plan when due), chargers that refused a setpoint or
  could not be reached at the last tick, and silent chargers (a vehicle plugged in, no
  reading for longer than the loop waits);
- ``day``: the program's power over the program-time day in ``step_minutes`` intervals,
  ``grid_kw`` (+ import), ``charge_kw`` (≥ 0) and ``discharge_kw`` (≥ 0, out of the vehicles),
  with the day's event windows (``events``) to shade. Vehicle power is what the chargers
  metered (a reading holds for 15 minutes at most); building load and PV are the sites'
  profiles; an islanded site imports nothing.

Access as for the other routes: program staff see every site, an owner their own sites, a
utility only aggregates over its territory (``islanded`` without backup hours, no
``faults``, and no power figure over fewer sites than ``min_sites_in_aggregates``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import numpy as np
from fastapi import APIRouter
from numpy.typing import NDArray
from sqlalchemy import select

from lightson.api.deps import MIN_HOMES_IN_TOTALS, Operations, Ops, Who, scope, visible_site
from lightson.api.documents import too_few, unreported_status
from lightson.domain.assets import Program, Site, SiteKind
from lightson.domain.time import TimeGrid
from lightson.forecast.profiles import profile_forecast
from lightson.programs.events import EventState, ProgramEvent
from lightson.reports.program_report import EXPECTED_EVENT_KW
from lightson.services.access import Principal, Role
from lightson.services.plans import latest_plan
from lightson.services.settlement import event_performance, islanded_spans
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware
from lightson.store.live import station_states

router = APIRouter()

HOLD = timedelta(minutes=15)  # a meter value says nothing about power longer after it
ACCEPTED = frozenset({"Accepted", "idle", "held"})  # a charger's answers that are no fault


@router.get("/api/sites/{site_id}/plan/status", tags=["sites"])
def plan_status(site_id: str, who: Who, ops: Ops) -> dict[str, Any]:
    """Whether the site's plan is fresh: ``age_minutes`` since the start of the plan its
    controller follows (or the newest stored one), and ``stale`` once that is past
    ``due_minutes``, the re-plan period plus one tick, by more than one more tick (the
    controller re-plans when its plan is ``replan_every`` old, at its next tick). A site's
    detail: admin and its owner, as ``GET /api/sites/{id}/plan``."""
    visible_site(ops, who, site_id)
    start, due, stale = _plan_age(ops, site_id, ops.clock.now())
    age = None if start is None else ops.clock.now() - start
    return {
        "site_id": site_id,
        "start": None if start is None else start.isoformat(),
        "age_minutes": None if age is None else round(age.total_seconds() / 60, 1),
        "due_minutes": due.total_seconds() / 60,
        "stale": stale,
        "islanded": ops.live.islanded(site_id),
    }


def _plan_age(
    ops: Operations, site_id: str, now: datetime
) -> tuple[datetime | None, timedelta, bool]:
    """The start of the plan the site follows (``None``: none), when it is due for a new
    one, and whether it is stale: older than that by more than one tick."""
    current = ops.live.plan(site_id)
    start = current.start if current is not None else None
    if start is None:
        stored = latest_plan(ops.store, site_id, now)
        start = datetime.fromisoformat(stored["start"]) if stored else None
    controller = ops.live._site(site_id).controller  # for its re-plan period
    due = getattr(controller, "replan_every", ops.program.step) + ops.live.every
    stale = start is not None and now - start > due + ops.live.every
    return start, due, stale


@router.get("/api/overview", tags=["program"])
def overview(who: Who, ops: Ops) -> dict[str, Any]:
    """The program now: the running event's progress, islanded sites, faults, and the day's
    power (see the module's documentation for each field and who sees what)."""
    now = ops.clock.now()
    sites = scope(ops, who)
    powered, withheld = _powered(ops, who, sites)
    personal = who.role is not Role.UTILITY
    return {
        "now": now.isoformat(),
        "timezone": str(ops.program.timezone),
        "expected_kw": EXPECTED_EVENT_KW,
        "power_withheld": withheld,
        "running": _running(ops, sites, powered, now),
        "islanded": _islanded(ops, sites, personal),
        "faults": _faults(ops, sites, now) if personal else [],
        "day": _day(ops, sites, powered, now),
    }


def _powered(ops: Operations, who: Principal, sites: Sequence[Site]) -> tuple[list[Site], Any]:
    """The sites whose power the caller's figures add up, as ``GET /api/program`` counts
    them, and why there is no figure (``None``: there is)."""
    if who.role is not Role.UTILITY:
        return list(sites), None
    homes = sum(s.kind is SiteKind.HOME for s in sites)
    powered = [s for s in sites if s.kind is not SiteKind.HOME or homes >= MIN_HOMES_IN_TOTALS]
    if len(powered) < ops.min_sites_in_aggregates:
        return [], too_few(len(powered), ops.min_sites_in_aggregates)
    return powered, None


def _events_today(ops: Operations, sites: Sequence[Site], day: TimeGrid) -> list[ProgramEvent]:
    end = day.start + day.n_steps * day.step
    return sorted(
        (
            e
            for e in ops.events().book().events.values()
            if e.cancelled_at is None
            and e.start < end
            and e.end > day.start
            and any(e.program_id in s.enrollments and e.calls(s.site_id) for s in sites)
        ),
        key=lambda e: (e.start, e.event_id),
    )


def _running(
    ops: Operations, sites: Sequence[Site], powered: Sequence[Site], now: datetime
) -> dict[str, Any] | None:
    """The events running now that call one of ``sites``, together; power over ``powered``."""
    running = [
        e
        for e in ops.events().book().events.values()
        if e.state(now) is EventState.ACTIVE
        and any(e.program_id in s.enrollments and e.calls(s.site_id) for s in sites)
    ]
    if not running:
        return None
    rules = {r.program_id: r for r in ops.events().rules}
    counted = {s.site_id for s in powered}
    called: set[str] = set()
    average_kw = 0.0
    measured = 0
    for event in running:
        for line in event_performance(
            ops.store, ops.program, event, rules.get(event.program_id), now
        ):
            if line.site_id not in counted or line.opted_out:
                continue
            called.add(line.site_id)
            if line.kw is not None:
                average_kw += line.kw
                measured += 1
    end = max(e.end for e in running)
    power = bool(powered)
    return {
        "event_ids": sorted(e.event_id for e in running),
        "program_ids": sorted({e.program_id for e in running}),
        "start": min(e.start for e in running).isoformat(),
        "end": end.isoformat(),
        "minutes_left": round((end - now).total_seconds() / 60),
        "sites_called": len(called),
        "sites_measured": measured,
        "kw_now": round(-_vehicles_kw(ops, called), 1) if power else None,
        "kw_average": round(average_kw, 1) if power else None,
    }


def _vehicles_kw(ops: Operations, site_ids: set[str]) -> float:
    """The vehicles' power at the sites' last ticks (a site no controller reports: none)."""
    statuses = (ops.live.status.get(s) for s in site_ids)
    return sum(status.vehicles_kw for status in statuses if status is not None)


def _islanded(ops: Operations, sites: Sequence[Site], personal: bool) -> list[dict[str, Any]]:
    """The sites islanded now, least critical backup first (a utility: no backup hours; a
    site no controller reports: none either, and it comes first)."""
    lines = []
    for site in sites:
        if not ops.live.islanded(site.site_id):
            continue
        status = ops.live.status.get(site.site_id)
        line: dict[str, Any] = {"site_id": site.site_id, "kind": site.kind.value}
        if personal and status is not None:
            backup = ops.live.backup(site.site_id)
            line |= {
                "horizon_h": backup.horizon_h,
                "backup_hours": {t.value: round(h, 2) for t, h in backup.hours.items()},
                "tier": status.tier,
                "load_kw": round(status.load_kw, 2),
                "vehicles_kw": round(status.vehicles_kw, 2),
                "critical_unserved_kw": round(status.critical_unserved_kw, 2),
            }
        lines.append(line)
    return sorted(
        lines, key=lambda x: (x.get("backup_hours", {}).get("critical", 0.0), x["site_id"])
    )


def _faults(ops: Operations, sites: Sequence[Site], now: datetime) -> list[dict[str, Any]]:
    """What needs a look: first the sites no live worker reports (``lightson api``: kind
    ``no-controller``, with ``age_s`` of the last status and its ``worker``), then a site
    on the charge-only default, a setpoint a charger did not accept, a charger with a
    vehicle plugged in that has not reported for ``stale_after``."""
    unreported: list[dict[str, Any]] = []  # listed first: nothing controls these sites
    faults: list[dict[str, Any]] = []
    states = station_states(ops.store, [c.evse_id for s in sites for c in s.chargers])
    for site in sites:
        status = ops.live.status.get(site.site_id)
        if status is None:
            shown = unreported_status(ops.last_report(site.site_id))
            unreported.append(
                _fault(site, "no-controller", "", shown["reason"])
                | {"age_s": shown["age_s"], "worker": shown["worker"]}
            )
        elif status.mode == "fallback":
            faults.append(_fault(site, "fallback", ", ".join(status.fallback), status.reason))
        for evse_id, answer in sorted(status.answers.items() if status else ()):
            if answer.startswith("not "):  # "not sent: ...", "not cleared: ...": offline
                faults.append(_fault(site, "unreachable", evse_id, answer))
            elif answer not in ACCEPTED:
                faults.append(_fault(site, "refused", evse_id, f"setpoint answered {answer}"))
        start, _, stale = _plan_age(ops, site.site_id, now)
        if stale and start is not None and not ops.live.islanded(site.site_id):
            age_min = (now - start).total_seconds() / 60
            faults.append(_fault(site, "stale-plan", "", f"plan {age_min:.0f} min old"))
        for charger in site.chargers:
            state = states.get(charger.evse_id)
            if state is None or not state.plugged:
                continue
            last = max((t for t in (state.soc_at, state.power_at) if t is not None), default=None)
            if last is None or now - last > ops.live.stale_after:
                silent = (
                    "never" if last is None else f"for {(now - last).total_seconds() / 60:.0f} min"
                )
                faults.append(
                    _fault(site, "silent", charger.evse_id, f"vehicle plugged, no reading {silent}")
                )
    return unreported + faults


def _fault(site: Site, kind: str, evse_ids: str, message: str) -> dict[str, Any]:
    return {"site_id": site.site_id, "kind": kind, "evse_ids": evse_ids, "message": message}


def _day(
    ops: Operations, sites: Sequence[Site], powered: Sequence[Site], now: datetime
) -> dict[str, Any]:
    """The program-time day of ``now`` in the program's steps: power up to ``now`` (later
    intervals ``None``) and the events that call one of ``sites`` that day."""
    program = ops.program
    grid = day_grid(program, now)
    events = _events_today(ops, sites, grid)
    document: dict[str, Any] = {
        "start": grid.start.isoformat(),
        "step_minutes": grid.step.total_seconds() / 60,
        "events": [
            {"event_id": e.event_id, "start": e.start.isoformat(), "end": e.end.isoformat()}
            for e in events
        ],
    }
    if not powered:
        return document | {"grid_kw": None, "charge_kw": None, "discharge_kw": None}
    done = min(grid.n_steps, max(0, int((now - grid.start) / grid.step) + 1))
    charge, discharge, grid_kw = day_power(ops.store, program, powered, grid, now)
    return document | {
        name: [round(float(x), 1) for x in values[:done]] + [None] * (grid.n_steps - done)
        for name, values in (
            ("grid_kw", grid_kw),
            ("charge_kw", charge),
            ("discharge_kw", discharge),
        )
    }


def day_grid(program: Program, now: datetime) -> TimeGrid:
    """The program-time day of ``now`` (23, 24 or 25 hours) in the program's steps."""
    zone = program.timezone
    day = now.astimezone(zone).date()
    midnight = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    following = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    return TimeGrid(midnight, int((following - midnight) / program.step), program.step)


def day_power(
    store: Store, program: Program, sites: Sequence[Site], grid: TimeGrid, now: datetime
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per interval of ``grid``: vehicle charge (≥ 0), vehicle discharge (≥ 0) and grid
    import (+; site load − PV + vehicles, nothing while islanded) over ``sites``, in kW
    averaged over the interval, from the readings stored up to ``now`` (the intervals after
    it are zero)."""
    charge = np.zeros(grid.n_steps)
    discharge = np.zeros(grid.n_steps)
    grid_kw = np.zeros(grid.n_steps)
    end = min(grid.start + grid.n_steps * grid.step, now)
    if end <= grid.start:
        return charge, discharge, grid_kw
    elapsed = _shares(grid, grid.start, end)
    per_elapsed = np.divide(1.0, elapsed, out=np.zeros(grid.n_steps), where=elapsed > 0)
    power = _charger_power(store, [c.evse_id for s in sites for c in s.chargers], grid, end)
    with_signals = _sites_with_grid_signals(store)
    for site in sites:
        vehicles = np.zeros(grid.n_steps)
        for charger in site.chargers:
            charger_kw = power.get(charger.evse_id, np.zeros(grid.n_steps)) * per_elapsed
            vehicles += charger_kw
            charge += np.clip(charger_kw, 0.0, None)
            discharge += np.clip(-charger_kw, 0.0, None)
        forecast = profile_forecast(program, site, grid)
        on_grid = elapsed.copy()  # the share of each elapsed interval the site was on grid
        if site.site_id in with_signals:
            for left, right in islanded_spans(store, site.site_id, grid.start, end):
                on_grid -= _shares(grid, left, right)
        grid_kw += (forecast.load_kw - forecast.pv_kw + vehicles) * on_grid * per_elapsed
    return charge, discharge, grid_kw


def _sites_with_grid_signals(store: Store) -> set[str]:
    with store.engine.connect() as connection:
        return set(connection.scalars(select(db.grid_signals.c.site_id).distinct()))


def _charger_power(
    store: Store, station_ids: list[str], grid: TimeGrid, end: datetime
) -> dict[str, NDArray[np.float64]]:
    """Each station's metered power (+ charging) averaged over each interval of ``grid``
    before ``end`` (a reading holds until the next one, for ``HOLD`` at most)."""
    samples = db.meter_samples
    query = (
        select(samples.c.station_id, samples.c.at, samples.c.power_kw)
        .where(
            samples.c.station_id.in_(station_ids),
            samples.c.at >= (grid.start - HOLD).astimezone(UTC),
            samples.c.at < end.astimezone(UTC),
            samples.c.power_kw.is_not(None),
        )
        .order_by(samples.c.station_id, samples.c.at)
    )
    with store.engine.connect() as connection:
        rows = [(s, aware(at), float(kw)) for s, at, kw in connection.execute(query)]
    powers: dict[str, NDArray[np.float64]] = {}
    for i, (station, at, kw) in enumerate(rows):
        following = rows[i + 1] if i + 1 < len(rows) and rows[i + 1][0] == station else None
        until = min(following[1] if following else end, at + HOLD, end)
        power = powers.setdefault(station, np.zeros(grid.n_steps))
        power += kw * _shares(grid, max(at, grid.start), until)
    return powers


def _shares(grid: TimeGrid, left: datetime, right: datetime) -> NDArray[np.float64]:
    """The share of each interval of ``grid`` that [left, right) covers."""
    shares = np.zeros(grid.n_steps)
    if right <= left:
        return shares
    step_s = grid.step.total_seconds()
    first = max(0, int((left - grid.start).total_seconds() // step_s))
    last = min(grid.n_steps - 1, int((right - grid.start).total_seconds() // step_s))
    for t in range(first, last + 1):
        start = grid.start + t * grid.step
        overlap = (min(right, start + grid.step) - max(left, start)).total_seconds()
        shares[t] = max(overlap, 0.0) / step_s
    return shares
