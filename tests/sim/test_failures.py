"""The twin's failure model: a hand-made depot with two 20 kW buses, faults at known times,
opt-outs and summer routes whose lost event kW are computed by hand; reproducibility; and the
program file's validation of the ``failures:`` section."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lightson.config.loader import parse_program
from lightson.domain.assets import Program
from lightson.domain.errors import ConfigError
from lightson.domain.failures import Delay, FailureCause
from lightson.physics.trips import TripOccurrence
from lightson.sim.engine import SiteRun, simulate_site
from lightson.sim.failures import CAUSE_CODES, _shifted
from lightson.sim.kpis import EventPerformance, site_kpis
from lightson.sim.output import CONDITIONS_FILE
from lightson.sim.runner import ProgramRun

# The event 15:00–18:00 is 12 steps of 15 minutes; each bus gives at most 20 kW (charger and
# vehicle limit), so both give 40 kW: the building draws 60 kW and the batteries hold far more
# than 3 h × 20 kW, so the LP gives all it can for a 200 $/kW-season payment.
BUS_KW = 20.0
EVENT_STEPS = 12


def depot_document(**extra: Any) -> dict[str, Any]:
    bus = {"model": "thomas-jouley-226", "max_discharge_kw": BUS_KW, "max_charge_kw": BUS_KW}
    charger = {"model": "dc-bidirectional-60", "max_discharge_kw": BUS_KW, "max_charge_kw": BUS_KW}
    document: dict[str, Any] = {
        "program": {"name": "failures-test", "weather": None},
        "tariffs": {"flat": {"energy_usd_per_kwh": 0.2}},
        "dr_programs": {
            "dd": {
                "name": "Daily Dispatch",
                "rate_usd_per_kw_season": 200.0,
                "expected_events": 30,
                "expected_event_hours": 3.0,
            }
        },
        "events": [
            {
                "id": "e1",
                "program": "dd",
                "start": "2026-07-15T15:00",
                "end": "2026-07-15T18:00",
                "announced": "2026-07-14T16:00",
            }
        ],
        "sites": [
            {
                "id": "depot",
                "kind": "school",
                "utility": "national-grid",
                "service_limit_kw": 500.0,
                "export_permitted": True,
                "tariff": "flat",
                "building": {"constant_kw": 60.0},
                "enrollments": ["dd"],
                "chargers": [{"id": "c1", **charger}, {"id": "c2", **charger}],
                "vehicles": [
                    {"id": "bus-1", "charger": "c1", "initial_soc": 0.9, **bus},
                    {"id": "bus-2", "charger": "c2", "initial_soc": 0.9, **bus},
                ],
            }
        ],
    }
    document.update(extra)
    return document


def program_of(document: dict[str, Any]) -> Program:
    return parse_program(yaml.safe_dump(document))


def run_depot(program: Program, seed: int = 0) -> tuple[SiteRun, EventPerformance]:
    start = datetime(2026, 7, 15, tzinfo=program.timezone)
    run = simulate_site(program, "depot", "perfect-foresight", start, 96, seed)
    _, events = site_kpis(program, run)
    (event,) = events
    return run, event


def fault(start: str, end: str, cause: str = "fault", charger: str = "c1") -> dict[str, str]:
    return {"site": "depot", "charger": charger, "cause": cause, "start": start, "end": end}


@pytest.fixture(scope="module")
def perfect() -> EventPerformance:
    return run_depot(program_of(depot_document()))[1]


def test_without_failures_both_buses_give_their_full_power(perfect: EventPerformance) -> None:
    assert perfect.delivered_kw == pytest.approx(2 * BUS_KW, abs=1e-6)
    assert all(perfect.lost_kw(cause) == 0.0 for cause in FailureCause)


def test_a_fault_over_the_whole_event_loses_exactly_that_chargers_kw(
    perfect: EventPerformance,
) -> None:
    program = program_of(
        depot_document(charger_downtime=[fault("2026-07-15T14:00", "2026-07-15T19:00")])
    )
    run, event = run_depot(program)
    assert event.lost_kw(FailureCause.FAULT) == pytest.approx(BUS_KW)
    assert event.delivered_kw == pytest.approx(perfect.delivered_kw - BUS_KW, abs=1e-6)
    in_fault = slice(56, 76)  # 14:00–19:00: the faulted charger gives nothing
    assert np.all(run.power_kw[0, in_fault] == 0.0)
    assert run.failure_cause is not None
    assert np.all(run.failure_cause[0, in_fault] == CAUSE_CODES[FailureCause.FAULT])
    assert np.all(run.failure_cause[1] == 0)


def test_a_one_hour_fault_inside_the_event_loses_a_third_of_the_charger(
    perfect: EventPerformance,
) -> None:
    program = program_of(
        depot_document(charger_downtime=[fault("2026-07-15T16:00", "2026-07-15T17:00")])
    )
    _, event = run_depot(program)
    assert event.lost_kw(FailureCause.FAULT) == pytest.approx(BUS_KW * 4 / EVENT_STEPS)
    assert event.delivered_kw == pytest.approx(perfect.delivered_kw - BUS_KW / 3, abs=1e-6)


def test_a_silent_charger_falls_back_to_charging_and_its_kw_go_to_comms() -> None:
    program = program_of(
        depot_document(
            charger_downtime=[fault("2026-07-15T15:00", "2026-07-15T18:00", cause="comms")]
        )
    )
    run, event = run_depot(program)
    window = slice(60, 72)
    assert event.lost_kw(FailureCause.COMMS) == pytest.approx(BUS_KW)
    assert event.lost_kw(FailureCause.FAULT) == 0.0
    # The charge-only default: full power while the battery has room (90 % at the start).
    assert np.all(run.power_kw[0, window] >= 0.0)
    assert run.power_kw[0, 60] == pytest.approx(BUS_KW)
    assert run.power_kw[0, 71] == 0.0  # full before the end
    assert run.energy_kwh[0, 71] == pytest.approx(226.0)
    # The other bus gives 20 kW; what the silent one takes to fill up comes off it.
    charged_kw = float(run.power_kw[0, window].mean())
    assert 0.0 < charged_kw < BUS_KW
    assert event.delivered_kw == pytest.approx(BUS_KW - charged_kw, abs=1e-6)


def test_opt_out_probability_one_gives_zero_kw_attributed_to_the_opt_out(
    tmp_path: Path,
) -> None:
    program = program_of(depot_document(failures={"opt_out": {"school": 1.0}}))
    run, event = run_depot(program)
    assert run.opted_out == frozenset({"e1"})
    assert event.delivered_kw == 0.0
    assert event.lost_kw(FailureCause.OPT_OUT) == pytest.approx(2 * BUS_KW)
    kpis, _ = site_kpis(program, run)
    assert kpis.events_opted_out == 1
    assert kpis.lost_event_kw_opt_out == pytest.approx(2 * BUS_KW)
    assert kpis.dr_payment_usd == 0.0
    # The run folder says so as a live season's does, and the report names the cause.
    from lightson.reports.program_report import read_run, render_html, report_tables
    from lightson.sim.output import write_run

    whole = ProgramRun("perfect-foresight", run.start, run.n_steps, 0, (run,))
    write_run(program, whole, [kpis], [event], tmp_path)
    conditions = pd.read_csv(tmp_path / CONDITIONS_FILE)
    assert conditions.to_dict("records") == [
        {
            "event_id": "e1",
            "site_id": "depot",
            "opted_out": True,
            "faulted_chargers": 0,
            "silent_chargers": 0,
        }
    ]
    folder = read_run(tmp_path)
    tables = report_tables([folder])
    (reason,) = tables["event_sites"]["reason"]
    assert reason == "opted out"
    html = render_html([folder], tables, files=False)
    # named and grouped by the one cause table (domain.failures.CAUSES)
    assert "<li>opted out (owner): 40.0 kW</li>" in html
    assert "<li>charger fault (equipment): 0.0 kW</li>" in html


def test_a_summer_route_across_the_event_is_attributed_to_the_route() -> None:
    route = {"probability": 1.0, "depart": "15:30", "return": "16:30", "energy_kwh": 10.0}
    program = program_of(depot_document(failures={"summer_route": route}))
    run, event = run_depot(program)
    # Both buses away 15:30–16:30: 4 of 12 steps, 20 kW each.
    assert event.lost_kw(FailureCause.ROUTE) == pytest.approx(2 * BUS_KW * 4 / EVENT_STEPS)
    assert not run.plugged[:, 62:66].any()
    assert run.trip_energy_kwh[:, 62:66].sum() == pytest.approx(2 * 10.0)


def test_late_plug_in_and_early_departure_move_a_trip_by_the_drawn_hours() -> None:
    day = datetime(2026, 7, 15)
    trips = [
        TripOccurrence(day.replace(hour=7), day.replace(hour=9), 10.0),
        TripOccurrence(day.replace(hour=14), day.replace(hour=16), 10.0),
    ]
    rng = np.random.default_rng(0)
    late = _shifted(trips, Delay(1.0, 2.0, sigma=0.0), rng, early=False)
    assert [t.arrive.hour for t in late] == [11, 18]
    assert [t.depart for t in late] == [t.depart for t in trips]
    early = _shifted(trips, Delay(1.0, 6.0, sigma=0.0), rng, early=True)
    # The second trip can't leave before the first is back (09:00).
    assert [t.depart.hour for t in early] == [1, 9]
    assert _shifted(trips, Delay(0.0, 2.0), rng, early=True) == trips


def test_same_seed_same_failures_and_no_failures_is_the_world_of_before() -> None:
    busy = {
        "base": "field",
        "charger_faults": {"per_charger_year": 300.0, "median_hours": 3.0},
        "communication_losses": {"per_charger_year": 300.0},
    }
    program = program_of(depot_document(failures=busy))
    start = datetime(2026, 7, 13, tzinfo=program.timezone)
    runs = [simulate_site(program, "depot", "unmanaged", start, 96 * 4, seed) for seed in (5, 5, 6)]
    first, again, other = runs
    assert first.failure_cause is not None and again.failure_cause is not None
    assert other.failure_cause is not None
    np.testing.assert_array_equal(first.failure_cause, again.failure_cause)
    np.testing.assert_array_equal(first.power_kw, again.power_kw)
    assert (first.failure_cause != 0).any()
    assert not np.array_equal(first.failure_cause, other.failure_cause)
    # The failures have their own random stream: the building's load is the same draw.
    plain = program_of(depot_document())
    before = simulate_site(plain, "depot", "unmanaged", start, 96 * 4, 5)
    np.testing.assert_array_equal(first.load_kw, before.load_kw)
    assert before.failure_cause is None
    none = program_of(depot_document(failures="none"))
    np.testing.assert_array_equal(
        simulate_site(none, "depot", "unmanaged", start, 96 * 4, 5).power_kw, before.power_kw
    )


def test_spells_are_as_frequent_and_as_long_as_the_model_says() -> None:
    """Over a long grid the share of steps a charger is out is rate × mean duration."""
    from lightson.domain.failures import Downtime
    from lightson.domain.time import TimeGrid
    from lightson.sim.failures import _spells

    start = datetime(2026, 1, 1, tzinfo=parse_program(yaml.safe_dump(depot_document())).timezone)
    grid = TimeGrid(start, 96 * 365 * 20, timedelta(minutes=15))
    downtime = Downtime(per_charger_year=6.0, median_hours=24.0, sigma=0.5)
    spells = _spells(downtime, grid, np.random.default_rng(1))
    years = (grid.end - grid.start + timedelta(days=30)).days / 365.25
    assert len(spells) / years == pytest.approx(6.0, rel=0.15)
    hours = np.array([(e - s).total_seconds() / 3600 for s, e in spells])
    assert float(np.median(hours)) == pytest.approx(24.0, rel=0.2)
    assert hours.mean() == pytest.approx(downtime.mean_hours, rel=0.2)


@pytest.mark.parametrize(
    ("failures", "path"),
    [
        ({"charger_faults": {"per_charger_year": -1}}, "failures.charger_faults.per_charger_year"),
        ({"opt_out": {"home": 1.5}}, "failures.opt_out.home"),
        ({"late_plug_in": {"median_hours": 0}}, "failures.late_plug_in.median_hours"),
        ({"summer_route": {"depart": "7h30"}}, "failures.summer_route.depart"),
        ({"summer_route": {"months": [13]}}, "failures.summer_route.months[0]"),
        ({"early_departures": {}}, "failures.early_departures"),
        ({"base": "always"}, "failures.base"),
        ("sometimes", "failures"),
    ],
)
def test_a_bad_failures_section_names_the_field(failures: Any, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        program_of(depot_document(failures=failures))
    assert path in [p for p, _ in caught.value.issues], caught.value.issues


def test_a_site_override_and_known_downtime_are_checked_by_path() -> None:
    document = depot_document(
        charger_downtime=[
            fault("2026-07-15T14:00", "2026-07-15T19:00", charger="c9"),
            fault("2026-07-15T14:00", "2026-07-15T13:00"),
        ]
    )
    document["sites"][0]["failures"] = {"opt_out": {"school": 2}}
    with pytest.raises(ConfigError) as caught:
        program_of(document)
    paths = [p for p, _ in caught.value.issues]
    assert paths == ["sites[0].failures.opt_out.school"]
    document["sites"][0]["failures"] = "field"
    with pytest.raises(ConfigError) as caught:
        program_of(document)
    issues = dict(caught.value.issues)
    assert "unknown charger at depot 'c9'" in issues["charger_downtime[0].charger"]
    assert issues["charger_downtime[1].end"] == "must be after start"


def test_field_and_named_causes_take_the_field_defaults() -> None:
    from lightson.domain.failures import FIELD_FAILURES, NO_FAILURES

    assert program_of(depot_document()).failures == NO_FAILURES
    assert program_of(depot_document(failures="field")).failures == FIELD_FAILURES
    named = program_of(depot_document(failures={"late_plug_in": {"probability": 0.5}})).failures
    assert named.late_plug_in == Delay(0.5, 2.0, 0.75, 8.0)
    assert named.charger_faults is None and named.opt_out("home") == 0.0
    override = depot_document(failures="field")
    override["sites"][0]["failures"] = "none"
    program = program_of(override)
    assert program.failures_at(program.site("depot")) == NO_FAILURES


def test_the_documented_failures_section_is_valid_for_beverly() -> None:
    """docs/program-file.md's example, added to the bundled Beverly scenario, loads."""
    import re
    from importlib import resources

    docs = (Path(__file__).parents[2] / "docs" / "program-file.md").read_text()
    section = docs[docs.index("## `failures`") :]
    (example,) = re.findall(r"```text\n(.*?)```", section, flags=re.DOTALL)[:1]
    beverly = yaml.safe_load(
        (resources.files("lightson") / "examples" / "beverly-2021.yaml").read_text()
    )
    program = program_of({**beverly, **yaml.safe_load(example)})
    assert program.failures.charger_faults is not None
    assert program.failures.opt_out("home") == 0.10
    (known,) = program.charger_downtime
    assert (known.evse_id, known.cause) == ("beverly-evse1", FailureCause.FAULT)


