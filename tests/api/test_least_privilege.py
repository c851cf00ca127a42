"""Least privilege per role (issue #15 part 3): no one site's power through a utility's
aggregates, reserves released only by their owner or staff, the server's receipt time as a
utility's notice, ids that cannot be probed, strict bodies, every write audited, one error
shape, and security headers on every page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_app import EVENT, World

from lightson.api.app import Operations, create_app
from lightson.api.headers import CONTENT_SECURITY_POLICY
from lightson.config import load_program
from lightson.domain.assets import Program
from lightson.domain.time import SimClock
from lightson.services.access import AccessService
from lightson.services.live import LiveControl
from lightson.store import schema as db
from live_support import IN_EVENT, FakeSink


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program("example")


@pytest.fixture
def world(program: Program, tmp_path: Path) -> Iterator[World]:
    made = World(program, tmp_path)
    yield made
    made.store.close()


def test_a_territory_of_three_sites_shows_no_power(tmp_path: Path) -> None:
    """ma-2026's Unitil serves two homes and one business: its totals would be that
    business's power. National Grid's 29 sites are enough."""
    from fastapi.testclient import TestClient

    from lightson.store import Store

    program = load_program("ma-2026")
    store = Store(f"sqlite:///{tmp_path / 'ma.db'}")
    try:
        clock = SimClock(IN_EVENT)
        live = LiveControl(program, store, FakeSink(), clock, lambda site: [])
        access = AccessService(store, clock)
        unitil = access.issue("unitil", "utility", utility="unitil")
        grid = access.issue("national-grid", "utility", utility="national-grid")
        client = TestClient(create_app(Operations(program, store, clock, live)))
        small = client.get("/api/program", headers={"Authorization": f"Bearer {unitil}"}).json()
        assert small["sites"] == 3 and small["sites_by_kind"] == {"home": 2, "business": 1}
        for name in ("installed_discharge_kw", "vehicles_kw_now", "available_discharge_kw_now"):
            assert small[name] is None, name
        assert small["sites_in_power_totals"] == 0
        assert small["power_withheld"].startswith("1 site(s) would be counted, fewer than 5")
        big = client.get("/api/program", headers={"Authorization": f"Bearer {grid}"}).json()
        assert big["sites_in_power_totals"] == 29 and big["power_withheld"] is None
        assert big["installed_discharge_kw"] is not None
    finally:
        store.close()


def test_a_utility_sees_an_events_total_over_enough_sites_never_one_sites_kw(
    world: World,
) -> None:
    assert world.call("admin", "POST", "/api/events", EVENT).status_code == 201
    rows = [
        (
            db.meter_samples,
            {
                "station_id": station,
                "evse_id": 1,
                "at": datetime(2026, 7, 16, 19, tzinfo=UTC) + timedelta(minutes=minutes),
                "power_kw": -30.0,
            },
        )
        for station in ("depot-evse1", "depot-evse2")
        for minutes in range(0, 180, 10)
    ]
    world.store.write(rows).result(10)
    world.clock.advance(timedelta(days=2))  # the event is over
    path = "/api/events/ng-2026-07-16/performance"
    staff = world.call("admin", "GET", path).json()
    assert staff["total_kw"] == pytest.approx(60.0) and staff["power_withheld"] is None
    ng = world.call("utility-ng", "GET", path).json()
    (school,) = ng["sites"]  # its one site called: no total, no kW
    assert ng["total_kw"] is None and "fewer than 5" in ng["power_withheld"]
    assert school["kw"] is None and school["net_discharge_kwh"] is None
    assert school["capacity_kw"] == 120.0 and school["hours"] == 3.0
    world.ops.min_sites_in_aggregates = 1
    ng = world.call("utility-ng", "GET", path).json()
    assert ng["total_kw"] == pytest.approx(60.0) and ng["sites"][0]["kw"] is None
    # What it pays on stays per site: the season's settlement of the events that ended.
    (line,) = world.call("utility-ng", "GET", "/api/settlements?season=2026").json()
    assert line["site_id"] == "school-beverly" and line["season_average_kw"] == 60.0


def test_a_utilitys_notice_is_when_the_server_received_the_event(world: World) -> None:
    """16 hours' notice in C&I daily dispatch: a notice_at two days back does not make an
    event starting in two hours legal."""
    backdated = {
        **EVENT,
        "event_id": "ng-backdated",
        "start": "2026-07-15T21:30:00Z",
        "end": "2026-07-15T23:00:00Z",
        "notice_at": "2026-07-13T19:00:00Z",
    }
    refused = world.call("utility-ng", "POST", "/api/events", backdated)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "notice_at"
    assert world.store.rows(db.dr_events) == []
    fine = world.call(
        "utility-ng", "POST", "/api/events", {**EVENT, "notice_at": "2026-07-01T00:00Z"}
    )
    assert fine.status_code == 201 and fine.json()["notice_at"] == IN_EVENT.isoformat()


def test_events_over_or_naming_sites_not_enrolled_are_refused(world: World) -> None:
    over = {
        **EVENT,
        "event_id": "staff-over",
        "start": "2026-07-14T19:00:00Z",
        "end": "2026-07-14T22:00:00Z",
        "notice_at": "2026-07-13T19:00:00Z",
    }
    answer = world.call("admin", "POST", "/api/events", over)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "end"
    home = {**EVENT, "event_id": "staff-home", "sites": ["home-lowell"]}  # not in C&I daily
    answer = world.call("admin", "POST", "/api/events", home)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "sites"
    assert world.store.rows(db.dr_events) == []
    log = [(r["action"], r["outcome"], r["detail"]) for r in world.store.rows(db.audit_log)]
    assert log == [("event-submit", "refused", {"status": 422})] * 2


def test_unknown_and_forbidden_ids_answer_alike(world: World) -> None:
    for role, known, unknown in (
        ("owner-home", "/api/sites/school-beverly", "/api/sites/nowhere"),
        ("owner-home", "/api/sites/school-beverly/telemetry", "/api/sites/nowhere/telemetry"),
        ("utility-ev", "/api/sites/school-beverly/outage", "/api/sites/nowhere/outage"),
    ):
        method = "POST" if known.endswith("outage") else "GET"
        body = {"state": "lost"} if method == "POST" else None
        a, b = world.call(role, method, known, body), world.call(role, method, unknown, body)
        assert a.status_code == b.status_code == 404, (role, known)
        assert [e["field"] for e in a.json()["errors"]] == ["site_id"]
        assert (
            a.json()["errors"][0]["message"].replace("school-beverly", "nowhere")
            == (b.json()["errors"][0]["message"])
        )


def test_staff_token_names_stay_with_the_staff(world: World) -> None:
    assert world.call("admin", "POST", "/api/events", EVENT).status_code == 201
    (staff,) = world.call("admin", "GET", "/api/events").json()
    assert staff["source"] == "api:staff"
    for role in ("owner-school", "utility-ng"):
        (seen,) = world.call(role, "GET", "/api/events").json()
        assert seen["source"] == "api", role


def test_numbers_are_numbers(world: World) -> None:
    path = "/api/sites/school-beverly/vehicles/bus-7/departure"
    for wrong in ("0.9", True):
        answer = world.call(
            "owner-school", "PUT", path, {"departure": "2026-07-15T21:00:00Z", "target_soc": wrong}
        )
        assert answer.status_code == 422, wrong
        assert answer.json()["errors"][0]["field"] == "target_soc"
    reading = {"readings": [{"at": "2026-07-15T19:29:00Z", "load_kw": True}]}
    answer = world.call("admin", "POST", "/api/sites/school-beverly/meter", reading)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "readings[0].load_kw"


def test_every_successful_write_is_audited(world: World) -> None:
    meter = {"readings": [{"at": "2026-07-15T19:29:00Z", "load_kw": 80.0}]}
    assert world.call("admin", "POST", "/api/sites/school-beverly/meter", meter).status_code == 200
    (row,) = world.store.rows(db.audit_log)
    assert (row["who"], row["action"], row["target"], row["outcome"], row["detail"]) == (
        "staff",
        "meter-readings",
        "school-beverly",
        "done",
        {"readings": 1},
    )


def test_the_frameworks_errors_have_the_documented_shape(world: World) -> None:
    missing = world.call("admin", "GET", "/api/nothing")
    assert missing.status_code == 404
    assert missing.json() == {"errors": [{"field": "path", "message": "Not Found"}]}
    wrong = world.call("admin", "POST", "/api/me")
    assert wrong.status_code == 405
    assert wrong.json() == {"errors": [{"field": "method", "message": "Method Not Allowed"}]}


def test_every_answer_carries_the_security_headers(world: World) -> None:
    for path in ("/", "/app.js", "/api/me", "/api/docs", "/api/nothing"):
        answer = world.call("admin", "GET", path)
        headers = answer.headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    # Swagger UI loads its script from a CDN (no installed package ships it): off by default.
    assert world.call("admin", "GET", "/api/docs").status_code == 404
    assert world.call("admin", "GET", "/api/openapi.json").status_code == 200
    assert "/api/docs" not in world.call("admin", "GET", "/").text
