"""The tables of a live season's report, from the operations database (``docs/reports.md``):
each event and what the sites delivered in it, the equipment (which vehicle on which charger
over which protocol, and how closely the chargers followed their setpoints), data
completeness, and the season settlement; ``write_season_report`` puts them in the program
report measured from the database (``lightson report --db`` and ``GET /api/report``).
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from lightson.domain.assets import Program
from lightson.programs.events import EventBook
from lightson.programs.rules import ProgramRules
from lightson.reports.program_report import read_run, write_report
from lightson.services.completeness import COMPLETENESS_COLUMNS, completeness_rows
from lightson.services.field_failures import measure_failure_rates, rates_table
from lightson.services.measured import FAULT_STATUSES, recorded_span, write_measured
from lightson.services.settlement import (
    called_events,
    event_performance,
    metered_from_store,
    settle_program,
)
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware

FOLLOWED_WITHIN_KW = 1.0  # a reading this close to its setpoint counts as followed
SETTLE_AFTER_S = 60.0  # a charger gets this long to reach a new setpoint


def season_tables(
    store: Store,
    program: Program,
    book: EventBook,
    rules: dict[str, ProgramRules],
    since: datetime,
    now: datetime,
) -> dict[str, pd.DataFrame]:
    return {
        "events": _events(store, program, book, rules, since, now),
        "equipment": _equipment(store, program, since, now),
        "completeness": completeness_table(store, program, book, since, now),
        "settlement": _settlement(store, program, book, rules, since, now),
        # failure rates measured in the field vs the twin's assumptions (#16)
        "failure_rates": pd.DataFrame(
            rates_table(measure_failure_rates(store, program, book, since, now)),
            columns=["cause", "category", "field", "twin"],
        ),
    }


def write_season_report(
    store: Store,
    program: Program,
    book: EventBook,
    rules: dict[str, ProgramRules],
    since: datetime,
    now: datetime,
    out: Path,
    pdf: bool = False,
    files: bool = True,
) -> list[Path]:
    """The live season's report at ``out``: the program report measured from the database
    (``services.measured``, its run folder at ``<out stem>_run/``) with the season's own
    sections, its tables under ``<out stem>_tables/`` (unless not ``files``), and with
    ``pdf`` a PDF. Returns the paths written, the page first (then the PDF)."""
    tables = season_tables(store, program, book, rules, since, now)
    folder = out.with_name(out.stem + "_run")
    write_measured(store, program, book, since, now, folder, rules)
    return write_report([read_run(folder)], out, pdf=pdf, season=tables, files=files)


def season_report_bytes(
    url: str,
    program: Program,
    book: EventBook,
    rules: dict[str, ProgramRules],
    since: datetime,
    now: datetime,
    pdf: bool,
) -> bytes:
    """The report's page (or its PDF) alone, made from the database at ``url``: what ``GET
    /api/report`` runs in a process of its own. Nothing is left on disk."""
    store = Store(url)
    try:
        with tempfile.TemporaryDirectory(prefix="lightson-report-") as folder:
            written = write_season_report(
                store, program, book, rules, since, now, Path(folder) / "report.html", pdf, False
            )
            return written[1 if pdf else 0].read_bytes()
    finally:
        store.close()


def _events(
    store: Store,
    program: Program,
    book: EventBook,
    rules: dict[str, ProgramRules],
    since: datetime,
    now: datetime,
) -> pd.DataFrame:
    rows = []
    for event in sorted(book.events.values(), key=lambda e: e.start):
        if event.end <= since or event.start > now:
            continue
        lines = event_performance(store, program, event, rules.get(event.program_id), now)
        measured = [line.kw for line in lines if line.kw is not None]
        rows.append(
            {
                "event_id": event.event_id,
                "program_id": event.program_id,
                "start": pd.Timestamp(event.start),
                "end": pd.Timestamp(event.end),
                "cancelled": event.cancelled_at is not None,
                "sites_called": len(lines),
                "sites_measured": len(measured),
                "opted_out": sum(line.opted_out for line in lines),
                "program_kw": sum(measured),
            }
        )
    columns = [
        "event_id", "program_id", "start", "end", "cancelled",
        "sites_called", "sites_measured", "opted_out", "program_kw",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _equipment(store: Store, program: Program, since: datetime, now: datetime) -> pd.DataFrame:
    """Vehicle model × charger model × protocol and dialect: stations, sessions, faults (a
    ``Faulted`` status), setpoints sent and refused, and how closely the chargers followed
    them (readings taken while a setpoint held, from a minute after it was sent)."""
    registered = {row["id"]: row for row in store.rows(db.stations)}
    who = {}
    for site in program.sites:
        for vehicle in site.vehicles:
            charger = site.charger(vehicle.evse_id)
            record = registered.get(charger.evse_id, {})
            who[charger.evse_id] = (
                vehicle.model,
                charger.model,
                record.get("ocpp_version", charger.protocol.value),
                record.get("dialect", ""),
            )
    stations = sorted(who)
    sent_t, samples, events = db.setpoints_sent, db.meter_samples, db.transaction_events
    status = db.evse_status
    queries = {
        "sent": select(
            sent_t.c.station_id,
            sent_t.c.sent_at,
            sent_t.c.valid_until,
            sent_t.c.power_kw.label("setpoint_kw"),
            sent_t.c.status,
        ).where(
            sent_t.c.station_id.in_(stations),
            sent_t.c.sent_at >= since,
            sent_t.c.sent_at <= now,
        ),
        "readings": select(samples.c.station_id, samples.c.at, samples.c.power_kw).where(
            samples.c.station_id.in_(stations),
            samples.c.at >= since,
            samples.c.at <= now,
            samples.c.power_kw.is_not(None),
        ),
        "sessions": select(events.c.station_id, events.c.transaction_id)
        .where(events.c.station_id.in_(stations), events.c.at >= since)
        .distinct(),
        "faults": select(status.c.station_id).where(
            status.c.station_id.in_(stations),
            status.c.status.in_(FAULT_STATUSES),
            status.c.at >= since,
            status.c.at <= now,
        ),
    }
    with store.engine.connect() as connection:
        frames = {name: pd.read_sql(query, connection) for name, query in queries.items()}
    sent, readings, session_counts = frames["sent"], frames["readings"], frames["sessions"]
    faults = frames["faults"]["station_id"].value_counts()
    followed = _followed(sent, readings)
    rows = []
    for station in stations:
        mine = sent[sent["station_id"] == station]
        deviation = followed[followed["station_id"] == station]["deviation_kw"]
        rows.append(
            {
                "vehicle_model": who[station][0],
                "charger_model": who[station][1],
                "protocol": who[station][2],
                "dialect": who[station][3],
                "station_id": station,
                "sessions": int((session_counts["station_id"] == station).sum()),
                "faults": int(faults.get(station, 0)),
                "setpoints_sent": len(mine),
                "setpoints_not_accepted": int((mine["status"] != "Accepted").sum()),
                "readings_under_setpoint": len(deviation),
                "followed_share": float((deviation <= FOLLOWED_WITHIN_KW).mean())
                if len(deviation)
                else float("nan"),
                "mean_deviation_kw": float(deviation.mean()) if len(deviation) else float("nan"),
            }
        )
    per_station = pd.DataFrame(rows)
    keys = ["vehicle_model", "charger_model", "protocol", "dialect"]
    if per_station.empty:
        return pd.DataFrame(columns=[*keys, "stations"])
    grouped = per_station.groupby(keys, sort=True)
    table = grouped.agg(
        stations=("station_id", "count"),
        sessions=("sessions", "sum"),
        faults=("faults", "sum"),
        setpoints_sent=("setpoints_sent", "sum"),
        setpoints_not_accepted=("setpoints_not_accepted", "sum"),
        readings_under_setpoint=("readings_under_setpoint", "sum"),
    ).reset_index()
    weights = per_station["readings_under_setpoint"]
    for column in ("followed_share", "mean_deviation_kw"):
        weighted = (
            (per_station[column].fillna(0.0) * weights)
            .groupby([per_station[k] for k in keys])
            .sum()
        )
        table[column] = [
            weighted.loc[tuple(row[k] for k in keys)] / row["readings_under_setpoint"]
            if row["readings_under_setpoint"]
            else float("nan")
            for _, row in table.iterrows()
        ]
    return table


def _followed(sent: pd.DataFrame, readings: pd.DataFrame) -> pd.DataFrame:
    """Each reading with the accepted setpoint that held when it was taken (sent at least
    ``SETTLE_AFTER_S`` before, still valid), and how far the charger was from it."""
    accepted = sent[sent["status"] == "Accepted"].copy()
    if accepted.empty or readings.empty:
        return pd.DataFrame(columns=["station_id", "deviation_kw"])
    for frame, column in ((accepted, "sent_at"), (accepted, "valid_until"), (readings, "at")):
        frame[column] = pd.to_datetime([aware(t) for t in frame[column]], utc=True)
    accepted["effective"] = accepted["sent_at"] + pd.Timedelta(seconds=SETTLE_AFTER_S)
    joined = pd.merge_asof(
        readings.sort_values("at"),
        accepted.sort_values("effective"),
        left_on="at",
        right_on="effective",
        by="station_id",
        direction="backward",
    )
    held = joined[joined["at"] < joined["valid_until"]]
    return pd.DataFrame(
        {
            "station_id": held["station_id"],
            "deviation_kw": (held["power_kw"] - held["setpoint_kw"]).abs(),
        }
    )


def completeness_table(
    store: Store, program: Program, book: EventBook, since: datetime, now: datetime
) -> pd.DataFrame:
    """The Data page's lines (``completeness_rows``, the same computation and columns) over
    the period the database has records for: a session never ended counts as plugged until
    the last record, not until the wall clock's now (a demo's day read months later), as
    the Data page shows it when the records end."""
    site_of = {c.evse_id: s.site_id for s in program.sites for c in s.chargers}
    first, last = recorded_span(store, program, book, since, now, pad=timedelta(0))
    rows = completeness_rows(store, site_of, first, last)
    return pd.DataFrame(rows, columns=list(COMPLETENESS_COLUMNS))


def _settlement(
    store: Store,
    program: Program,
    book: EventBook,
    rules: dict[str, ProgramRules],
    since: datetime,
    now: datetime,
) -> pd.DataFrame:
    """The settlement of the events that started in the period and have ended."""
    called = [e for e in called_events(book.events.values(), now) if e.start >= since]
    used = {k: v for k, v in rules.items() if any(e.program_id == k for e in called)}
    metered = metered_from_store(store, program, called)
    lines, _ = settle_program(program, used, called, metered, covered=(None, now))
    return pd.DataFrame([line.as_dict() for line in lines])