def test_a_summer_route_holds_its_energy_only_from_its_notice_the_day_before() -> None:
    from lightson.sim.world import build_world

    route = {"probability": 1.0, "days": ["thu"], "depart": "15:30", "return": "16:30"}
    program = program_of(depot_document(failures={"summer_route": {**route, "energy_kwh": 10}}))
    start = datetime(2026, 7, 13, tzinfo=program.timezone)  # a Monday; the route: Thursday
    world = build_world(program, program.site("depot"), start, 96 * 4, 4, seed=0)
    assert world.failures is not None
    known = world.failures.next_trip_kwh["bus-1"]
    notice = 96 * 2 + 64  # Wednesday 16:00
    departs = 96 * 3 + 62  # Thursday 15:30
    assert np.all(known[:notice] == 0.0)
    assert np.all(known[notice:departs] == 10.0)
    assert np.all(known[departs:] == 0.0)
    assert world.schedules["bus-1"].next_trip_kwh[0] == 10.0  # the truth knows it all along


@settings(max_examples=6, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    faults=st.floats(0.0, 365.0),
    losses=st.floats(0.0, 365.0),
    late=st.floats(0.0, 1.0),
    opt_out=st.floats(0.0, 1.0),
)
def test_lost_and_delivered_kw_never_exceed_what_the_chargers_could_give(
    seed: int, faults: float, losses: float, late: float, opt_out: float
) -> None:
    failures = {
        "charger_faults": {"per_charger_year": faults, "median_hours": 2.0},
        "communication_losses": {"per_charger_year": losses, "median_hours": 2.0},
        "late_plug_in": {"probability": late},
        "opt_out": {"school": opt_out},
        "summer_route": {"probability": 0.5, "depart": "14:00", "return": "16:00"},
    }
    document = depot_document(failures=failures)
    document["sites"][0]["vehicles"][0]["trips"] = [
        {"days": "daily", "depart": "12:00", "return": "14:00", "energy_kwh": 5.0}
    ]
    run, event = run_depot(program_of(document), seed)
    lost = [event.lost_kw(cause) for cause in FailureCause]
    assert min(lost) >= 0.0
    assert event.delivered_kw + sum(lost) <= 2 * BUS_KW + 1e-6
    assert run.failure_cause is not None
    assert np.all(run.power_kw[run.failure_cause == CAUSE_CODES[FailureCause.FAULT]] == 0.0)
    assert np.all(run.power_kw[run.failure_cause == CAUSE_CODES[FailureCause.COMMS]] >= 0.0)
    if "e1" in run.opted_out:
        assert event.delivered_kw == 0.0
