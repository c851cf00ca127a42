"""The live loop plans a vehicle on the availability learned from its charger's recorded
sessions once it has enough of them, on the program file's schedule before, and the owner's
stated departure moves the learned trip of its day. Sessions are written to the store as the
CSMS writes them (Started / Ended transaction events, register readings)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from lightson.config import load_program
from lightson.domain.assets import Program
from lightson.domain.time import SimClock, TimeGrid
from lightson.forecast.availability import WEEKDAYS
from lightson.services.availability import recorded_sessions
from lightson.services.departures import set_departure
from lightson.services.live import LiveControl
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.live import station_states
from live_support import FakeSink
from net_support import run

TZ = ZoneInfo("America/New_York")
STATION = "home-lowell-evse1"
NOW = datetime(2026, 3, 18, 12, 0, tzinfo=TZ)  # a Wednesday
# The 12 weekdays from Monday 2 to Tuesday 17 March 2026
WEEKDAY_DATES = [d for d in range(2, 18) if datetime(2026, 3, d).weekday() < 5]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'availability.db'}")
    yield opened
    opened.close()


@pytest.fixture
def home() -> Program:
    program = load_program("example")
    return replace(program, sites=(program.site("home-lowell"),))


def record(
    store: Store, tx: str, start: datetime, end: datetime | None, kwh_in: float, kwh_out: float
) -> None:
    """A session as the CSMS stores it: Started, register readings at both ends, Ended."""
    base = {"station_id": STATION, "evse_id": 1, "transaction_id": tx, "payload": {}}
    rows = [
        (db.transaction_events, {**base, "seq_no": 0, "event_type": "Started", "at": start,
                                 "received_at": start}),
        (db.meter_samples, {"station_id": STATION, "evse_id": 1, "transaction_id": tx,
                            "at": start, "energy_imported_kwh": 100.0,
                            "energy_exported_kwh": 50.0}),
    ]  # fmt: skip
    if end is not None:
        rows += [
            (db.meter_samples, {"station_id": STATION, "evse_id": 1, "transaction_id": tx,
                                "at": end, "energy_imported_kwh": 100.0 + kwh_in,
                                "energy_exported_kwh": 50.0 + kwh_out}),
            (db.transaction_events, {**base, "seq_no": 1, "event_type": "Ended", "at": end,
                                     "received_at": end}),
        ]  # fmt: skip
    store.write(rows).result(5)


def commute(store: Store) -> None:
    """Plugged in at 18:00 each weekday, leaving 07:30 the next weekday; each session takes
    15 kWh and gives 3 back in V2X (12 kWh net: what the trip used)."""
    for n, day in enumerate(WEEKDAY_DATES):
        following = WEEKDAY_DATES[n + 1] if n + 1 < len(WEEKDAY_DATES) else 18
        record(
            store,
            f"tx-{n}",
            datetime(2026, 3, day, 18, 0, tzinfo=TZ),
            datetime(2026, 3, following, 7, 30, tzinfo=TZ),
            15.0,
            3.0,
        )


def test_sessions_are_read_with_their_net_energy_and_open_ones_left_out(
    database_url: str,
) -> None:
    store = Store(database_url)
    try:
        commute(store)
        record(store, "open", datetime(2026, 3, 18, 11, 0, tzinfo=TZ), None, 0.0, 0.0)
        found = recorded_sessions(store, STATION, NOW - timedelta(days=56), NOW)
        assert len(found) == 12
        assert found[0].plugged_in == datetime(2026, 3, 2, 18, 0, tzinfo=TZ)
        assert found[0].left == datetime(2026, 3, 3, 7, 30, tzinfo=TZ)
        assert {s.energy_kwh for s in found} == {12.0}
        # a lookback that starts after the first session leaves it out
        later = datetime(2026, 3, 3, tzinfo=TZ)
        assert len(recorded_sessions(store, STATION, later, NOW)) == 11
    finally:
        store.close()


@pytest.mark.parametrize(
    ("reason", "kept"), [("CsmsOffline", 0), ("CsmsBoot", 0), ("CsmsAvailable", 1)]
)
def test_a_session_the_csms_closed_for_a_lost_station_is_not_a_departure(
    store: Store, reason: str, kept: int
) -> None:
    """Closed because the station went offline or rebooted: its end says nothing about the
    EV; closed because the connector was reported Available: the EV left then."""
    start = datetime(2026, 3, 2, 18, 0, tzinfo=TZ)
    record(store, "lost", start, None, 0.0, 0.0)
    closing = {
        "station_id": STATION, "evse_id": 1, "transaction_id": "lost", "seq_no": None,
        "event_type": "Ended", "trigger_reason": reason, "at": start + timedelta(hours=5),
        "received_at": start + timedelta(hours=5), "payload": {"reason": "test"},
    }  # fmt: skip
    store.write([(db.transaction_events, closing)]).result(5)
    found = recorded_sessions(store, STATION, NOW - timedelta(days=56), NOW)
    assert [s.left for s in found] == [start + timedelta(hours=5)] * kept


def away_steps(loop: LiveControl, program: Program, departures: object = None) -> list[int]:
    """The 15-minute intervals of Thursday 19 March the lightning is away, as planned."""
    grid = TimeGrid(datetime(2026, 3, 19, tzinfo=TZ), 96)
    schedules = loop._schedules(program.site("home-lowell"), grid, departures or {}, NOW)  # type: ignore[arg-type]
    return np.flatnonzero(schedules["lightning"].away).tolist()


def test_with_enough_sessions_the_learned_trips_replace_the_schedule(
    store: Store, home: Program
) -> None:
    commute(store)
    loop = LiveControl(home, store, FakeSink(), SimClock(NOW), availability_min_sessions=12)
    # The program file: weekdays 06:30-14:30 (intervals 26 to 57)
    assert away_steps(loop, home) == list(range(26, 58))
    run(loop.tick("home-lowell"))  # the tick learns
    assert loop.availability is not None
    learned = loop.availability.learned("home-lowell")["lightning"]
    (trip,) = learned.days["weekday"].trips
    assert (trip.depart_local, trip.return_local, trip.energy_kwh[0.9]) == (
        time(7, 30),
        time(18, 0),
        12.0,
    )
    assert learned.days["weekend"].trips == ()
    assert [t.weekdays for t in loop.availability.trips(home.site("home-lowell"))["lightning"]] == [
        WEEKDAYS
    ]
    # Learned: away 07:30-18:00 (intervals 30 to 71), needing 12 kWh at 07:30
    assert away_steps(loop, home) == list(range(30, 72))
    grid = TimeGrid(datetime(2026, 3, 19, tzinfo=TZ), 96)
    schedule = loop._schedules(home.site("home-lowell"), grid, {}, NOW)["lightning"]
    assert schedule.departure_trip_kwh[29] == 12.0
    assert schedule.trip_energy_kwh[30:72].sum() == pytest.approx(12.0)


def test_too_few_sessions_keep_the_program_schedule(store: Store, home: Program) -> None:
    commute(store)
    loop = LiveControl(home, store, FakeSink(), SimClock(NOW), availability_min_sessions=13)
    run(loop.tick("home-lowell"))
    assert loop.availability is not None and loop.availability.learned("home-lowell") == {}
    assert away_steps(loop, home) == list(range(26, 58))
    off = LiveControl(home, store, FakeSink(), SimClock(NOW), availability_min_sessions=None)
    run(off.tick("home-lowell"))
    assert off.availability is None and away_steps(off, home) == list(range(26, 58))


def test_the_owners_departure_moves_the_learned_trip_of_its_day(
    store: Store, home: Program
) -> None:
    """The owner says Thursday 09:00: that day's learned trip (07:30, 10.5 h) leaves at
    09:00 instead and keeps its length: away 09:00-19:30 (intervals 36 to 77)."""
    commute(store)
    loop = LiveControl(home, store, FakeSink(), SimClock(NOW), availability_min_sessions=12)
    run(loop.tick("home-lowell"))
    site = home.site("home-lowell")
    set_departure(
        store, site, "lightning", datetime(2026, 3, 19, 9, 0, tzinfo=TZ), None, "owner", NOW
    )
    departures = loop._departures(site, station_states(store, [STATION]), NOW)
    assert departures == {"lightning": (datetime(2026, 3, 19, 9, 0, tzinfo=TZ), None)}
    assert away_steps(loop, home, departures) == list(range(36, 78))


class _StoppedError(Exception):
    pass


@pytest.mark.parametrize(("given", "expected"), [([], 10), (["0"], None), (["14"], 14)])
def test_serve_passes_the_minimum_of_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: list[str], expected: int | None
) -> None:
    from click.testing import CliRunner

    from lightson.cli import main
    from lightson.cli import serve as serve_cli

    seen: list[object] = []

    def recording(*_: object, **options: object) -> None:
        seen.append(options["availability_min_sessions"])
        raise _StoppedError

    monkeypatch.setattr(serve_cli, "OperationsServer", recording)
    option = ["--learn-availability-after", *given] if given else []
    result = CliRunner().invoke(
        main, ["serve", "example", "--db", f"sqlite:///{tmp_path / 's.db'}", *option]
    )
    assert isinstance(result.exception, _StoppedError)
    assert seen == [expected]
