"""Failure rates measured from a hand-made operations database (#16): fault spells from
statuses, link losses from unanswered setpoints, opt-outs from the event book, late plug-ins
and early departures against the program file's schedule, a bus on a summer route; the
twin's model, a program file's ``failures:`` section and the CLI line from them."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from lightson.cli import main
from lightson.config import load_program
from lightson.config.loader import failure_model
from lightson.config.schema import FailuresFile
from lightson.domain.failures import FIELD_FAILURES, HOURS_PER_YEAR
from lightson.domain.time import SimClock
from lightson.services.events import EventService
from lightson.services.field_failures import (
    failures_section,
    measure_failure_rates,
    rates_table,
)
from lightson.store import Store
from lightson.store import schema as db

T0 = datetime(2026, 7, 6, 4, 0, tzinfo=UTC)  # Monday 00:00 EDT
DAYS = 14
LOCAL = timedelta(hours=-4)  # EDT


def at_local(day: int, hour: float) -> datetime:
    """``hour`` o'clock EDT on day ``day`` (0: Monday 6 July)."""
    return T0 + timedelta(days=day, hours=hour)


def _status(station: str, status: str, at: datetime) -> tuple[Any, dict[str, Any]]:
    row = {"station_id": station, "evse_id": 1, "connector_id": 1, "status": status, "at": at}
    return (db.evse_status, row)


def _setpoint(station: str, status: str, at: datetime) -> tuple[Any, dict[str, Any]]:
    row = {
        "station_id": station,
        "evse_id": 1,
        "power_kw": 5.0,
        "power_w_sent": 5000.0,
        "valid_until": at + timedelta(minutes=15),
        "sent_at": at,
        "status": status,
    }
    return (db.setpoints_sent, row)


def _session(station: str, tx: str, start: datetime, end: datetime) -> list[Any]:
    record = {"station_id": station, "evse_id": 1, "transaction_id": tx, "payload": {}}
    return [
        (db.transaction_events, record | {"event_type": kind, "at": at, "received_at": at})
        for kind, at in (("Started", start), ("Ended", end))
    ]


def _records() -> list[Any]:
    rows = [
        # the recorded period: 14 days from Monday 00:00 EDT
        _status("biz-evse2", "Available", T0),
        _status("biz-evse2", "Available", T0 + timedelta(days=DAYS)),
        # faults: 6 h and 2 h at depot-evse1, 12 h at biz-evse1
        _status("depot-evse1", "Faulted", at_local(1, 0)),
        _status("depot-evse1", "Available", at_local(1, 6)),
        _status("depot-evse1", "Faulted", at_local(5, 0)),
        _status("depot-evse1", "Occupied", at_local(5, 2)),
        _status("biz-evse1", "Faulted", at_local(10, 0)),
        _status("biz-evse1", "Faulted", at_local(10, 1)),  # still the same spell
        _status("biz-evse1", "Available", at_local(10, 12)),
        # a link lost for 3 h at the home's charger: unanswered 01:00, 01:15, answered 04:00
        _setpoint("home-lowell-evse1", "Accepted", at_local(2, 0)),
        _setpoint("home-lowell-evse1", "Timeout", at_local(2, 1)),
        _setpoint("home-lowell-evse1", "Offline", at_local(2, 1.25)),
        _setpoint("home-lowell-evse1", "Accepted", at_local(2, 4)),
    ]
    # The home's car, scheduled away 06:30-14:30 on weekdays: on time Monday, back 17:30
    # Tuesday (3 h late), left 04:30 Wednesday (2 h early), back 14:40 (within the jitter).
    home = [
        (at_local(0, 0.1), at_local(0, 6.5)),
        (at_local(0, 14.5), at_local(1, 6.5)),
        (at_local(1, 17.5), at_local(2, 4.5)),
        (at_local(2, 14 + 40 / 60), at_local(3, 6.5)),
        (at_local(3, 14.5), at_local(4, 6.5)),
        (at_local(4, 14.5), at_local(4, 20)),
    ]
    for i, (start, end) in enumerate(home):
        rows += _session("home-lowell-evse1", f"home-{i}", start, end)
    # bus-7 has no route in July; it ran one Monday 13 July 07:30-15:30
    rows += _session("depot-evse1", "bus-0", at_local(0, 0.1), at_local(7, 7.5))
    rows += _session("depot-evse1", "bus-1", at_local(7, 15.5), at_local(11, 12))
    return rows


def _events(store: Store) -> EventService:
    events = EventService(store, SimClock(T0))
    for day in (2, 3):
        for program_id in ("cs-ci-daily", "cs-residential-battery"):
            events.submit(
                {
                    "event_id": f"{program_id}-{day}",
                    "program_id": program_id,
                    "start": at_local(day, 15).isoformat(),
                    "end": at_local(day, 18).isoformat(),
                }
            )
    events.opt_out("cs-ci-daily-2", "business-worcester")
    events.opt_out("cs-residential-battery-3", "home-lowell")
    return events


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    store = Store(url)
    try:
        _events(store)
        store.write(_records()).result(10)
    finally:
        store.close()
    return url


