"""A live season read back as interval data (``lightson.services.measured``): held readings
averaged exactly, and one school depot's event, outage, silent charger and departure measured
by hand through the simulator's own KPI functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightson.config import load_program
from lightson.domain.time import SimClock
from lightson.programs.events import EventBook
from lightson.reports.program_report import read_run, report_tables
from lightson.services.events import EventService
from lightson.services.measured import MEASURED, held_average, measured_season, write_measured
from lightson.store import Store
from lightson.store import schema as db

T = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)  # 15:00 EDT: the event starts
EVENT = "cs-daily-2026-07-15"


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=2000), min_size=0, max_size=12),
    values=st.lists(st.floats(min_value=-60, max_value=60), min_size=12, max_size=12),
    first=st.integers(min_value=-1500, max_value=3000),
    hold=st.sampled_from([300.0, 900.0, np.inf]),
)
def test_held_readings_are_averaged_exactly(
    gaps: list[int], values: list[float], first: int, hold: float
) -> None:
    """Against an interval-by-interval, reading-by-reading overlap sum."""
    at = first + np.cumsum(np.array(gaps, dtype=float))
    kw = np.array(values[: len(at)])
    edges = np.arange(0.0, 3600.0 * 2 + 1, 900.0)
    average, share = held_average(at, kw, edges, hold)
    expected, covered = np.zeros(len(edges) - 1), np.zeros(len(edges) - 1)
    for i, (t, v) in enumerate(zip(at, kw, strict=True)):
        until = min(at[i + 1] if i + 1 < len(at) else np.inf, t + hold)
        for k in range(len(edges) - 1):
            overlap = max(0.0, min(until, edges[k + 1]) - max(t, edges[k]))
            expected[k] += v * overlap / 900.0
            covered[k] += overlap / 900.0
    assert average == pytest.approx(expected, abs=1e-9)
    assert share == pytest.approx(covered, abs=1e-9)
    assert np.all((share >= -1e-12) & (share <= 1 + 1e-12))


def test_a_depot_season_measured_as_the_simulator_measures(tmp_path: Path) -> None:
    program = load_program("example")
    store = Store(f"sqlite:///{tmp_path / 'ops.db'}")
    try:
        events = _announce(store)
        rows = _depot_records()
        store.write(rows).result(10)
        since, until = T - timedelta(hours=2), T + timedelta(hours=8)
        season = measured_season(store, program, events.book(), since, until)
        write_measured(store, program, events.book(), since, until, tmp_path / "run")
    finally:
        store.close()
    # Asked from 13:00 EDT, recorded from 14:00 (the first reading) to 21:00 (the last
    # grid signal): the period is narrowed to that, to the end of the last interval.
    assert season.run.controller == MEASURED
    assert (season.run.start, season.run.n_steps) == (T - timedelta(hours=1), 29)
    depot = next(r for r in season.run.runs if r.site_id == "school-beverly")
    inside = slice(4, 16)  # 15:00-18:00 EDT
    assert depot.power_kw[0, inside] == pytest.approx(np.full(12, -30.0))
    assert depot.power_kw[0, :4] == pytest.approx(np.zeros(4))
    # The site meter (50 kW, no PV) replaces the profile; bus-7 gives 30 kW of it.
    assert depot.load_kw[inside] == pytest.approx(np.full(12, 50.0))
    assert depot.net_kw[inside] == pytest.approx(np.full(12, 20.0))
    assert depot.in_event.sum() == 12
    # Islanded 20:00-21:05 EDT (5 minutes of enter-service delay): four whole intervals.
    assert list(np.flatnonzero(depot.in_outage)) == [24, 25, 26, 27]
    assert depot.energy_kwh[0, 3] == pytest.approx(0.8 * 226.0)  # before the event
    assert depot.energy_kwh[0, 16] == pytest.approx(0.4 * 226.0)  # read at 18:00 EDT
    kpis = {k.site_id: k for k in season.kpis}["school-beverly"]
    assert kpis.controller == MEASURED
    assert kpis.discharged_kwh == pytest.approx(90.0)
    assert kpis.outage_hours == pytest.approx(1.0)
    # bus-7 left at 19:00 EDT with 0.4 of 226 kWh; it had asked (ISO 15118) for 0.9.
    assert kpis.departures_below_target == 1
    assert kpis.departure_shortfall_kwh == pytest.approx((0.9 - 0.4) * 226.0)
    assert kpis.stored_energy_change_kwh == pytest.approx((0.4 - 0.8) * 226.0)
    performance = {(e.site_id, e.event_id): e for e in season.events}
    depot_event = performance[("school-beverly", EVENT)]
    assert depot_event.delivered_kw == pytest.approx(30.0)  # 90 kWh over 3 h, export allowed
    assert depot_event.plugged_share == pytest.approx(1.0)  # both buses plugged throughout
    conditions = season.conditions.set_index("site_id")
    assert conditions.loc["school-beverly", "silent_chargers"] == 1  # depot-evse2
    assert conditions.loc["school-beverly", "faulted_chargers"] == 0
    assert conditions.loc["business-worcester", "silent_chargers"] == 0  # nothing plugged
    assert "home-lowell" not in conditions.index  # not in the C&I program
    # The program report reads the written season and names why each site fell short.
    reasons = report_tables([read_run(tmp_path / "run")])["event_sites"].set_index("site_id")
    assert reasons.loc["school-beverly", "reason"] == "communication lost"
    assert reasons.loc["business-worcester", "reason"] == "vehicles away"
    assert reasons.loc["school-beverly", "delivered_kw"] == pytest.approx(30.0)


def _depot_records() -> list[tuple[object, dict[str, object]]]:
    """bus-7 on depot-evse1 plugged 14:00-19:00 EDT, giving 30 kW through the event; bus-12 on
    depot-evse2 plugged since 14:30 EDT, its charger silent and a setpoint to it unanswered;
    the site meter reads 50 kW; the grid is lost at 20:00 EDT for an hour."""
    rows: list[tuple[object, dict[str, object]]] = []

    def transaction(station: str, tx: str, kind: str, at: datetime) -> None:
        record = {
            "station_id": station,
            "evse_id": 1,
            "transaction_id": tx,
            "event_type": kind,
            "at": at,
            "received_at": at,
            "payload": {},
        }
        rows.append((db.transaction_events, record))

    transaction("depot-evse1", "tx-7", "Started", T - timedelta(hours=1))
    transaction("depot-evse1", "tx-7", "Ended", T + timedelta(hours=4))
    transaction("depot-evse2", "tx-12", "Started", T - timedelta(minutes=30))
    for minutes in range(-60, 240, 10):
        at = T + timedelta(minutes=minutes)
        kw = -30.0 if 0 <= minutes < 180 else 0.0
        soc = {-60: 0.8, 180: 0.4}.get(minutes)
        sample = {"station_id": "depot-evse1", "evse_id": 1, "transaction_id": "tx-7"}
        rows.append((db.meter_samples, sample | {"at": at, "power_kw": kw, "soc": soc}))
    needs = {
        "station_id": "depot-evse1",
        "evse_id": 1,
        "at": T - timedelta(minutes=50),
        "target_soc": 0.9,
        "bidirectional": True,
    }
    rows.append((db.charging_needs, needs))
    setpoint = {
        "station_id": "depot-evse2",
        "evse_id": 1,
        "power_kw": -30.0,
        "power_w_sent": -30000.0,
        "valid_until": T + timedelta(minutes=30),
        "sent_at": T,
        "status": "Timeout",
    }
    rows.append((db.setpoints_sent, setpoint))
    for minutes in range(0, 180, 5):
        at = T + timedelta(minutes=minutes)
        reading = {"site_id": "school-beverly", "load_kw": 50.0, "pv_kw": 0.0}
        rows.append((db.site_meter, reading | {"at": at, "received_at": at}))
    for signal, hours in (("lost", 5), ("restored", 6)):
        at = T + timedelta(hours=hours)
        grid = {"site_id": "school-beverly", "source": "meter:storm", "signal": signal}
        rows.append((db.grid_signals, grid | {"at": at, "released_vehicles": []}))
    return rows


def test_why_sites_fell_short_opt_out_fault_and_silence(tmp_path: Path) -> None:
    """Opted out; a charger faulted before the event and still faulted, a setpoint answered
    with an error; a setpoint lost with its connection (communication); a vehicle plugged in
    for only five minutes of the event, with no reading, is not a silent charger."""
    program = load_program("example")
    store = Store(f"sqlite:///{tmp_path / 'ops.db'}")
    try:
        events = _announce(store)
        events.opt_out(EVENT, "business-worcester")
        rows: list[tuple[object, dict[str, object]]] = []
        for station, answer in (("depot-evse1", "Offline"), ("biz-evse1", "Error")):
            setpoint = {
                "station_id": station,
                "evse_id": 1,
                "power_kw": -10.0,
                "power_w_sent": -10000.0,
                "valid_until": T + timedelta(hours=1),
                "sent_at": T + timedelta(minutes=20),
                "status": answer,
            }
            rows.append((db.setpoints_sent, setpoint))
        status = {"station_id": "depot-evse2", "evse_id": 1, "connector_id": 1}
        rows.append((db.evse_status, status | {"status": "Faulted", "at": T - timedelta(days=2)}))
        for kind, at in (("Started", T - timedelta(hours=1)), ("Ended", T + timedelta(minutes=5))):
            record = {"station_id": "biz-evse2", "evse_id": 1, "transaction_id": "tx-b"}
            rows.append(
                (
                    db.transaction_events,
                    record | {"event_type": kind, "at": at, "received_at": at, "payload": {}},
                )
            )
        store.write(rows).result(10)
        conditions = measured_season(
            store, program, events.book(), T - timedelta(hours=2), T + timedelta(hours=4)
        ).conditions.set_index("site_id")
    finally:
        store.close()
    depot, business = conditions.loc["school-beverly"], conditions.loc["business-worcester"]
    assert (depot["faulted_chargers"], depot["silent_chargers"]) == (1, 1)
    assert (business["faulted_chargers"], business["silent_chargers"]) == (1, 0)
    assert (bool(business["opted_out"]), bool(depot["opted_out"])) == (True, False)


def test_sessions_whose_end_was_lost_and_sessions_open_at_the_start(tmp_path: Path) -> None:
    """bus-7 plugged in the day before and its Ended lost; the charger reported Available at
    16:00 EDT: plugged until then, and not judged as a departure (no reading of its own).
    bus-12's session has no end and nothing after it but a reboot: plugged to the end of the
    period. An older lost session ends at the next transaction, even one before the period."""
    program = load_program("example")
    store = Store(f"sqlite:///{tmp_path / 'ops.db'}")
    try:
        rows: list[tuple[object, dict[str, object]]] = []
        for station, tx, at in (
            ("depot-evse1", "tx-7", T - timedelta(days=1)),
            ("depot-evse2", "tx-12", T - timedelta(hours=1)),
        ):
            record = {"station_id": station, "evse_id": 1, "transaction_id": tx}
            rows.append(
                (
                    db.transaction_events,
                    record | {"event_type": "Started", "at": at, "received_at": at, "payload": {}},
                )
            )
        free = {"station_id": "depot-evse1", "evse_id": 1, "connector_id": 1}
        rows.append((db.evse_status, free | {"status": "Available", "at": T + timedelta(hours=1)}))
        # A charger's boot (connector 0 Available) says nothing of the vehicle plugged in.
        boot = {"station_id": "depot-evse2", "evse_id": 0, "connector_id": 0}
        rows.append((db.evse_status, boot | {"status": "Available", "at": T}))
        # biz-evse1: tx-a lost its end; tx-b came and went two days ago: tx-a ended by then.
        for tx, kind, at in (
            ("tx-a", "Started", T - timedelta(days=3)),
            ("tx-b", "Started", T - timedelta(days=2)),
            ("tx-b", "Ended", T - timedelta(days=2) + timedelta(hours=1)),
        ):
            record = {"station_id": "biz-evse1", "evse_id": 1, "transaction_id": tx}
            rows.append(
                (
                    db.transaction_events,
                    record | {"event_type": kind, "at": at, "received_at": at, "payload": {}},
                )
            )
        sample = {"station_id": "depot-evse2", "evse_id": 1, "transaction_id": "tx-12"}
        rows.append((db.meter_samples, sample | {"at": T, "power_kw": 20.0, "soc": 0.5}))
        store.write(rows).result(10)
        since, until = T - timedelta(hours=2), T + timedelta(hours=3)
        season = measured_season(store, program, events_book(store), since, until)
    finally:
        store.close()
    depot = next(r for r in season.run.runs if r.site_id == "school-beverly")
    # The period runs from the first record in it (T - 1 h) to the last (T + 1 h) + 15 min.
    assert (season.run.start, season.run.n_steps) == (T - timedelta(hours=1), 9)
    assert list(depot.plugged[0]) == [True] * 8 + [False]  # Available at T + 1 h
    assert list(depot.plugged[1]) == [True] * 9  # still open, whatever the boot said
    assert depot.departure_short_kwh.sum() == 0.0
    business = next(r for r in season.run.runs if r.site_id == "business-worcester")
    assert not business.plugged.any()


def _announce(store: Store) -> EventService:
    """The day before: C&I daily dispatch, 15:00-18:00 EDT on 15 July."""
    events = EventService(store, SimClock(T - timedelta(days=1)))
    events.submit(
        {
            "event_id": EVENT,
            "program_id": "cs-ci-daily",
            "start": T.isoformat(),
            "end": (T + timedelta(hours=3)).isoformat(),
        }
    )
    return events


def events_book(store: Store) -> EventBook:
    return EventService(store, SimClock(T)).book()
