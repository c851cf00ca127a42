"""Writing a program run: interval data as Parquet, KPIs as JSON and CSV."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lightson.domain.assets import Program
from lightson.domain.failures import FailureCause
from lightson.sim.kpis import EventPerformance, SiteKpis, event_conditions
from lightson.sim.runner import ProgramRun

RUN_SCHEMA = "lightson.run/1"
# The live season's file of the same name (services.measured); lightson report reads it.
CONDITIONS_FILE = "event_conditions.csv"
CONDITIONS_COLUMNS = ["event_id", "site_id", "opted_out", "faulted_chargers", "silent_chargers"]


def write_run(
    program: Program,
    run: ProgramRun,
    kpis: list[SiteKpis],
    events: list[EventPerformance],
    out: Path,
) -> list[Path]:
    """Write ``sites.parquet``, ``vehicles.parquet``, ``kpis.json``, ``kpis_sites.csv``,
    ``events.csv``, ``site_list.csv`` (what each simulated site is: kind, utility, vehicles,
    chargers) and ``event_list.csv`` (each event's window), so a report needs nothing else,
    into ``out``, and with failures in the world ``event_conditions.csv`` (per site-event:
    opted out, chargers faulted, chargers silent); returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        out / name
        for name in (
            "sites.parquet",
            "vehicles.parquet",
            "kpis.json",
            "kpis_sites.csv",
            "events.csv",
            "site_list.csv",
            "event_list.csv",
        )
    ]
    _site_frame(run).to_parquet(paths[0], index=False)
    _vehicle_frame(run).to_parquet(paths[1], index=False)
    paths[2].write_text(json.dumps(_kpi_document(program, run, kpis, events), indent=1))
    pd.DataFrame([k.as_dict() for k in kpis]).to_csv(paths[3], index=False)
    pd.DataFrame(
        [asdict(e) for e in events], columns=list(EventPerformance.__dataclass_fields__)
    ).to_csv(paths[4], index=False)
    simulated = {r.site_id for r in run.runs}
    site_list(program, [s.site_id for s in program.sites if s.site_id in simulated]).to_csv(
        paths[5], index=False
    )
    run_end = run.start + run.n_steps * program.step
    pd.DataFrame(
        [
            {
                "event_id": e.event_id,
                "program_id": e.program_id,
                "start": e.start.astimezone(program.timezone).isoformat(),
                "end": e.end.astimezone(program.timezone).isoformat(),
            }
            for e in program.events
            if e.start < run_end and e.end > run.start
        ],
        columns=["event_id", "program_id", "start", "end"],
    ).to_csv(paths[6], index=False)
    if any(r.failure_cause is not None or r.opted_out for r in run.runs):
        # With failures, the report gives each shortfall its cause as for a live season.
        conditions = [row for r in run.runs for row in event_conditions(program, r)]
        paths.append(out / CONDITIONS_FILE)
        pd.DataFrame(conditions, columns=CONDITIONS_COLUMNS).to_csv(paths[-1], index=False)
    return paths


def site_list(program: Program, site_ids: list[str]) -> pd.DataFrame:
    """One row per site: what it is and what it has."""
    rows = []
    for site_id in site_ids:
        site = program.site(site_id)
        rows.append(
            {
                "site_id": site.site_id,
                "kind": site.kind.value,
                "utility": site.utility,
                "enrollments": " ".join(site.enrollments),
                "export_permitted": site.export_permitted,
                "vehicles": len(site.vehicles),
                "v2x_vehicles": sum(v.v2x_capable for v in site.vehicles),
                "chargers": len(site.chargers),
                "bidirectional_chargers": sum(c.max_discharge_kw > 0 for c in site.chargers),
                "installed_discharge_kw": sum(c.max_discharge_kw for c in site.chargers),
                "pv_kw_dc": site.pv.kw_dc if site.pv is not None else 0.0,
            }
        )
    return pd.DataFrame(rows)


def _times(run: ProgramRun) -> pd.DatetimeIndex:
    first = run.runs[0]
    return pd.date_range(first.start.astimezone(UTC), periods=first.n_steps, freq=first.step)


def _site_frame(run: ProgramRun) -> pd.DataFrame:
    times = _times(run)
    frames = [
        pd.DataFrame(
            {
                "time_utc": times,
                "site_id": r.site_id,
                "load_kw": r.load_kw,
                "pv_kw": r.pv_kw,
                "vehicles_kw": r.power_kw.sum(axis=0) if r.power_kw.size else np.zeros(r.n_steps),
                "net_kw": r.net_kw,
                "load_served_kw": r.load_served_kw,
                "pv_curtailed_kw": r.pv_curtailed_kw,
                "in_outage": r.in_outage,
                "in_event": r.in_event,
            }
        )
        for r in run.runs
    ]
    return pd.concat(frames, ignore_index=True)


def _vehicle_frame(run: ProgramRun) -> pd.DataFrame:
    times = _times(run)
    frames = [
        pd.DataFrame(
            {
                "time_utc": times,
                "site_id": r.site_id,
                "vehicle_id": vehicle_id,
                "evse_id": r.evse_ids[i],
                "plugged": r.plugged[i],
                "power_kw": r.power_kw[i],
                "energy_kwh": r.energy_kwh[i],
                "trip_energy_kwh": r.trip_energy_kwh[i],
                "unserved_trip_kwh": r.unserved_trip_kwh[i],
                "departure_short_kwh": r.departure_short_kwh[i],
            }
        )
        for r in run.runs
        for i, vehicle_id in enumerate(r.vehicle_ids)
    ]
    columns = [
        "time_utc",
        "site_id",
        "vehicle_id",
        "evse_id",
        "plugged",
        "power_kw",
        "energy_kwh",
        "trip_energy_kwh",
        "unserved_trip_kwh",
        "departure_short_kwh",
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _kpi_document(
    program: Program, run: ProgramRun, kpis: list[SiteKpis], events: list[EventPerformance]
) -> dict[str, Any]:
    per_event: dict[str, float] = {}
    for e in events:
        per_event[e.event_id] = per_event.get(e.event_id, 0.0) + e.delivered_kw
    total = {
        field: sum(getattr(k, field) for k in kpis)
        for field in (
            "charged_kwh",
            "discharged_kwh",
            "discharged_to_grid_kwh",
            "bill_usd",
            "degradation_usd",
            "dr_payment_usd",
            "stored_energy_value_usd",
            "outage_hours",
            "critical_unserved_kwh",
            "net_cost_usd",
            "departures_below_target",
            "unserved_trip_kwh",
        )
    }
    lost = {cause.value: sum(e.lost_kw(cause) for e in events) for cause in FailureCause}
    return {
        "schema": RUN_SCHEMA,
        "program": program.name,
        "controller": run.controller,
        "start": run.start.isoformat(),
        "timezone": program.timezone.key,  # the program's: reports show times in it
        "steps": run.n_steps,
        "step_minutes": program.step.total_seconds() / 60,
        "seed": run.seed,
        "program_totals": total,
        "program_kw_per_event": per_event,
        # Σ over site-events of the kW each failure cause took (lightson.sim.kpis.lost_kw)
        "event_kw_lost_by_cause": lost,
        "sites": [k.as_dict() for k in kpis],
    }