def test_rates_measured_by_hand(database: str) -> None:
    program = load_program("example")
    store = Store(database)
    try:
        book = EventService(store, SimClock(T0 + timedelta(days=DAYS))).book()
        rates = measure_failure_rates(
            store, program, book, T0 - timedelta(days=1), T0 + timedelta(days=30)
        )
    finally:
        store.close()
    assert (rates.since, rates.until) == (T0, T0 + timedelta(days=DAYS))
    chargers = 5  # home-lowell-evse1, biz-evse1, biz-evse2, depot-evse1, depot-evse2
    years = chargers * DAYS * 24 / HOURS_PER_YEAR
    assert rates.faults.charger_years == pytest.approx(years)
    assert sorted(rates.faults.hours) == [2.0, 6.0, 12.0]
    assert rates.faults.started == 3
    assert rates.comms.hours == (3.0,)
    assert rates.opt_outs["business"] == (1, 2)
    assert rates.opt_outs["school"] == (0, 2)
    assert rates.opt_outs["home"] == (1, 2)
    # five trips of the car matched its schedule; one 3 h late, one 2 h early
    assert (rates.late.matched, rates.late.hours) == (5, (3.0,))
    assert rates.early.hours == (2.0,)
    # bus-7 observed 6-17 July: ten route weekdays, one with a trip off its schedule
    assert rates.route_days == (1, 10)
    model = rates.model()
    assert model.charger_faults is not None and model.communication_losses is not None
    assert model.charger_faults.per_charger_year == pytest.approx(3 / years)
    assert model.charger_faults.median_hours == 6.0
    logs = [math.log(h) for h in (2.0, 6.0, 12.0)]
    assert model.charger_faults.sigma == pytest.approx(statistics.pstdev(logs))
    # one spell: the assumption's sigma
    assert model.communication_losses.sigma == FIELD_FAILURES.communication_losses.sigma  # type: ignore[union-attr]
    assert dict(model.opt_out_probability) == {"business": 0.5, "home": 0.5, "school": 0.0}
    assert model.late_plug_in is not None and model.early_departure is not None
    assert (model.late_plug_in.probability, model.late_plug_in.median_hours) == (0.2, 3.0)
    assert (model.early_departure.probability, model.early_departure.median_hours) == (0.2, 2.0)
    assert model.summer_route is not None and model.summer_route.probability == 0.1
    # as a program file's section, read back by the loader
    again = failure_model(FailuresFile.model_validate(failures_section(model)))
    assert again.charger_faults is not None
    assert again.charger_faults.per_charger_year == pytest.approx(3 / years, rel=1e-3)
    assert dict(again.opt_out_probability) == dict(model.opt_out_probability)
    assert again.summer_route is not None and again.summer_route.probability == 0.1
    rows = {r["cause"]: r for r in rates_table(rates)}
    assert rows["charger fault"]["category"] == "equipment"
    assert rows["opted out"]["field"] == "home 1/2, business 1/2, school 0/2"
    assert rows["plugged in late"]["field"] == "1/5 trips, median 3.0 h"
    assert rows["plugged in late"]["twin"] == "10% of trips, median 2.0 h"


def test_cli_prints_the_rates_and_the_section(database: str) -> None:
    since, until = "2026-07-01T00:00", "2026-08-01T00:00"
    base = ["failure-rates", "example", "--db", database, "--since", since, "--until", until]
    result = CliRunner().invoke(main, base)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "failure rates measured in the field (2026-07-06 00:00 to 2026-07-20 00:00) "
        "vs the twin's assumptions"
    )
    fault = next(line for line in lines if line.startswith("charger fault"))
    per_year = 3 / (5 * DAYS * 24 / HOURS_PER_YEAR)
    assert f"{per_year:.1f}/charger-year, median 6.0 h" in fault
    assert "3.0/charger-year, median 48.0 h" in fault  # the twin's assumption
    section = yaml.safe_load(CliRunner().invoke(main, [*base, "--yaml"]).output)["failures"]
    assert section["late_plug_in"]["probability"] == 0.2
    assert section["opt_out"] == {"business": 0.5, "home": 0.5, "school": 0.0}


def test_simulate_with_the_fields_rates(database: str, tmp_path: Path) -> None:
    args = ["simulate", "example", "--start", "2026-07-13T00:00", "--days", "1", "--workers", "1"]
    args += ["--failures-from-db", database, "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "event_conditions.csv").is_file()  # a world with failures
    both = CliRunner().invoke(main, [*args[:-2], "--failures", "none", "--out", str(tmp_path)])
    assert both.exit_code == 2 and "give either it or --failures" in both.output


def test_nothing_recorded_keeps_the_assumptions(tmp_path: Path) -> None:
    program = load_program("example")
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        book = EventService(store, SimClock(T0)).book()
        rates = measure_failure_rates(store, program, book, T0, T0 + timedelta(days=DAYS))
    finally:
        store.close()
    assert rates.faults.charger_years == 0.0
    assert rates.model() == FIELD_FAILURES
