"""Settlement from what the chargers metered (the database), by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from lightson.cli import main
from lightson.config import load_program
from lightson.config.dr_rules import bundled_dr_rules
from lightson.domain.time import SimClock
from lightson.services.events import EventService
from lightson.services.settlement import called_events, metered_from_store, settle_program
from lightson.store import Store
from lightson.store import schema as db

BOSTON = ZoneInfo("America/New_York")
START = datetime(2026, 7, 15, 15, tzinfo=BOSTON)
END = START + timedelta(hours=3)


def _announce(store: Store, event_id: str) -> None:
    """A C&I daily-dispatch event 15:00-18:00 on 15 July, announced the evening before."""
    EventService(store, SimClock(START - timedelta(hours=19))).submit(
        {
            "event_id": event_id,
            "program_id": "cs-ci-daily",
            "start": START.isoformat(),
            "end": END.isoformat(),
        }
    )


def _metered_day(store: Store) -> None:
    _announce(store, "ng-0715")
    rows = []
    at = START - timedelta(minutes=5)  # a reading just before holds into the window
    while at < END:
        for station in ("depot-evse1", "depot-evse2"):
            row = {"station_id": station, "evse_id": 1, "at": at, "power_kw": -50.0}
            rows.append((db.meter_samples, row))
        at += timedelta(minutes=5)
    # The school was islanded 16:00-17:00 (restored 16:55, plus the 5-minute delay).
    for signal, hhmm in (("lost", 16 * 60), ("restored", 16 * 60 + 55)):
        row = {
            "site_id": "school-beverly",
            "source": "meter",
            "signal": signal,
            "at": START.replace(hour=0) + timedelta(minutes=hhmm),
            "released_vehicles": [],
        }
        rows.append((db.grid_signals, row))
    store.write(rows).result(10)


def test_event_kw_from_meter_values_leaves_out_islanded_time(tmp_path: Path) -> None:
    program = load_program("example")
    store = Store(f"sqlite:///{tmp_path / 'ops.db'}")
    try:
        _metered_day(store)
        book = EventService(store, SimClock(END)).book()
        called = called_events(book.events.values(), END + timedelta(hours=1))
        metered = metered_from_store(store, program, called)
    finally:
        store.close()
    # Two chargers at 50 kW for the 2 of 3 hours on the grid: 200 kWh.
    assert metered[("school-beverly", "ng-0715")].net_discharge_kwh == pytest.approx(200.0)
    assert ("business-worcester", "ng-0715") not in metered  # nothing metered there
    rules = {"cs-ci-daily": bundled_dr_rules()["cs-ci-daily"]}
    lines, _ = settle_program(program, rules, called, metered)
    by_site = {line.site_id: line for line in lines}
    school = by_site["school-beverly"]
    assert school.season_average_kw == pytest.approx(200.0 / 3)  # kWh over the event's hours
    assert school.payment_usd == pytest.approx(200.0 * 200.0 / 3)  # $200 per kW-season
    assert by_site["business-worcester"].season_average_kw == 0.0  # called, missed: 0 kW


def test_settle_from_the_database_on_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    store = Store(url)
    _metered_day(store)
    store.close()
    result = CliRunner().invoke(
        main, ["settle", "--db", url, "--season", "2026", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "school-beverly" in result.output and "66.67" in result.output
    both = CliRunner().invoke(main, ["settle", "--out", str(tmp_path / "x")])
    assert both.exit_code == 2 and "give either --run DIR or --db URL" in both.output


def test_a_site_meter_caps_a_non_exporting_site_with_the_load_it_measured(
    tmp_path: Path,
) -> None:
    program = load_program("example")  # business-worcester may not export
    store = Store(f"sqlite:///{tmp_path / 'ops.db'}")
    try:
        _announce(store, "ev-0715")
        rows = []
        at = START - timedelta(minutes=5)
        while at < END:  # two EV9s give 10 kW each; the building draws 12 kW
            for station in ("biz-evse1", "biz-evse2"):
                sample = {"station_id": station, "evse_id": 1, "at": at, "power_kw": -10.0}
                rows.append((db.meter_samples, sample))
            meter = {
                "site_id": "business-worcester",
                "at": at,
                "load_kw": 12.0,
                "pv_kw": 0.0,
                "received_at": at,
            }
            rows.append((db.site_meter, meter))
            at += timedelta(minutes=5)
        store.write(rows).result(10)
        book = EventService(store, SimClock(END)).book()
        called = called_events(book.events.values(), END)
        metered = metered_from_store(store, program, called)
    finally:
        store.close()
    reading = metered[("business-worcester", "ev-0715")]
    assert reading.net_discharge_kwh == pytest.approx(60.0)  # 20 kW for 3 h
    assert reading.building_load_kwh == pytest.approx(36.0)  # 12 kW for 3 h, metered
    rules = {"cs-ci-daily": bundled_dr_rules()["cs-ci-daily"]}
    lines, _ = settle_program(program, rules, called, metered)
    business = next(line for line in lines if line.site_id == "business-worcester")
    assert business.season_average_kw == pytest.approx(12.0)  # capped at what it drew


def test_the_metered_load_leaves_islanded_time_out(tmp_path: Path) -> None:
    program = load_program("example")
    store = Store(f"sqlite:///{tmp_path / 'ops.db'}")
    try:
        _announce(store, "ev-0715")
        rows = []
        island = (START + timedelta(hours=1), START + timedelta(hours=2))  # 16:00-17:00
        at = START - timedelta(minutes=5)
        while at < END:
            for station in ("biz-evse1", "biz-evse2"):
                sample = {"station_id": station, "evse_id": 1, "at": at, "power_kw": -10.0}
                rows.append((db.meter_samples, sample))
            # The building draws 12 kW on the grid, 30 kW while islanded (all of it served
            # by the vehicles then, which is not the event's).
            load = 30.0 if island[0] <= at < island[1] else 12.0
            meter = {
                "site_id": "business-worcester",
                "at": at,
                "load_kw": load,
                "pv_kw": 0.0,
                "received_at": at,
            }
            rows.append((db.site_meter, meter))
            at += timedelta(minutes=5)
        for signal, when in (("lost", island[0]), ("restored", island[1] - timedelta(minutes=5))):
            grid = {
                "site_id": "business-worcester",
                "source": "meter",
                "signal": signal,
                "at": when,
                "released_vehicles": [],
            }
            rows.append((db.grid_signals, grid))
        store.write(rows).result(10)
        called = called_events(EventService(store, SimClock(END)).book().events.values(), END)
        reading = metered_from_store(store, program, called)[("business-worcester", "ev-0715")]
    finally:
        store.close()
    assert reading.building_load_kwh == pytest.approx(24.0)  # 12 kW for the 2 h on the grid
    assert reading.net_discharge_kwh == pytest.approx(40.0)  # 20 kW for those 2 h
