"""A live season's report from the operations database: how closely each kind of equipment
followed its setpoints, by hand; the page (the program report measured, with the season's own
sections) and its PDF are written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from lightson.cli import main
from lightson.config import load_program
from lightson.csms.auth import hash_password
from lightson.domain.time import SimClock
from lightson.reports.program_report import read_run, report_tables, write_report
from lightson.services.events import EventService
from lightson.services.measured import write_measured
from lightson.services.season_report import season_tables
from lightson.store import StationRecord, Store
from lightson.store import schema as db

T = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)  # 15:00 EDT: the event starts


def test_the_equipment_matrix_and_the_season_page(tmp_path: Path) -> None:
    program = load_program("example")
    store = Store(f"sqlite:///{tmp_path / 'season.db'}")
    try:
        digest = hash_password("season-report-password", salt=b"0123456789abcdef")
        for station in ("depot-evse1", "depot-evse2"):
            store.add_station(StationRecord(station, digest, "2.1", "central-setpoint", 60.0))
        events = EventService(store, SimClock(T - timedelta(days=1)))
        events.submit(
            {
                "event_id": "cs-daily-2026-07-15",
                "program_id": "cs-ci-daily",
                "start": T.isoformat(),
                "end": (T + timedelta(hours=3)).isoformat(),
            }
        )
        setpoint = {
            "station_id": "depot-evse1",
            "evse_id": 1,
            "power_kw": -30.0,
            "power_w_sent": -30000.0,
            "valid_until": T + timedelta(minutes=30),
            "sent_at": T,
            "status": "Accepted",
        }
        rows = [(db.setpoints_sent, setpoint)]
        # Half a minute in (still reaching it: not judged), 2 minutes in (on it), 5 minutes
        # in (5 kW short), 40 minutes in (the setpoint no longer holds: not judged).
        for minutes, kw in ((0.5, -10.0), (2, -30.0), (5, -25.0), (40, -30.0)):
            sample = {
                "station_id": "depot-evse1",
                "evse_id": 1,
                "at": T + timedelta(minutes=minutes),
                "power_kw": kw,
            }
            rows.append((db.meter_samples, sample))
        for kind, minutes in (("Faulted", 50), ("Available", 55), ("Faulted", 70)):
            at = T + timedelta(minutes=minutes)
            status = {"station_id": "depot-evse1", "evse_id": 1, "connector_id": 1}
            rows.append((db.evse_status, status | {"status": kind, "at": at}))
        store.write(rows).result(10)
        now = T + timedelta(days=1)
        rules = {r.program_id: r for r in events.rules}
        tables = season_tables(store, program, events.book(), rules, T - timedelta(days=2), now)
        folder = tmp_path / "season_run"
        write_measured(store, program, events.book(), T - timedelta(days=2), now, folder)
    finally:
        store.close()
    equipment = tables["equipment"].set_index("vehicle_model")
    jouley = equipment.loc["thomas-jouley-226"]  # bus-7 on depot-evse1
    assert (jouley["protocol"], jouley["dialect"]) == ("2.1", "central-setpoint")
    assert (jouley["setpoints_sent"], jouley["readings_under_setpoint"]) == (1, 2)
    assert jouley["faults"] == 2
    assert jouley["followed_share"] == pytest.approx(0.5)
    assert jouley["mean_deviation_kw"] == pytest.approx(2.5)
    # depot-evse1 faulted 5 minutes, then from 70 minutes in to the end of the records (the
    # event's end, 3 h): 2 spells over 5 chargers × 3 h, median (5 + 110) / 2 minutes
    rates = tables["failure_rates"].set_index("cause")
    assert rates.loc["charger fault", "category"] == "equipment"
    per_year = 2 / (5 * 3 / 8766)
    assert rates.loc["charger fault", "field"].startswith(
        f"{per_year:.1f}/charger-year, median 1.0 h"
    )
    (event,) = tables["events"].itertuples()
    assert (event.event_id, event.sites_called) == ("cs-daily-2026-07-15", 2)
    run = read_run(folder)
    written = write_report([run], tmp_path / "season.html", pdf=True, season=tables)
    page = written[0].read_text()
    sections = ("Value by site kind", "Backup", "Equipment", "Failure rates", "Data completeness")
    for section in (*sections, "Settlement"):
        assert f"<h2>{section}</h2>" in page
    assert "Measured: what the chargers" in page and written[1].stat().st_size > 10_000
    # depot-evse1 reported Faulted in the event; nothing was plugged in at the business.
    reasons = report_tables([run])["event_sites"].set_index("site_id")["reason"]
    assert reasons.to_dict() == {
        "business-worcester": "vehicles away",
        "school-beverly": "charger fault",
    }


def test_the_season_report_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    store = Store(url)
    try:
        EventService(store, SimClock(T - timedelta(days=1))).submit(
            {
                "event_id": "cs-daily-2026-07-15",
                "program_id": "cs-ci-daily",
                "start": T.isoformat(),
                "end": (T + timedelta(hours=3)).isoformat(),
            }
        )
    finally:
        store.close()
    out = tmp_path / "season" / "report.html"
    args = ["report", "--db", url, "--program", "example", "--season", "2026", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    events = (tmp_path / "season" / "report_tables" / "called_events.csv").read_text()
    assert "cs-daily-2026-07-15" in events
    assert (tmp_path / "season" / "report_run" / "vehicles.parquet").is_file()
    wrong = CliRunner().invoke(main, [*args[:5], "--season", "2025", "--out", str(out)])
    assert wrong.exit_code == 0  # an empty year is a report with no events, not an error
    assert (
        "cs-daily" not in (tmp_path / "season" / "report_tables" / "called_events.csv").read_text()
    )
