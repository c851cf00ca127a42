"""Key figures of a simulated (or, later, metered) site from its interval data.

One implementation, used by the simulator's summary and (later) the reports and the API.
Signs as everywhere: vehicle power + charges; site net + imports.

- ``discharged_to_grid_kwh``: the part of vehicle discharge that left the site, i.e. per
  interval ``min(discharge, export)``; the rest served the building.
- Bill: energy on imports at the tariff price (exports credited at the export credit), the
  demand charge on each calendar month's peak import prorated by the share of the month run,
  and the fixed charge prorated by days.
- Net cost = bill + degradation − DR payment − the value of the energy the batteries hold
  at the end beyond what they held at the start (at the mean import price ÷ charge
  efficiency, what it costs to put back), so a controller can't look cheap by draining them.
- Outages: hours islanded, hours the whole load was served, load shed (kWh) and the
  critical-tier energy that went unserved.
- Demand response (storage rule, ``lightson.programs.settlement.event_kw``): an event's
  performance is the net discharge of the V2X equipment averaged over the event (kW), floored
  at 0 (a missed event counts 0 kW) and capped at the building load where the site may not
  export. The
  payment credited to the run is ``rate × Σ kW / N``, N the program's ``expected_events``
  (set it to the season's real count in the program file, as ``beverly-2021`` does): what
  these events add to a season-average payment. Steps spent islanded in an outage deliver
  nothing to an event.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from lightson.domain.assets import Program, Site
from lightson.domain.demand_response import DREvent
from lightson.domain.failures import FailureCause
from lightson.domain.time import TimeGrid
from lightson.programs.settlement import Metered, event_kw
from lightson.sim.engine import SiteRun
from lightson.sim.failures import CAUSE_CODES

AVERAGE_DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True)
class EventPerformance:
    """One site in one event: the kW delivered (storage rule), the plugged-in share and the
    kW lost to each failure cause (``lost_kw``, below)."""

    event_id: str
    program_id: str
    site_id: str
    delivered_kw: float
    plugged_share: float
    lost_early_departure_kw: float = 0.0
    lost_late_plug_in_kw: float = 0.0
    lost_route_kw: float = 0.0
    lost_fault_kw: float = 0.0
    lost_comms_kw: float = 0.0
    lost_opt_out_kw: float = 0.0

    def lost_kw(self, cause: FailureCause) -> float:
        return float(getattr(self, f"lost_{cause.value}_kw"))


@dataclass(frozen=True)
class SiteKpis:
    site_id: str
    kind: str
    controller: str
    days: float
    charged_kwh: float
    discharged_kwh: float
    discharged_to_building_kwh: float
    discharged_to_grid_kwh: float
    import_kwh: float
    export_kwh: float
    peak_import_kw: float
    energy_cost_usd: float
    demand_cost_usd: float
    fixed_cost_usd: float
    bill_usd: float
    degradation_usd: float
    dr_events: int
    dr_average_kw: float
    dr_payment_usd: float
    stored_energy_change_kwh: float
    stored_energy_value_usd: float
    net_cost_usd: float
    departures_below_target: int
    departure_shortfall_kwh: float
    unserved_trip_kwh: float
    event_plugged_share: float
    outage_hours: float
    outage_hours_full_load: float
    load_shed_kwh: float
    critical_unserved_kwh: float
    safety_interventions: int
    plans_made: int
    # Event kW lost to each failure cause, summed over the site's events (lost_kw, below).
    lost_event_kw_early_departure: float = 0.0
    lost_event_kw_late_plug_in: float = 0.0
    lost_event_kw_route: float = 0.0
    lost_event_kw_fault: float = 0.0
    lost_event_kw_comms: float = 0.0
    lost_event_kw_opt_out: float = 0.0
    events_opted_out: int = 0

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def site_kpis(program: Program, run: SiteRun) -> tuple[SiteKpis, list[EventPerformance]]:
    site = program.site(run.site_id)
    dt = run.step_h
    starts = [run.start + k * run.step for k in range(run.n_steps)]
    local = [s.astimezone(program.timezone) for s in starts]
    charge_kw = np.clip(run.power_kw, 0.0, None)
    discharge_kw = np.clip(-run.power_kw, 0.0, None)
    imports_kw, exports_kw = np.clip(run.net_kw, 0.0, None), np.clip(-run.net_kw, 0.0, None)
    to_grid_kw = np.minimum(discharge_kw.sum(axis=0), exports_kw)
    price = site.tariff.import_price_usd_per_kwh(local)
    energy_usd = (
        float(price @ imports_kw - site.tariff.export_credit_usd_per_kwh * exports_kw.sum()) * dt
    )
    demand_usd = _demand_usd(site.tariff.demand_usd_per_kw_month, run, local)
    days = run.n_steps * dt / 24
    fixed_usd = site.tariff.fixed_usd_per_month * days / AVERAGE_DAYS_PER_MONTH
    degradation = sum(
        v.degradation_usd_per_kwh / v.discharge_efficiency * float(discharge_kw[i].sum()) * dt
        for i, v in enumerate(site.vehicles)
    )
    events = _event_performance(program, run)
    payment = dr_payment_usd(program, events)
    bill = energy_usd + demand_usd + fixed_usd
    initial_kwh = (
        [float(e) for e in run.initial_energy_kwh]
        if run.initial_energy_kwh is not None
        else [v.initial_soc * v.battery_kwh for v in site.vehicles]
    )
    change_kwh = (
        [float(run.energy_kwh[i, -1]) - e0 for i, e0 in enumerate(initial_kwh)]
        if run.n_steps
        else []
    )
    stored_value = sum(
        float(price.mean()) / v.charge_efficiency * kwh
        for v, kwh in zip(site.vehicles, change_kwh, strict=True)
    )
    shorts = run.departure_short_kwh[run.departure_short_kwh > 1e-6]
    kpis = SiteKpis(
        site_id=site.site_id,
        kind=site.kind.value,
        controller=run.controller,
        days=days,
        charged_kwh=float(charge_kw.sum()) * dt,
        discharged_kwh=float(discharge_kw.sum()) * dt,
        discharged_to_building_kwh=float(discharge_kw.sum() - to_grid_kw.sum()) * dt,
        discharged_to_grid_kwh=float(to_grid_kw.sum()) * dt,
        import_kwh=float(imports_kw.sum()) * dt,
        export_kwh=float(exports_kw.sum()) * dt,
        peak_import_kw=float(imports_kw.max(initial=0.0)),
        energy_cost_usd=energy_usd,
        demand_cost_usd=demand_usd,
        fixed_cost_usd=fixed_usd,
        bill_usd=bill,
        degradation_usd=degradation,
        dr_events=len(events),
        dr_average_kw=float(np.mean([e.delivered_kw for e in events])) if events else 0.0,
        dr_payment_usd=payment,
        stored_energy_change_kwh=sum(change_kwh),
        stored_energy_value_usd=stored_value,
        net_cost_usd=bill + degradation - payment - stored_value,
        departures_below_target=int(shorts.size),
        departure_shortfall_kwh=float(shorts.sum()),
        unserved_trip_kwh=float(run.unserved_trip_kwh.sum()),
        event_plugged_share=float(run.plugged[:, run.in_event].mean())
        if run.in_event.any() and run.plugged.size
        else 0.0,
        outage_hours=float(run.in_outage.sum()) * dt,
        outage_hours_full_load=float(
            (run.in_outage & (run.load_served_kw >= run.load_kw - 1e-6)).sum()
        )
        * dt,
        load_shed_kwh=float((run.load_kw - run.load_served_kw)[run.in_outage].sum()) * dt,
        critical_unserved_kwh=float(run.critical_unserved_kw.sum()) * dt,
        safety_interventions=run.interventions,
        plans_made=run.plans_made,
        events_opted_out=sum(e.event_id in run.opted_out for e in events),
        **{
            f"lost_event_kw_{cause.value}": sum(e.lost_kw(cause) for e in events)
            for cause in FailureCause
        },
    )
    return kpis, events


def dr_payment_usd(program: Program, events: Sequence[EventPerformance]) -> float:
    """What the events are worth: each program's rate per kW-season × the kW delivered,
    spread over the events the season expects."""
    return sum(
        program.dr_program(e.program_id).rate_usd_per_kw_season
        * e.delivered_kw
        / program.dr_program(e.program_id).expected_events
        for e in events
    )


def _demand_usd(rate: float, run: SiteRun, local: list[datetime]) -> float:
    """Demand charge on each calendar month's peak import, prorated by the share of the
    month the run covers, so runs of different lengths and start dates compare."""
    if rate <= 0:
        return 0.0
    peaks: dict[tuple[int, int], float] = defaultdict(float)
    steps: dict[tuple[int, int], int] = defaultdict(int)
    for k, instant in enumerate(local):
        key = (instant.year, instant.month)
        peaks[key] = max(peaks[key], float(run.net_kw[k]))
        steps[key] += 1
    per_day = 24 / run.step_h
    return rate * sum(
        peak * min(1.0, steps[key] / (per_day * calendar.monthrange(*key)[1]))
        for key, peak in peaks.items()
    )


def _event_performance(program: Program, run: SiteRun) -> list[EventPerformance]:
    site = program.site(run.site_id)
    enrolled = [e for e in program.events if e.program_id in site.enrollments]
    vehicles_kw = run.power_kw.sum(axis=0) if run.power_kw.size else np.zeros(run.n_steps)
    meters = event_meters(enrolled, run.start, run.step, vehicles_kw, run.load_kw, run.in_outage)
    result = []
    for event in enrolled:
        meter = meters.get(event.event_id)
        if meter is None:
            continue
        window = _window(run, event)
        assert window is not None
        hours = (event.end - event.start).total_seconds() / 3600
        plugged = float(run.plugged[:, window].mean()) if run.plugged.size else 0.0
        opted_out = event.event_id in run.opted_out
        delivered = (
            0.0 if opted_out else event_kw(meter, hours, site.export_permitted, cap_to_load=True)
        )
        lost = lost_kw(site, run, window, opted_out)
        result.append(
            EventPerformance(
                event.event_id,
                event.program_id,
                site.site_id,
                delivered,
                plugged,
                **{f"lost_{cause.value}_kw": kw for cause, kw in lost.items()},
            )
        )
    return result


def event_conditions(program: Program, run: SiteRun) -> list[dict[str, str | int | bool]]:
    """Per event the run covers, what the live season's ``event_conditions.csv`` says
    (``services.measured``): opted out, chargers faulted and chargers silent (a charger counts
    when its fault or link loss overlapped the event while its vehicle was there)."""
    site = program.site(run.site_id)
    fault, comms = CAUSE_CODES[FailureCause.FAULT], CAUSE_CODES[FailureCause.COMMS]
    rows: list[dict[str, str | int | bool]] = []
    for event in program.events:
        window = _window(run, event) if event.program_id in site.enrollments else None
        if window is None:
            continue
        codes = (
            run.failure_cause[:, window]
            if run.failure_cause is not None
            else np.zeros((len(site.vehicles), 0), dtype=np.int8)
        )
        faulted = {i for i in range(codes.shape[0]) if (codes[i] == fault).any()}
        silent = {i for i in range(codes.shape[0]) if (codes[i] == comms).any()} - faulted
        rows.append(
            {
                "event_id": event.event_id,
                "site_id": site.site_id,
                "opted_out": event.event_id in run.opted_out,
                "faulted_chargers": len(faulted),
                "silent_chargers": len(silent),
            }
        )
    return rows


def lost_kw(site: Site, run: SiteRun, window: slice, opted_out: bool) -> dict[FailureCause, float]:
    """Event kW lost to each failure cause: the discharge capacity of the vehicles a cause
    took out of the event, averaged over the event like the delivered kW.

    A vehicle's capacity is ``min(vehicle, charger)`` maximum discharge (0 if it can't give
    V2X). A vehicle-step counts for the cause coded in ``run.failure_cause`` (away early, not
    yet plugged in after a trip, on a summer route, its charger faulted or silent); in an event
    the site opted out of, every vehicle at a working charger counts for the opt-out. Steps
    islanded count nothing (as for the delivered kW); where the site may not export, a step's
    lost kW are capped at what the building still drew (load − discharge), shared in
    proportion, since more could not have been delivered."""
    n_steps = window.stop - window.start
    result = dict.fromkeys(FailureCause, 0.0)
    if (run.failure_cause is None and not opted_out) or not site.vehicles or n_steps <= 0:
        return result
    capacity = np.array(
        [
            min(v.max_discharge_kw, site.charger(v.evse_id).max_discharge_kw)
            if v.v2x_capable
            else 0.0
            for v in site.vehicles
        ]
    )
    codes = (
        run.failure_cause[:, window]
        if run.failure_cause is not None
        else np.zeros((len(site.vehicles), n_steps), dtype=np.int8)
    )
    counted = ~np.asarray(run.in_outage[window], dtype=bool)
    per_step = {}
    for cause in FailureCause:
        if cause is FailureCause.OPT_OUT:
            mask = (
                (codes == 0) & run.plugged[:, window] if opted_out else np.zeros_like(codes, bool)
            )
        else:
            mask = codes == CAUSE_CODES[cause]
        per_step[cause] = (capacity[:, None] * mask).sum(axis=0) * counted
    if not site.export_permitted:
        discharge = np.clip(-run.power_kw[:, window].sum(axis=0), 0.0, None)
        room = np.clip(run.load_kw[window] - discharge, 0.0, None)
        total = sum(per_step.values())
        scale = np.where(total > room, room / np.where(total > 0, total, 1.0), 1.0)
        per_step = {c: kw * scale for c, kw in per_step.items()}
    return {cause: float(kw.sum()) / n_steps for cause, kw in per_step.items()}


def event_meters(
    events: Sequence[DREvent],
    start: datetime,
    step: timedelta,
    vehicles_kw: NDArray[np.float64],
    load_kw: NDArray[np.float64],
    in_outage: NDArray[np.bool_],
) -> dict[str, Metered]:
    """What a site's interval data say about each event it fully covers: the vehicles' net
    discharge and the building load (kWh) over the window. Steps spent islanded are left out:
    power given in a blackout served the building, not the event. Used by the run's KPIs and by
    ``lightson settle`` alike."""
    n_steps = len(vehicles_kw)
    grid = TimeGrid(start, max(n_steps, 1), step)
    step_h = step.total_seconds() / 3600
    meters = {}
    for event in events:
        first, last = grid.first_index_from(event.start), grid.first_index_from(event.end)
        if first < 0 or last > n_steps or last <= first:
            continue
        counted = ~np.asarray(in_outage[first:last], dtype=bool)
        meters[event.event_id] = Metered(
            net_discharge_kwh=float(-vehicles_kw[first:last][counted].sum()) * step_h,
            building_load_kwh=float(load_kw[first:last][counted].sum()) * step_h,
        )
    return meters


def _window(run: SiteRun, event: DREvent) -> slice | None:
    """The run's steps inside the event, or None unless the run covers the whole event."""
    grid = TimeGrid(run.start, max(run.n_steps, 1), run.step)
    first, last = grid.first_index_from(event.start), grid.first_index_from(event.end)
    if first < 0 or last > run.n_steps or last <= first:
        return None
    return slice(first, last)
