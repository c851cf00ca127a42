"""The operations API: the access rules over every route, errors, audit, metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lightson.api.app import Operations, create_app
from lightson.config import load_program
from lightson.control.grid import GridSignal
from lightson.domain.assets import Program
from lightson.domain.time import SimClock
from lightson.services.access import AccessService
from lightson.services.events import EventService
from lightson.services.live import LiveControl
from lightson.services.ratelimit import Buckets
from lightson.store import Store
from lightson.store import schema as db
from live_support import IN_EVENT, FakeSink, FakeStations, plugged, root_pem

ROLES = ("none", "bad", "admin", "owner-school", "owner-home", "utility-ng", "utility-ev")
EVENT = {
    "event_id": "ng-2026-07-16",
    "program_id": "cs-ci-daily",
    "start": "2026-07-16T19:00:00Z",
    "end": "2026-07-16T22:00:00Z",
}


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program("example")


class World:
    def __init__(self, program: Program, folder: Path) -> None:
        self.store = Store(f"sqlite:///{folder / 'api.db'}")
        self.clock = SimClock(IN_EVENT)
        for station in ("depot-evse1", "depot-evse2"):
            plugged(self.store, station, 0.8, IN_EVENT - timedelta(minutes=1), tx=station)
        events = EventService(self.store, self.clock)
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
            "bad": "not-a-token",
            "admin": access.issue("staff", "admin"),
            "owner-school": access.issue("beverly-schools", "owner", ["school-beverly"]),
            "owner-home": access.issue("lowell-owner", "owner", ["home-lowell"]),
            "utility-ng": access.issue("national-grid", "utility", utility="national-grid"),
            "utility-ev": access.issue("eversource", "utility", utility="eversource"),
        }
        self.ops = Operations(program, self.store, self.clock, self.live)
        # The matrix sends a bad token to every route: more than an address may fail.
        self.ops.failed_logins = Buckets(per_second=1000.0, burst=1000)
        self.client = TestClient(create_app(self.ops))
        self.client.app.state.stations = FakeStations()  # type: ignore[attr-defined]

    def call(self, role: str, method: str, path: str, body: Any = None) -> Any:
        headers = {} if role == "none" else {"Authorization": f"Bearer {self.tokens[role]}"}
        return self.client.request(method, path, json=body, headers=headers)


@pytest.fixture
def world(program: Program, tmp_path: Path) -> Iterator[World]:
    made = World(program, tmp_path)
    yield made
    made.store.close()


SEE_SCHOOL = {"admin", "owner-school"}
DEPARTURE = {"departure": "2026-07-15T21:00:00Z", "target_soc": 0.9}
ROOT = {"certificate_type": "CSMSRootCertificate", "certificate": root_pem()}
METER = {"readings": [{"at": "2026-07-15T19:29:00Z", "load_kw": 80.0}]}
EVENT_WRITERS = {"admin", "utility-ng", "utility-ev"}
# The matrix's event calls the C&I sites (each utility posts its own, for its territory); the
# home is not enrolled in C&I daily dispatch.
SEE_NG_EVENT = {"admin", "owner-school", "utility-ng", "utility-ev"}
# (method, path, body, roles answered 2xx; every other token gets 403, none/bad get 401)
ROUTES: list[tuple[str, str, Any, set[str]]] = [
    ("GET", "/api/me", None, set(ROLES) - {"none", "bad"}),
    ("GET", "/api/program", None, set(ROLES) - {"none", "bad"}),
    ("GET", "/api/sites", None, set(ROLES) - {"none", "bad"}),
    ("GET", "/api/overview", None, set(ROLES) - {"none", "bad"}),
    ("GET", "/api/sites/school-beverly/plan/status", None, SEE_SCHOOL),
    ("GET", "/api/sites/school-beverly", None, SEE_SCHOOL),
    ("GET", "/api/sites/school-beverly/plan", None, SEE_SCHOOL),
    ("GET", "/api/sites/school-beverly/plans", None, SEE_SCHOOL),
    ("GET", "/api/sites/school-beverly/sessions", None, SEE_SCHOOL),
    ("GET", "/api/sites/school-beverly/backup", None, SEE_SCHOOL),
    ("GET", "/api/sites/school-beverly/telemetry", None, SEE_SCHOOL),
    ("PUT", "/api/sites/school-beverly/vehicles/bus-7/departure", DEPARTURE, SEE_SCHOOL),
    ("DELETE", "/api/sites/school-beverly/vehicles/bus-7/departure", None, SEE_SCHOOL),
    ("POST", "/api/sites/school-beverly/outage", {"state": "lost"}, {"admin", "utility-ng"}),
    ("POST", "/api/sites/school-beverly/outage", {"state": "restored"}, {"admin", "utility-ng"}),
    ("GET", "/api/stations", None, {"admin"}),
    ("GET", "/api/stations/depot-evse1/certificates", None, {"admin"}),
    ("POST", "/api/stations/depot-evse1/certificates", ROOT, {"admin"}),
    ("DELETE", "/api/stations/depot-evse1/certificates/1f", None, {"admin"}),
    ("POST", "/api/stations/depot-evse1/certificates/renew", None, {"admin"}),
    ("POST", "/api/sites/school-beverly/meter", METER, {"admin"}),
    ("GET", "/api/completeness", None, {"admin", "owner-school", "owner-home"}),
    ("GET", "/api/quarantine", None, {"admin"}),
    ("GET", "/api/events", None, set(ROLES) - {"none", "bad"}),
    ("POST", "/api/events", EVENT, EVENT_WRITERS),
    ("POST", "/api/events/ng-2026-07-16/opt-out/school-beverly", None, SEE_SCHOOL),
    ("GET", "/api/events/ng-2026-07-16/performance", None, SEE_NG_EVENT),
    ("DELETE", "/api/events/ng-2026-07-16", None, EVENT_WRITERS),
    ("GET", "/api/settlements?season=2026", None, {"admin", "utility-ng", "utility-ev"}),
    ("GET", "/api/report?days=2", None, {"admin"}),
    ("GET", "/metrics", None, {"admin"}),
]


def hidden(role: str, path: str) -> bool:
    """Whether the route names an id outside the caller's scope in a way the role could
    otherwise use: it answers 404, as for an unknown id, not 403 (ids cannot be probed)."""
    if role == "owner-home":  # the home's owner: the school and the C&I event are not theirs
        return ("school-beverly" in path and not path.endswith("/meter")) or path.endswith(
            "/performance"
        )
    return role == "utility-ev" and path.endswith("/outage")  # not Eversource's territory


@pytest.mark.parametrize("role", ROLES)
def test_access_matrix_over_every_route(world: World, role: str) -> None:
    if role not in EVENT_WRITERS:  # the event the opt-out and cancel routes act on
        assert world.call("admin", "POST", "/api/events", EVENT).status_code == 201
    for method, path, body, allowed in ROUTES:
        answer = world.call(role, method, path, body)
        if role in allowed:
            expected: tuple[int, ...] = (200, 201)
        elif role in ("none", "bad"):
            expected = (401,)
        elif hidden(role, path):
            expected = (404,)
        else:
            expected = (403,)
        assert answer.status_code in expected, (role, method, path, answer.text)
        if answer.status_code == 401:
            assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert world.call("none", "GET", "/api/health").status_code == 200


def test_the_routes_in_the_matrix_are_every_api_route(world: World) -> None:
    # From the OpenAPI document: app.routes holds an included router as one entry
    # (FastAPI 0.165), whose routes the walk over it would miss.
    paths = world.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    declared = {
        (method.upper(), path) for path, operations in paths.items() for method in operations
    }
    tested = {
        (
            method,
            path.split("?")[0]
            .replace("school-beverly", "{site_id}")
            .replace("bus-7", "{vehicle_id}")
            .replace("ng-2026-07-16", "{event_id}")
            .replace("depot-evse1", "{station_id}")
            .replace("certificates/1f", "certificates/{serial_number}"),
        )
        for method, path, _, _ in ROUTES
    } | {("GET", "/api/health")}
    assert declared == tested


def test_the_season_report_as_a_page_and_as_a_pdf(world: World) -> None:
    """Staff get the live season's report from the API as one self-contained page (its
    figures inside), or as a PDF; a bad period is named."""
    page = world.call("admin", "GET", "/api/report?days=3")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for section in ("Program overview", "Value by site kind", "Backup", "Equipment", "Settlement"):
        assert f"<h2>{section}</h2>" in page.text
    assert "data:image/png;base64," in page.text and "Measured: what the chargers" in page.text
    assert "lightson-report-" not in page.text  # no folder named that the caller cannot see
    pdf = world.call("admin", "GET", "/api/report?days=3&format=pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    wrong = world.call("admin", "GET", "/api/report?days=0")
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"].endswith("days")
    assert world.call("admin", "GET", "/api/report?days=401").status_code == 422
    lock = world.client.app.state.report_running  # type: ignore[attr-defined]
    with lock:  # a report being made: the next waits its turn, it does not start another
        busy = world.call("admin", "GET", "/api/report?days=3")
    assert busy.status_code == 429 and "being made" in busy.json()["errors"][0]["message"]


def test_scopes_and_personal_data(world: World) -> None:
    ng = world.call("utility-ng", "GET", "/api/sites").json()
    assert sorted(s["site_id"] for s in ng) == ["home-lowell", "school-beverly"]
    # No personal data: at a home, power and load tell whether the family is in.
    assert all(set(s) == {"site_id", "kind", "utility", "enrollments", "status"} for s in ng)
    assert all(set(s["status"]) == {"mode"} for s in ng)
    home = world.call("owner-home", "GET", "/api/sites").json()
    assert [s["site_id"] for s in home] == ["home-lowell"] and home[0]["vehicles"] == 1
    assert len(world.call("admin", "GET", "/api/sites").json()) == 3
    program = world.call("utility-ev", "GET", "/api/program").json()
    assert program["sites"] == 1 and program["sites_by_kind"] == {"business": 1}


def test_site_numbers_are_the_live_loops(world: World) -> None:
    site = world.call("owner-school", "GET", "/api/sites/school-beverly").json()
    status = world.live.status["school-beverly"]
    assert site["status"]["mode"] == "grid"
    assert site["status"]["vehicles_kw"] == pytest.approx(status.vehicles_kw, abs=0.01)
    grid_kw = status.load_kw - status.pv_kw + status.vehicles_kw
    assert site["status"]["grid_kw"] == pytest.approx(grid_kw, abs=0.01)
    by_vehicle = {v["vehicle_id"]: v for v in site["vehicles"]}
    assert by_vehicle["bus-7"]["soc"] == 0.8 and by_vehicle["bus-7"]["plugged"] is True
    planned = {s.evse_id: s.power_kw for s in status.setpoints}
    assert by_vehicle["bus-7"]["power_kw"] == pytest.approx(planned["depot-evse1"], abs=0.01)
    program = world.call("admin", "GET", "/api/program").json()
    assert program["available_discharge_kw_now"] == pytest.approx(120.0)  # two 60 kW buses
    plan = world.call("admin", "GET", "/api/sites/school-beverly/plan").json()
    assert plan["start"] is not None and len(plan["vehicles"]) == 2
    telemetry = world.call("admin", "GET", "/api/sites/school-beverly/telemetry?hours=1").json()
    assert sorted(row["station_id"] for row in telemetry) == ["depot-evse1", "depot-evse2"]


def test_an_outage_islands_the_site_and_is_audited(world: World) -> None:
    outage = "/api/sites/school-beverly/outage"
    release = {"state": "lost", "released_vehicles": ["bus-7"]}
    # The owner has no outage to release a bus for yet; the utility may not release one.
    assert world.call("owner-school", "POST", outage, release).status_code == 409
    assert world.call("utility-ng", "POST", outage, release).status_code == 403
    assert world.live.islanded("school-beverly") is False
    answer = world.call("utility-ng", "POST", outage, {"state": "lost"})
    assert answer.json() == {
        "site_id": "school-beverly",
        "islanded": True,
        "lost_by": ["api"],
        "resync_at": None,
    }
    # The school's owner gives up bus-7's route reserve for this outage.
    assert world.call("owner-school", "POST", outage, release).status_code == 200
    asyncio.run(world.live.tick("school-beverly"))
    site = world.call("admin", "GET", "/api/sites/school-beverly").json()
    assert site["status"]["mode"] == "islanded" and site["status"]["grid_kw"] == 0.0
    refused = world.call("utility-ev", "POST", outage, {"state": "lost"})
    assert refused.status_code == 404  # not its territory: as if there were no such site
    assert world.call("owner-home", "POST", outage, release).status_code == 404
    log = world.store.rows(db.audit_log)
    assert [(r["who"], r["action"], r["outcome"], r["detail"]) for r in log] == [
        ("beverly-schools", "outage-lost", "refused", {"status": 409}),
        ("national-grid", "outage-lost", "refused", {"status": 403}),
        ("national-grid", "outage-lost", "done", {"released_vehicles": []}),
        ("beverly-schools", "outage-lost", "done", {"released_vehicles": ["bus-7"]}),
        ("eversource", "outage-lost", "refused", {"status": 404}),
        ("lowell-owner", "outage-lost", "refused", {"status": 404}),
    ]


def test_bad_input_names_the_field(world: World) -> None:
    bad_state = world.call("admin", "POST", "/api/sites/school-beverly/outage", {"state": "x"})
    assert bad_state.status_code == 422
    assert bad_state.json()["errors"][0]["field"] == "state"
    stranger = world.call(
        "admin",
        "POST",
        "/api/sites/school-beverly/outage",
        {"state": "lost", "released_vehicles": ["lightning"]},
    )
    assert stranger.status_code == 422
    assert stranger.json()["errors"][0]["field"] == "released_vehicles"
    late = world.call("admin", "POST", "/api/events", {**EVENT, "end": "2026-07-17T03:00:00Z"})
    assert late.status_code == 422 and late.json()["errors"][0]["field"] in ("end", "start")
    assert world.call("admin", "GET", "/api/sites/nowhere").status_code == 404
    missing = world.call("admin", "DELETE", "/api/events/nothing")
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "event_id"
    hours = world.call("admin", "GET", "/api/sites/school-beverly/telemetry?hours=0")
    assert hours.status_code == 422 and hours.json()["errors"][0]["field"] == "query.hours"


def test_owners_see_only_their_own_opt_outs(world: World) -> None:
    world.call("admin", "POST", "/api/events", EVENT)
    world.call("admin", "POST", "/api/events/ng-2026-07-16/opt-out/school-beverly")
    world.call("admin", "POST", "/api/events/ng-2026-07-16/opt-out/business-worcester")
    school = world.call("owner-school", "GET", "/api/events").json()
    mine = next(e for e in school if e["event_id"] == "ng-2026-07-16")
    assert mine["opt_outs"] == ["school-beverly"]
    home = world.call("owner-home", "GET", "/api/events").json()
    assert all(e["program_id"] == "cs-residential-battery" for e in home)  # not enrolled in C&I


def test_metrics_are_prometheus_text(world: World) -> None:
    text = world.call("admin", "GET", "/metrics").text
    assert 'lightson_site_mode{mode="grid",site="school-beverly"} 1.0' in text
    status = world.live.status["school-beverly"]
    assert f'lightson_site_vehicles_kw{{site="school-beverly"}} {status.vehicles_kw}' in text


def test_openapi_is_published_and_the_dashboard_served(world: World) -> None:
    spec = world.client.get("/api/openapi.json").json()
    assert "/api/sites/{site_id}/backup" in spec["paths"]
    page = world.client.get("/")
    assert page.status_code == 200 and "app.js" in page.text


def test_settlements_over_the_api_are_scoped(world: World) -> None:
    world.call("admin", "POST", "/api/events", EVENT)
    world.clock.advance(timedelta(days=2))  # the event has ended
    admin = world.call("admin", "GET", "/api/settlements?season=2026").json()
    assert sorted(line["site_id"] for line in admin) == ["business-worcester", "school-beverly"]
    assert all(line["season_average_kw"] == 0.0 for line in admin)  # nothing metered in it
    eversource = world.call("utility-ev", "GET", "/api/settlements").json()
    assert [line["site_id"] for line in eversource] == ["business-worcester"]


def test_anyone_allowed_may_end_an_outage_another_declared(world: World) -> None:
    outage = "/api/sites/school-beverly/outage"
    nothing = world.call("admin", "POST", outage, {"state": "restored"})
    assert nothing.status_code == 409  # no outage to end: said, not silently ignored
    assert world.call("admin", "POST", outage, {"state": "lost"}).json()["islanded"] is True
    ended = world.call("utility-ng", "POST", outage, {"state": "restored"}).json()
    resync = IN_EVENT + timedelta(minutes=5)  # IEEE 1547 enter-service delay
    assert ended == {
        "site_id": "school-beverly",
        "islanded": True,
        "lost_by": [],
        "resync_at": resync.isoformat(),
    }
    world.clock.advance(timedelta(minutes=5))
    assert world.live.islanded("school-beverly") is False

    # The site meter reports a loss the API did not declare: the API cannot end it.
    world.live.report_grid("school-beverly", "meter", GridSignal.LOST)
    refused = world.call("admin", "POST", outage, {"state": "restored"})
    assert refused.status_code == 409 and "meter reports one" in refused.text
    assert world.live.islanded("school-beverly") is True
    outcomes = [(r["action"], r["outcome"]) for r in world.store.rows(db.audit_log)]
    assert outcomes == [
        ("outage-restored", "refused"),
        ("outage-lost", "done"),
        ("outage-restored", "done"),
        ("outage-restored", "refused"),
    ]


def test_a_utility_calls_and_cancels_only_in_its_own_territory(world: World) -> None:
    mine = world.call("utility-ng", "POST", "/api/events", EVENT)
    assert mine.status_code == 201 and mine.json()["sites"] == ["school-beverly"]
    # Eversource's event in the same window calls other sites: no overlap with National Grid's.
    theirs = {**EVENT, "event_id": "ev-2026-07-16"}
    assert world.call("utility-ev", "POST", "/api/events", theirs).json()["sites"] == [
        "business-worcester"
    ]
    # Another utility's site reads as an unknown one, and its event as no event.
    poach = {**EVENT, "event_id": "ev-poach", "sites": ["school-beverly"]}
    poached = world.call("utility-ev", "POST", "/api/events", poach)
    nowhere = world.call("utility-ev", "POST", "/api/events", {**poach, "sites": ["nowhere"]})
    assert poached.status_code == nowhere.status_code == 422
    assert poached.json()["errors"][0]["field"] == nowhere.json()["errors"][0]["field"] == "sites"
    foreign = world.call("utility-ev", "DELETE", "/api/events/ng-2026-07-16")
    unknown = world.call("utility-ev", "DELETE", "/api/events/no-such-event")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["errors"][0]["field"] == unknown.json()["errors"][0]["field"]
    assert [e["event_id"] for e in world.call("utility-ev", "GET", "/api/events").json()] == [
        "ev-2026-07-16"
    ]
    everyone = {**EVENT, "event_id": "all-2026-07-17", "start": "2026-07-17T19:00:00Z"}
    everyone["end"] = "2026-07-17T22:00:00Z"
    assert world.call("admin", "POST", "/api/events", everyone).status_code == 201
    # An event of the program staff calls every territory: no one utility may cancel it.
    assert world.call("utility-ng", "DELETE", "/api/events/all-2026-07-17").status_code == 403
    listed = world.call("utility-ng", "GET", "/api/events").json()
    assert {e["event_id"]: e["sites"] for e in listed} == {
        "ng-2026-07-16": ["school-beverly"],
        "all-2026-07-17": [],
    }
    assert world.call("utility-ng", "DELETE", "/api/events/ng-2026-07-16").status_code == 200
    refusals = [
        (r["who"], r["action"], r["target"])
        for r in world.store.rows(db.audit_log)
        if r["outcome"] == "refused"
    ]
    assert refusals == [
        ("eversource", "event-submit", "ev-poach"),
        ("eversource", "event-submit", "ev-poach"),
        ("eversource", "event-cancel", "ng-2026-07-16"),
        ("eversource", "event-cancel", "no-such-event"),
        ("national-grid", "event-cancel", "all-2026-07-17"),
    ]


def test_a_utility_with_no_site_in_the_program_is_told_so(world: World) -> None:
    residential = {
        **EVENT,
        "event_id": "ev-res",
        "program_id": "cs-residential-battery",
        "start": "2026-07-16T20:00:00Z",
        "end": "2026-07-16T22:00:00Z",
    }
    answer = world.call("utility-ev", "POST", "/api/events", residential)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "program_id"


def test_refused_commands_are_audited(world: World) -> None:
    assert world.call("owner-home", "POST", "/api/events", EVENT).status_code == 403
    bad = world.call("admin", "POST", "/api/sites/school-beverly/outage", {"state": "x"})
    assert bad.status_code == 422
    assert world.call("none", "POST", "/api/events", EVENT).status_code == 401
    log = [(r["who"], r["action"], r["outcome"]) for r in world.store.rows(db.audit_log)]
    assert log == [
        ("lowell-owner", "event-submit", "refused"),
        ("staff", "POST", "refused"),
    ]


def test_event_performance_is_what_the_chargers_metered(world: World) -> None:
    assert world.call("admin", "POST", "/api/events", EVENT).status_code == 201
    # Both buses discharge 30 kW for the whole event (19:00-22:00 UTC), each reading held
    # until the next one 10 minutes later.
    rows = []
    for station in ("depot-evse1", "depot-evse2"):
        for minutes in range(0, 180, 10):
            at = datetime(2026, 7, 16, 19, tzinfo=UTC) + timedelta(minutes=minutes)
            rows.append(
                (
                    db.meter_samples,
                    {"station_id": station, "evse_id": 1, "at": at, "power_kw": -30.0},
                )
            )
    world.store.write(rows).result(10)
    world.clock.advance(timedelta(days=1))  # 2026-07-16 19:30 UTC: half an hour in
    half = world.call("owner-school", "GET", "/api/events/ng-2026-07-16/performance").json()
    (school,) = half["sites"]
    assert school["hours"] == 0.5 and school["net_discharge_kwh"] == pytest.approx(30.0)
    assert school["kw"] == pytest.approx(60.0) and school["capacity_kw"] == 120.0
    world.clock.advance(timedelta(days=1))  # long over
    done = world.call("admin", "GET", "/api/events/ng-2026-07-16/performance").json()
    by_site = {s["site_id"]: s for s in done["sites"]}
    assert by_site["school-beverly"]["kw"] == pytest.approx(60.0)  # 2 x 30 kW for 3 h
    assert by_site["business-worcester"]["kw"] is None  # no meter value at all
    assert done["total_kw"] == pytest.approx(60.0)
    assert (
        world.call("owner-home", "GET", "/api/events/ng-2026-07-16/performance").status_code == 404
    )


def test_an_owner_sets_a_departure_and_the_site_shows_it(world: World) -> None:
    path = "/api/sites/school-beverly/vehicles/bus-7/departure"
    answer = world.call("owner-school", "PUT", path, DEPARTURE)
    assert answer.json() == {
        "site_id": "school-beverly",
        "vehicle_id": "bus-7",
        "departure": "2026-07-15T21:00:00+00:00",
        "target_soc": 0.9,
    }
    site = world.call("owner-school", "GET", "/api/sites/school-beverly").json()
    bus = next(v for v in site["vehicles"] if v["vehicle_id"] == "bus-7")
    assert bus["departure"] == {
        "at": "2026-07-15T21:00:00+00:00",
        "target_soc": 0.9,
        "set_by": "beverly-schools",
    }
    past = world.call("owner-school", "PUT", path, {"departure": "2026-07-15T19:00:00Z"})
    assert past.status_code == 422 and past.json()["errors"][0]["field"] == "departure"
    full = world.call("owner-school", "PUT", path, {**DEPARTURE, "target_soc": 1.5})
    assert full.status_code == 422 and full.json()["errors"][0]["field"] == "target_soc"
    naive = world.call("owner-school", "PUT", path, {"departure": "2026-07-15T21:00:00"})
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "departure"
    stranger = "/api/sites/school-beverly/vehicles/lightning/departure"
    unknown = world.call("owner-school", "PUT", stranger, DEPARTURE)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "vehicle_id"
    assert world.call("owner-school", "DELETE", path).json()["departure"] is None
    site = world.call("owner-school", "GET", "/api/sites/school-beverly").json()
    assert all(v["departure"] is None for v in site["vehicles"])
    log = [(r["action"], r["outcome"]) for r in world.store.rows(db.audit_log)]
    assert log[0] == ("departure-set", "done") and log[-1] == ("departure-clear", "done")


def test_no_one_home_shows_through_a_utilitys_view(world: World) -> None:
    # home-lowell's car plugged a while ago and went silent: its site falls back.
    plugged(world.store, "home-lowell-evse1", 0.6, IN_EVENT - timedelta(minutes=30), tx="h")
    asyncio.run(world.live.tick("home-lowell"))
    assert world.live.status["home-lowell"].mode == "fallback"
    sites = {s["site_id"]: s for s in world.call("utility-ng", "GET", "/api/sites").json()}
    assert sites["home-lowell"]["status"] == {"mode": "parallel"}  # fallback says "a car"
    assert sites["school-beverly"]["status"] == {"mode": "grid"}
    program = world.call("utility-ng", "GET", "/api/program").json()
    # One school and one home: fewer than 5 sites, so no power figure at all.
    assert program["sites"] == 2 and program["sites_in_power_totals"] == 0
    assert program["modes"] == {"parallel": 1, "grid": 1}
    assert program["available_discharge_kw_now"] is None and program["vehicles_kw_now"] is None
    assert program["installed_discharge_kw"] is None
    assert "fewer than 5" in program["power_withheld"]
    world.ops.min_sites_in_aggregates = 1  # a program that allows totals over one site:
    program = world.call("utility-ng", "GET", "/api/program").json()
    # the one home still stays out of the totals (the school's are in).
    assert program["sites_in_power_totals"] == 1 and program["power_withheld"] is None
    assert program["available_discharge_kw_now"] == pytest.approx(120.0)  # the two buses


def test_an_event_shows_each_caller_only_their_own_sites(world: World) -> None:
    ng = world.call("utility-ng", "POST", "/api/events", EVENT).json()
    assert ng["sites"] == ["school-beverly"]
    ev_event = {**EVENT, "event_id": "ev-2026-07-16"}
    assert world.call("utility-ev", "POST", "/api/events", ev_event).status_code == 201
    # The school's owner cannot opt out of Eversource's event (it does not call the school).
    wrong = world.call("owner-school", "POST", "/api/events/ev-2026-07-16/opt-out/school-beverly")
    assert wrong.status_code == 404
    mine = world.call("owner-school", "POST", "/api/events/ng-2026-07-16/opt-out/school-beverly")
    assert mine.json()["opt_outs"] == ["school-beverly"]
    assert world.call("utility-ev", "GET", "/api/program").json()["next_event"]["event_id"] == (
        "ev-2026-07-16"
    )
    assert world.call("utility-ng", "GET", "/api/program").json()["next_event"]["event_id"] == (
        "ng-2026-07-16"
    )
    events = world.store.rows(db.dr_events)
    assert {e["event_id"]: e["source"] for e in events} == {
        "ng-2026-07-16": "utility:national-grid",
        "ev-2026-07-16": "utility:eversource",
    }


def test_a_refused_event_is_audited_with_its_status(world: World) -> None:
    late = world.call("admin", "POST", "/api/events", {**EVENT, "end": "2026-07-17T03:00:00Z"})
    assert late.status_code == 422
    (row,) = world.store.rows(db.audit_log)
    assert (row["action"], row["outcome"], row["detail"]["status"]) == (
        "event-submit",
        "refused",
        422,
    )


def test_a_utility_cannot_call_an_event_that_has_already_happened(world: World) -> None:
    # Yesterday, one home, with a notice time: it would read out whether the car was there.
    past = {
        "event_id": "ng-probe",
        "program_id": "cs-residential-battery",
        "start": "2026-07-14T20:00:00Z",
        "end": "2026-07-14T21:00:00Z",
        "notice_at": "2026-07-13T20:00:00Z",
        "sites": ["home-lowell"],
    }
    refused = world.call("utility-ng", "POST", "/api/events", past)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "start"
    assert world.store.rows(db.dr_events) == []


def test_site_meter_readings_replace_the_profile(world: World) -> None:
    path = "/api/sites/school-beverly/meter"
    before = world.live.status["school-beverly"]
    assert before.load_source == "profile"
    readings = {"readings": [{"at": "2026-07-15T19:29:00Z", "load_kw": 42.5, "pv_kw": 0.0}]}
    assert world.call("admin", "POST", path, readings).json() == {
        "site_id": "school-beverly",
        "readings": 1,
    }
    assert world.call("admin", "POST", path, readings).status_code == 200  # resent: kept once
    assert len(world.store.rows(db.site_meter)) == 1
    corrected = {"readings": [{"at": "2026-07-15T19:29:00Z", "load_kw": 40.0, "pv_kw": 0.0}]}
    world.call("admin", "POST", path, corrected)
    (row,) = world.store.rows(db.site_meter)
    assert row["load_kw"] == 40.0  # the gateway's correction replaces the first copy
    world.call("admin", "POST", path, readings)  # and the first value comes back
    asyncio.run(world.live.tick("school-beverly"))
    site = world.call("admin", "GET", "/api/sites/school-beverly").json()
    assert site["status"]["load_kw"] == 42.5 and site["status"]["load_source"] == "meter"
    bad = {"readings": [{"at": "2026-07-15T19:29:00Z", "load_kw": -1}]}
    refused = world.call("admin", "POST", path, bad)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "readings[0].load_kw"
    future = {"readings": [{"at": "2026-07-15T21:00:00Z", "load_kw": 1}]}
    assert world.call("admin", "POST", path, future).json()["errors"][0]["field"] == (
        "readings[0].at"
    )


def test_plans_are_kept_and_shown_after_a_restart(world: World, program: Program) -> None:
    made = world.call("admin", "GET", "/api/sites/school-beverly/plans").json()
    assert len(made) == 1 and made[0]["controller"] == "v2x-mpc"
    assert made[0]["start"] == "2026-07-15T19:30:00+00:00" and made[0]["step_minutes"] == 15
    live = world.call("admin", "GET", "/api/sites/school-beverly/plan").json()
    # The server restarts: a new loop has made no plan yet; the stored one is shown.
    world.ops.live = LiveControl(program, world.store, FakeSink(), world.clock)
    stored = world.call("admin", "GET", "/api/sites/school-beverly/plan").json()
    assert stored["made_at"] == "2026-07-15T19:30:00+00:00"
    assert stored["site_net_kw"] == live["site_net_kw"]
    assert [v["power_kw"] for v in stored["vehicles"]] == [v["power_kw"] for v in live["vehicles"]]


def test_sessions_with_the_energy_each_way(world: World) -> None:
    rows = []
    for minutes, imported, exported in ((0, 10.0, 2.0), (30, 12.5, 2.0), (60, 12.5, 9.0)):
        at = IN_EVENT + timedelta(minutes=minutes)
        sample = {
            "station_id": "depot-evse1",
            "evse_id": 1,
            "transaction_id": "depot-evse1",
            "at": at,
            "energy_imported_kwh": imported,
            "energy_exported_kwh": exported,
        }
        rows.append((db.meter_samples, sample))
    ended = {
        "station_id": "depot-evse1",
        "evse_id": 1,
        "transaction_id": "depot-evse1",
        "seq_no": 1,
        "event_type": "Ended",
        "at": IN_EVENT + timedelta(minutes=60),
        "received_at": IN_EVENT + timedelta(minutes=60),
        "payload": {},
    }
    rows.append((db.transaction_events, ended))
    world.store.write(rows).result(5)
    listed = world.call("owner-school", "GET", "/api/sites/school-beverly/sessions").json()
    by_station = {s["station_id"]: s for s in listed}
    first = by_station["depot-evse1"]
    assert (first["energy_in_kwh"], first["energy_out_kwh"]) == (2.5, 7.0)
    assert first["ended"] == "2026-07-15T20:30:00+00:00"
    assert by_station["depot-evse2"]["ended"] is None  # still plugged in


@pytest.mark.parametrize(
    ("site_id", "load", "reason"),
    [
        ("school-beverly", 1e308, "power-range"),  # finite, and every tick failed on it
        ("home-lowell", 1e6, "power-range"),  # 1 GW at a 48 kW home
        ("home-lowell", "1", "float_type"),  # a string is not a number
    ],
)
def test_implausible_meter_readings_are_refused_and_quarantined(
    world: World, site_id: str, load: Any, reason: str
) -> None:
    path = f"/api/sites/{site_id}/meter"
    body = {
        "readings": [
            {"at": "2026-07-15T19:14:00Z", "load_kw": 5.0},  # good, but the post is one
            {"at": "2026-07-15T19:29:00Z", "load_kw": load},
        ]
    }
    refused = world.call("admin", "POST", path, body)
    assert refused.status_code == 422
    (error,) = refused.json()["errors"]
    assert error["field"] == "readings[1].load_kw"
    assert world.store.rows(db.site_meter) == []  # all or none
    (row,) = world.store.rows(db.quarantine)
    assert (row["source"], row["site_id"], row["field"], row["reason"]) == (
        "meter-api",
        site_id,
        "readings[1].load_kw",
        reason,
    )
    assert row["value"] == str(load)
    assert json.loads(row["raw"]) == body


def test_a_reading_at_the_limit_of_plausible_is_stored(world: World) -> None:
    body = {"readings": [{"at": "2026-07-15T19:29:00Z", "load_kw": 72, "pv_kw": 3.5}]}
    assert world.call("admin", "POST", "/api/sites/home-lowell/meter", body).status_code == 200
    assert world.store.rows(db.quarantine) == []


def test_quarantined_readings_are_listed_counted_and_in_the_metrics(world: World) -> None:
    bad = {"readings": [{"at": "2026-07-15T19:29:00Z", "load_kw": 1e6}]}
    for _ in range(2):
        assert world.call("admin", "POST", "/api/sites/home-lowell/meter", bad).status_code == 422
    frame = '[2,"m1","MeterValues",' + '{"evseId":1,"meterValue":[]}' * 20 + "]"
    world.store.write(
        [
            (
                db.quarantine,
                {
                    "received_at": IN_EVENT,
                    "source": "ocpp",
                    "station_id": "depot-evse1",
                    "site_id": "school-beverly",
                    "action": "MeterValues",
                    "field": "meterValue[0].sampledValue[0].value",
                    "value": "1.5",
                    "reason": "soc-range",
                    "raw": frame,
                },
            )
        ]
    ).result(5)
    listed = world.call("admin", "GET", "/api/quarantine?hours=1").json()
    assert [(q["source"], q["reason"]) for q in listed] == [
        ("ocpp", "soc-range"),  # the newest first
        ("meter-api", "power-range"),
        ("meter-api", "power-range"),
    ]
    assert listed[0]["raw_excerpt"] == frame[:159] + "…"  # an excerpt, not the frame
    assert listed[1]["field"] == "readings[0].load_kw" and listed[1]["value"] == "1000000.0"
    lines = world.call("admin", "GET", "/api/completeness").json()
    assert next(x for x in lines if x["station_id"] == "depot-evse1")["quarantined"] == 1
    text = world.call("admin", "GET", "/metrics").text
    assert 'lightson_quarantined_total{reason="power-range",source="meter-api"} 2.0' in text
    assert 'lightson_quarantined_total{reason="soc-range",source="ocpp"} 1.0' in text
