"""GET /api/overview: the running event's progress, islanded sites first, faults, the day's
power, with hand-computed figures, and what each role may see of them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lightson.api.app import Operations, create_app
from lightson.api.overview import day_grid
from lightson.config import load_program
from lightson.control.grid import GridSignal
from lightson.domain.assets import Program
from lightson.domain.time import SimClock
from lightson.services.access import AccessService
from lightson.services.events import EventService
from lightson.services.live import LiveControl
from lightson.store import Store
from lightson.store import schema as db
from live_support import IN_EVENT, FakeSink, plugged

EVENT_START = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)  # 15:00 EDT
EVENT_END = datetime(2026, 7, 15, 22, 0, tzinfo=UTC)  # 18:00 EDT
NOTICE = "2026-07-15T01:00:00Z"  # 21:00 EDT the evening before


def reading(station: str, at: datetime, power_kw: float) -> tuple[Any, dict[str, Any]]:
    return (
        db.meter_samples,
        {"station_id": station, "evse_id": 1, "at": at, "power_kw": power_kw, "soc": 0.7},
    )


class World:
    """The example program at 15:30 EDT in its C&I event: bus-7 discharged 60 kW since the
    event began (a reading every 5 minutes), bus-12 charged 20 kW; the home's truck was
    plugged in at 15:00 and has not reported since."""

    def __init__(self, program: Program, folder: Path, now: datetime = IN_EVENT) -> None:
        self.store = Store(f"sqlite:///{folder / 'overview.db'}")
        self.clock = SimClock(now)
        for station in ("depot-evse1", "depot-evse2"):
            plugged(self.store, station, 0.8, EVENT_START - timedelta(minutes=5), tx=station)
        plugged(self.store, "home-lowell-evse1", 0.6, EVENT_START, tx="h")
        rows = []
        for k in range(6):  # 15:00, 15:05 ... 15:25 EDT
            at = EVENT_START + timedelta(minutes=5 * k)
            rows += [reading("depot-evse1", at, -60.0), reading("depot-evse2", at, 20.0)]
        self.store.write(rows).result(5)
        events = EventService(self.store, self.clock)
        events.submit(
            {
                "event_id": "cs-daily-2026-07-15",
                "program_id": "cs-ci-daily",
                "start": EVENT_START.isoformat(),
                "end": EVENT_END.isoformat(),
                "notice_at": NOTICE,
            }
        )
        self.live = LiveControl(
            program,
            self.store,
            FakeSink(),
            self.clock,
            lambda site: events.book().for_site(site.site_id, site.enrollments),
        )
        asyncio.run(self.live.tick_all())
        access = AccessService(self.store, self.clock)
        self.tokens = {
            "admin": access.issue("staff", "admin"),
            "owner-home": access.issue("lowell-owner", "owner", ["home-lowell"]),
            "owner-biz": access.issue("worcester-biz", "owner", ["business-worcester"]),
            "utility-ng": access.issue("national-grid", "utility", utility="national-grid"),
        }
        self.ops = Operations(program, self.store, self.clock, self.live)
        self.client = TestClient(create_app(self.ops))

    def get(self, role: str, path: str) -> Any:
        answer = self.client.get(path, headers={"Authorization": f"Bearer {self.tokens[role]}"})
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program("example")


@pytest.fixture
def world(program: Program, tmp_path: Path) -> Iterator[World]:
    made = World(program, tmp_path)
    yield made
    made.store.close()


def test_the_running_event_is_measured_as_its_performance_route_measures_it(world: World) -> None:
    overview = world.get("admin", "/api/overview")
    running = overview["running"]
    assert running["event_ids"] == ["cs-daily-2026-07-15"]
    assert running["minutes_left"] == 150  # 15:30 to 18:00
    assert overview["expected_kw"] == 1000.0
    # The depot (export permitted): 60 kW out, 20 kW in, for the half hour so far: 40 kW net.
    # The business has no reading in the event: called, not measured.
    assert running["sites_called"] == 2
    assert running["sites_measured"] == 1
    assert running["kw_average"] == 40.0
    performance = world.get("admin", "/api/events/cs-daily-2026-07-15/performance")
    assert running["kw_average"] == performance["total_kw"]
    statuses = {s["site_id"]: s["status"] for s in world.get("admin", "/api/sites")}
    set_kw = (
        statuses["school-beverly"]["vehicles_kw"] + statuses["business-worcester"]["vehicles_kw"]
    )
    assert running["kw_now"] == round(-set_kw, 1)


def test_no_event_runs_before_it_starts(program: Program, tmp_path: Path) -> None:
    early = World(program, tmp_path, EVENT_START - timedelta(minutes=1))
    try:
        overview = early.get("admin", "/api/overview")
        assert overview["running"] is None
        assert [e["event_id"] for e in overview["day"]["events"]] == ["cs-daily-2026-07-15"]
    finally:
        early.store.close()


def test_the_day_chart_averages_the_metered_power_per_interval(world: World) -> None:
    day = world.get("admin", "/api/overview")["day"]
    assert day["start"] == "2026-07-15T04:00:00+00:00"  # midnight EDT
    assert day["step_minutes"] == 15
    assert len(day["charge_kw"]) == 96
    first = 60  # 15:00-15:15 EDT
    assert day["discharge_kw"][first] == 60.0
    assert day["charge_kw"][first] == 20.0
    assert day["discharge_kw"][first + 1] == 60.0  # 15:15-15:30: the last reading holds
    # 15:30 is now: its interval has nothing metered yet; later intervals are not yet.
    assert day["discharge_kw"][first + 2] == 0.0
    assert day["charge_kw"][first + 3] is None
    # Before the readings the fleet did nothing; the grid carried the buildings.
    assert day["discharge_kw"][first - 1] == 0.0
    assert day["grid_kw"][first - 1] > 0.0


def test_an_islanded_site_comes_first_with_its_backup(world: World) -> None:
    world.live.report_grid("school-beverly", "meter", GridSignal.LOST)
    asyncio.run(world.live.tick_all())
    overview = world.get("admin", "/api/overview")
    assert [s["site_id"] for s in overview["islanded"]] == ["school-beverly"]
    backup = world.get("admin", "/api/sites/school-beverly/backup")
    assert overview["islanded"][0]["backup_hours"] == backup["hours"]
    assert overview["islanded"][0]["horizon_h"] == backup["horizon_h"]
    # An islanded site imports nothing: 15:30-15:45 the program's import is the other two
    # sites', 15:15-15:30 the school's load came from the grid too.
    world.clock.advance(timedelta(minutes=15))
    program_kw = world.get("admin", "/api/overview")["day"]["grid_kw"]
    home_kw = world.get("owner-home", "/api/overview")["day"]["grid_kw"]
    biz_kw = world.get("owner-biz", "/api/overview")["day"]["grid_kw"]
    assert program_kw[62] == pytest.approx(home_kw[62] + biz_kw[62], abs=0.11)
    assert program_kw[61] > home_kw[61] + biz_kw[61] + 20.0  # a school's load, less its buses


def test_a_plugged_charger_that_stopped_reporting_is_a_fault(world: World) -> None:
    faults = world.get("admin", "/api/overview")["faults"]
    silent = [f for f in faults if f["kind"] == "silent"]
    assert silent == [
        {
            "site_id": "home-lowell",
            "kind": "silent",
            "evse_ids": "home-lowell-evse1",
            "message": "vehicle plugged, no reading for 30 min",
        }
    ]


def test_an_owner_sees_their_site_only(world: World) -> None:
    overview = world.get("owner-home", "/api/overview")
    assert overview["running"] is None  # the home is not in the C&I event
    assert {f["site_id"] for f in overview["faults"]} == {"home-lowell"}
    assert overview["day"]["events"] == []
    assert overview["day"]["discharge_kw"][60] == 0.0  # the depot's buses are not theirs


def test_a_utility_sees_no_power_over_too_few_sites_and_no_faults(world: World) -> None:
    world.live.report_grid("school-beverly", "meter", GridSignal.LOST)
    overview = world.get("utility-ng", "/api/overview")
    assert "fewer than 5" in overview["power_withheld"]
    assert overview["running"]["kw_now"] is None
    assert overview["running"]["kw_average"] is None
    assert overview["day"]["grid_kw"] is None
    assert overview["faults"] == []
    assert overview["islanded"] == [{"site_id": "school-beverly", "kind": "school"}]


def test_a_utility_with_enough_sites_sees_the_totals(world: World) -> None:
    world.ops.min_sites_in_aggregates = 1  # the depot alone (the home: fewer than 10)
    running = world.get("utility-ng", "/api/overview")["running"]
    assert running["kw_average"] == 40.0


def test_the_day_has_the_program_times_length_across_daylight_saving(program: Program) -> None:
    autumn = day_grid(program, datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    spring = day_grid(program, datetime(2026, 3, 8, 12, 0, tzinfo=UTC))
    summer = day_grid(program, IN_EVENT)
    assert (autumn.n_steps, spring.n_steps, summer.n_steps) == (100, 92, 96)
    assert autumn.start == datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # EDT midnight


def test_a_plan_is_stale_once_the_site_should_have_re_planned(world: World) -> None:
    path = "/api/sites/business-worcester/plan/status"
    fresh = world.get("admin", path)
    assert (fresh["age_minutes"], fresh["stale"]) == (0.0, False)  # made at this tick
    assert fresh["due_minutes"] == 65.0  # hourly, at the next 5-minute tick
    world.clock.advance(timedelta(minutes=70))  # that tick may come one tick late
    assert world.get("admin", path)["stale"] is False
    world.clock.advance(timedelta(minutes=1))
    late = world.get("admin", path)
    assert (late["age_minutes"], late["stale"]) == (71.0, True)
    faults = world.get("admin", "/api/overview")["faults"]
    stale = {f["site_id"]: f["message"] for f in faults if f["kind"] == "stale-plan"}
    assert stale["business-worcester"] == "plan 71 min old"


def test_a_plans_status_is_a_sites_detail(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.tokens['utility-ng']}"}
    answer = world.client.get("/api/sites/school-beverly/plan/status", headers=headers)
    assert answer.status_code == 403
    headers = {"Authorization": f"Bearer {world.tokens['owner-home']}"}
    answer = world.client.get("/api/sites/school-beverly/plan/status", headers=headers)
    assert answer.status_code == 404
    assert world.get("owner-home", "/api/sites/home-lowell/plan/status")["site_id"] == "home-lowell"
