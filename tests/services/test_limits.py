"""What bounds each vehicle's setpoints: the program, the registered rating, what the vehicle
declared and what its charger showed it accepts (lightson.services.limits), alone and through
the live loop."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightson.control.safety import SafetyRule
from lightson.domain.plan import Setpoint
from lightson.domain.telemetry import PowerLimits
from lightson.domain.time import SimClock
from lightson.services.limits import SessionLimits, effective_site
from lightson.services.live import LiveControl
from lightson.store import StationRecord, Store
from lightson.store import schema as db
from live_support import IN_EVENT, FakeSink, events_of, plugged, school
from net_support import run

MORNING = datetime(2026, 7, 15, 12, tzinfo=UTC)  # 08:00 EDT: no event, no route (summer)
SITE = "school-beverly"
STATIONS = ("depot-evse1", "depot-evse2")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    store = Store(f"sqlite:///{tmp_path / 'limits.db'}")
    yield store
    store.close()


def declare(store: Store, station_id: str, at: datetime, **given: Any) -> None:
    """Charging needs as the CSMS stores them: a departure in an hour wanting 90 % and the
    power limits given (kW), or the columns given."""
    row = {
        "station_id": station_id,
        "evse_id": 1,
        "at": at,
        "departure": at + timedelta(hours=1),
        "target_soc": 0.9,
        "bidirectional": True,
        **given,
    }
    store.write([(db.charging_needs, row)]).result(5)


def register(store: Store, station_id: str, max_charge_kw: float) -> None:
    store.add_station(
        StationRecord(station_id, "scrypt$x", "2.1", "central-setpoint", max_charge_kw)
    )


def sent_kw(sink: FakeSink) -> dict[str, float]:
    return {station: setpoint.power_kw for station, _, setpoint, _ in sink.sent}


# --- the tightest limit counts ------------------------------------------------------------------


def test_the_tightest_of_program_rating_declared_and_learned_counts() -> None:
    site = school().site(SITE)
    limited = effective_site(
        site,
        {"depot-evse1": PowerLimits(11.0, 5.0, 1.0, 1.4)},
        {"depot-evse1": 19.2, "depot-evse2": 150.0},  # a rating above the program's: no effect
        {"depot-evse1": PowerLimits(max_discharge_kw=3.0)},
    )
    bus7, bus12 = limited.vehicles
    assert (bus7.max_charge_kw, bus7.max_discharge_kw) == (11.0, 3.0)
    assert (bus7.min_charge_kw, bus7.min_discharge_kw) == (1.0, 1.4)
    assert limited.charger("depot-evse1").max_charge_kw == 19.2
    assert limited.charger("depot-evse2") == site.charger("depot-evse2")
    assert bus12 == site.vehicles[1]
    assert effective_site(site, {}, {}, {}) is site  # nothing said: the same site


def test_a_minimum_above_what_is_left_closes_that_direction() -> None:
    site = school().site(SITE)
    limited = effective_site(
        site,
        {
            "depot-evse1": PowerLimits(
                max_discharge_kw=5.0, min_charge_kw=15.0, min_discharge_kw=1.4
            )
        },
        {"depot-evse1": 11.0},  # the charger gives at most 11 kW: a 15 kW minimum can't be met
        {"depot-evse1": PowerLimits(max_discharge_kw=1.0)},  # and 1.4 kW is above 1.0 kW
    )
    bus7 = limited.vehicles[0]
    assert (bus7.max_charge_kw, bus7.max_discharge_kw) == (0.0, 0.0)


# --- what a session shows ------------------------------------------------------------------------


def test_a_rejected_discharge_allows_only_what_was_accepted_in_the_session() -> None:
    sessions = SessionLimits()
    now = MORNING
    assert sessions.answered("cs", "tx", -3.0, "Accepted", now) is None
    note = sessions.answered("cs", "tx", -5.0, "Rejected", now)
    assert note == "rejected: at most 3.0 kW of discharge this session"
    assert sessions.limits("cs", "tx", now) == PowerLimits(max_discharge_kw=3.0)
    assert sessions.answered("cs", "tx", -4.0, "Rejected", now) is None  # nothing new
    # A new transaction at the station starts afresh; there, nothing accepted: no discharge.
    assert sessions.limits("cs", "tx-2", now) == PowerLimits()
    note = sessions.answered("cs", "tx-2", -5.0, "Rejected", now)
    assert note == "rejected: at most 0.0 kW of discharge this session"
    assert sessions.limits("cs", "tx-2", now) == PowerLimits(max_discharge_kw=0.0)


def test_a_refused_charge_with_nothing_smaller_accepted_or_no_answer_teaches_nothing() -> None:
    sessions = SessionLimits()
    assert sessions.answered("cs", "tx", 20.0, "Rejected", MORNING) is None
    assert sessions.answered("cs", "tx", -20.0, "Timeout", MORNING) is None
    assert sessions.answered("cs", "tx", -20.0, "Error", MORNING) is None
    assert sessions.answered("cs", None, -20.0, "Rejected", MORNING) is None
    assert sessions.limits("cs", "tx", MORNING) == PowerLimits()
    sessions.answered("cs", "tx", 11.0, "Accepted", MORNING)
    assert sessions.answered("cs", "tx", 20.0, "Rejected", MORNING) is not None
    assert sessions.limits("cs", "tx", MORNING) == PowerLimits(max_charge_kw=11.0)


def test_a_charger_metering_well_below_its_setpoint_is_taken_at_what_it_delivers() -> None:
    sessions = SessionLimits()
    sessions.answered("cs", "tx", 60.0, "Accepted", MORNING)
    later = MORNING + timedelta(minutes=5)
    sessions.answered("cs", "tx", 58.0, "Accepted", later)  # within 5 %: still the same hold
    first = MORNING + timedelta(seconds=10)  # before it settled: not counted
    readings = [(first, 5.0)] + [(MORNING + timedelta(minutes=m), 19.96) for m in (1, 2)]
    assert sessions.metered("cs", "tx", readings, later) is None  # two readings: not yet
    readings.append((MORNING + timedelta(minutes=3), 19.5))
    note = sessions.metered("cs", "tx", readings, later)
    assert note == "clamped: 19.9 kW of charge metered for 58.0 kW asked; at most that for 1 h"
    assert sessions.limits("cs", "tx", later) == PowerLimits(max_charge_kw=19.9)
    assert sessions.metered("cs", "tx", readings, later) is None  # those readings are spent
    assert sessions.limits("cs", "tx", later + timedelta(hours=1)) == PowerLimits()


def test_readings_near_the_setpoint_or_after_a_new_one_teach_nothing() -> None:
    sessions = SessionLimits()
    sessions.answered("cs", "tx", -40.0, "Accepted", MORNING)
    near = [(MORNING + timedelta(minutes=m), -33.0) for m in (1, 2, 3)]  # 82 % of it
    assert sessions.metered("cs", "tx", near, MORNING) is None
    changed = MORNING + timedelta(minutes=4)
    sessions.answered("cs", "tx", -20.0, "Accepted", changed)  # a new setpoint: a new hold
    low = [(MORNING + timedelta(minutes=m), -1.0) for m in (1, 2, 3)]
    assert sessions.metered("cs", "tx", low, changed) is None


# --- through the live loop ----------------------------------------------------------------------


def test_declared_limits_bound_the_setpoints_of_an_event(store: Store) -> None:
    # The reproduction: a station declaring maxDischargePower 5000 W was sent -41952 W.
    program = school()
    for station in STATIONS:
        plugged(store, station, 0.8, IN_EVENT - timedelta(minutes=2), tx=f"tx-{station}")
    said = IN_EVENT - timedelta(minutes=2)
    declare(store, "depot-evse1", said, departure=None, target_soc=None, max_discharge_kw=5.0)
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    run(loop.tick(SITE))
    power = sent_kw(sink)
    assert power["depot-evse1"] == pytest.approx(-5.0)
    assert power["depot-evse2"] < -5.0  # nothing declared there: the program's 60 kW


def test_declared_and_registered_charge_limits_bound_the_setpoints(store: Store) -> None:
    # The reproductions: EVs declaring maxChargePower 11000 W were sent +56554.7 and +19200 W,
    # and a station registered with --max-charge-kw 11 was bounded only in its default profile.
    program = school()
    for station in STATIONS:
        plugged(store, station, 0.3, MORNING - timedelta(minutes=2), tx=f"tx-{station}")
    declare(store, "depot-evse1", MORNING - timedelta(minutes=2), max_charge_kw=11.0)
    declare(store, "depot-evse2", MORNING - timedelta(minutes=2))  # a departure, no limits
    register(store, "depot-evse2", 19.2)
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(MORNING), events_of(program))
    run(loop.tick(SITE))
    # Both need more than an hour at any of these powers to reach 90 %: all they may take.
    assert sent_kw(sink) == {
        "depot-evse1": pytest.approx(11.0),
        "depot-evse2": pytest.approx(19.2),
    }


def test_limits_declared_by_the_car_before_do_not_bind_the_next(store: Store) -> None:
    program = school()
    said = IN_EVENT - timedelta(hours=3)
    declare(store, "depot-evse1", said, departure=None, target_soc=None, max_discharge_kw=5.0)
    plugged(store, "depot-evse1", 0.8, IN_EVENT - timedelta(minutes=2), tx="now")
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    run(loop.tick(SITE))
    assert sent_kw(sink)["depot-evse1"] < -5.0


def test_a_discharge_below_the_declared_minimum_is_not_sent(store: Store) -> None:
    # The reproduction: an EV declaring minDischargePower 1400 W was sent -230.9 W. Here the
    # plan asks bus-7 for less than 0.7 kW (its floor allows no more): 0 is sent.
    program = school()
    floor_soc = 0.2  # summer: no route, the floor is the departure floor
    above_kwh = 0.6 * (10 / 60) / 0.92  # 0.6 kW for the 10-minute hold
    plugged(store, "depot-evse1", floor_soc + above_kwh / 226.0, IN_EVENT - timedelta(minutes=2))
    declare(
        store,
        "depot-evse1",
        IN_EVENT - timedelta(minutes=2),
        departure=None,
        target_soc=None,
        min_discharge_kw=1.4,
    )
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    status = run(loop.tick(SITE))
    assert sent_kw(sink)["depot-evse1"] == 0.0
    [(rule, asked_kw)] = [
        (i.rule, i.requested_kw) for i in status.interventions if i.evse_id == "depot-evse1"
    ]
    assert rule is SafetyRule.DECLARED_MINIMUM and -0.7 < asked_kw < 0.0


class AnsweringSink(FakeSink):
    """A sink whose stations refuse every discharge (``Rejected``)."""

    async def send_setpoint(self, *args: Any, **kwargs: Any) -> str:
        await super().send_setpoint(*args, **kwargs)
        setpoint: Setpoint = args[2]
        return "Rejected" if setpoint.power_kw < 0 else "Accepted"


def test_a_rejected_discharge_wakes_the_site_and_it_re_plans_without_discharge(
    store: Store,
) -> None:
    program = school()
    for station in STATIONS:
        plugged(store, station, 0.8, IN_EVENT - timedelta(minutes=2), tx=f"tx-{station}")
    sink = AnsweringSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), events_of(program))
    first = run(loop.tick(SITE))
    assert all(s.power_kw < -1.0 for s in first.setpoints)  # into the event
    assert first.answers == {"depot-evse1": "Rejected", "depot-evse2": "Rejected"}
    assert loop._woken_for == {SITE}  # re-plans at once
    controller = loop._sites[SITE].controller
    second = run(loop.tick(SITE))
    assert controller.plans_made == 2  # type: ignore[attr-defined]
    assert all(s.power_kw >= 0.0 for s in second.setpoints)
    assert set(second.answers.values()) == {"Accepted"}


def test_a_charger_that_holds_back_is_planned_at_what_it_delivers(store: Store) -> None:
    program = school()
    plugged(store, "depot-evse1", 0.3, MORNING - timedelta(minutes=2), tx="tx")
    declare(store, "depot-evse1", MORNING - timedelta(minutes=2))
    clock = SimClock(MORNING)
    sink = FakeSink()
    loop = LiveControl(program, store, sink, clock, events_of(program))
    run(loop.tick(SITE))
    assert sent_kw(sink)["depot-evse1"] == pytest.approx(60.0)
    readings = [  # the charger delivers 20 kW of the 60 asked, minute after minute
        (
            db.meter_samples,
            {
                "station_id": "depot-evse1",
                "evse_id": 1,
                "transaction_id": "tx",
                "at": MORNING + timedelta(minutes=m),
                "power_kw": 20.0,
                "soc": 0.3 + 0.0015 * m,
            },
        )
        for m in (1, 2, 3, 4)
    ]
    store.write(readings).result(5)
    clock.advance(timedelta(minutes=5))
    sink.sent.clear()
    run(loop.tick(SITE))
    assert sent_kw(sink)["depot-evse1"] == pytest.approx(20.0)


@settings(max_examples=25, deadline=None)
@given(
    max_charge_w=st.one_of(st.none(), st.integers(0, 80_000)),
    min_charge_w=st.one_of(st.none(), st.integers(0, 15_000)),
    max_discharge_w=st.one_of(st.none(), st.integers(0, 80_000)),
    min_discharge_w=st.one_of(st.none(), st.integers(0, 15_000)),
    rating_kw=st.one_of(st.none(), st.floats(1.0, 100.0)),
    soc=st.floats(0.1, 0.95),
    in_event=st.booleans(),
)
def test_every_setpoint_sent_lies_within_the_declared_limits(
    max_charge_w: int | None,
    min_charge_w: int | None,
    max_discharge_w: int | None,
    min_discharge_w: int | None,
    rating_kw: float | None,
    soc: float,
    in_event: bool,
) -> None:
    def kw(watts: int | None) -> float | None:
        return None if watts is None else watts / 1000.0

    now = IN_EVENT if in_event else MORNING
    program = school()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'limits.db'}")
        try:
            for station in STATIONS:
                plugged(store, station, soc, now - timedelta(minutes=2), tx=f"tx-{station}")
                declare(
                    store,
                    station,
                    now - timedelta(minutes=2),
                    max_charge_kw=kw(max_charge_w),
                    min_charge_kw=kw(min_charge_w),
                    max_discharge_kw=kw(max_discharge_w),
                    min_discharge_kw=kw(min_discharge_w),
                )
                if rating_kw is not None:
                    register(store, station, rating_kw)
            sink = FakeSink()
            loop = LiveControl(program, store, sink, SimClock(now), events_of(program))
            run(loop.tick(SITE))
        finally:
            store.close()
    top_charge = min(60.0, kw(max_charge_w) or 60.0, rating_kw or 60.0)
    if max_charge_w == 0:
        top_charge = 0.0
    top_discharge = min(60.0, 60.0 if max_discharge_w is None else max_discharge_w / 1000.0)
    low_charge, low_discharge = kw(min_charge_w) or 0.0, kw(min_discharge_w) or 0.0
    tol = 1e-6
    assert len(sink.sent) == 2
    for _, _, setpoint, _ in sink.sent:
        power = setpoint.power_kw
        assert (
            power == 0.0
            or low_charge - tol <= power <= top_charge + tol
            or low_discharge - tol <= -power <= top_discharge + tol
        ), (power, sink.sent)


def test_a_setpoint_of_zero_accepted_is_no_sign_of_a_charger_holding_back() -> None:
    """After -30 kW, 0 W accepted (the event is over): readings of 0 kW are what was asked,
    not a charger delivering less than -30 kW."""
    sessions = SessionLimits()
    assert sessions.answered("cs", "tx", -30.0, "Accepted", MORNING) is None
    assert sessions.answered("cs", "tx", 0.0, "Accepted", MORNING + timedelta(minutes=5)) is None
    readings = [(MORNING + timedelta(minutes=m), 0.0) for m in (6, 7, 8, 9)]
    assert sessions.metered("cs", "tx", readings, MORNING + timedelta(minutes=10)) is None
    assert sessions.limits("cs", "tx", MORNING + timedelta(minutes=10)) == PowerLimits()


def test_islanded_the_meters_are_not_taken_for_a_charger_holding_back(store: Store) -> None:
    """Islanded a bus gives what the building draws, not its setpoint: no limit is learned."""
    from lightson.services.limits import limited_site
    from lightson.store.live import station_states

    program = school()
    site = program.site(SITE)
    plugged(store, "depot-evse1", 0.8, MORNING - timedelta(minutes=2), tx="tx")
    sessions = SessionLimits()
    sessions.answered("depot-evse1", "tx", -40.0, "Accepted", MORNING)
    store.write(
        [
            (
                db.meter_samples,
                {
                    "station_id": "depot-evse1",
                    "evse_id": 1,
                    "transaction_id": "tx",
                    "at": MORNING + timedelta(minutes=m),
                    "power_kw": -12.0,
                    "soc": 0.8,
                },
            )
            for m in (1, 2, 3, 4)
        ]
    ).result(5)
    states = station_states(store, STATIONS)
    now = MORNING + timedelta(minutes=5)
    limited, notes = limited_site(site, states, store, sessions, now, timedelta(minutes=1), True)
    assert notes == {} and limited.vehicles == site.vehicles
    _, notes = limited_site(site, states, store, sessions, now, timedelta(minutes=1), False)
    assert "clamped: 12.0 kW of discharge" in notes["depot-evse1"]  # on the grid it would
