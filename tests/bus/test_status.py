"""Site status between the roles (``bus.status``) and the API role's view of it
(``roles.api.RemoteLive``): the record's JSON, freshness by the worker's lease time, the
highest fence kept, and the API's answers: 503 "no controller" in the documented shape,
the age of what is shown, writes stored first and then announced."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from lightson.api.app import Operations, create_app
from lightson.bus.status import StatusBoard, StatusRecord, status_from_document
from lightson.config import load_program
from lightson.control.safety import Intervention, SafetyRule
from lightson.domain.plan import Setpoint
from lightson.domain.time import SimClock
from lightson.roles.api import RemoteLive
from lightson.services.access import AccessService
from lightson.services.live import SiteStatus
from lightson.store import Store
from lightson.store import schema as db

AT = datetime(2026, 7, 15, 19, 30, tzinfo=UTC)


def _status(site_id: str = "school-beverly", at: datetime = AT) -> SiteStatus:
    return SiteStatus(
        site_id,
        at,
        "grid",
        "planned",
        setpoints=(Setpoint("depot-evse1", -42.5, at + timedelta(minutes=10)),),
        answers={"depot-evse1": "Accepted"},
        interventions=(Intervention("depot-evse1", SafetyRule.VEHICLE_FLOOR, -60.0, -42.5),),
        critical_unserved_kw=0.0,
        load_kw=80.25,
        pv_kw=12.5,
        soc={"bus-7": 0.61, "bus-12": None},
        plugged={"bus-7": True, "bus-12": False},
        fallback=(),
        tier=None,
        load_source="meter",
    )


def test_a_record_comes_back_as_it_went() -> None:
    record = StatusRecord(_status(), "w1", 7, 1000.0, 1.5, ticks=3)
    back = StatusRecord.decode(record.encode())
    assert back == record
    assert back.status.vehicles_kw == -42.5
    assert back.status.interventions[0].rule is SafetyRule.VEHICLE_FLOOR


def test_a_naive_time_is_refused() -> None:
    document = StatusRecord(_status(), "w1", 7, 1000.0, 1.5).encode()
    broken = document.replace(b"+00:00", b"")
    with pytest.raises(ValueError, match="offset"):
        StatusRecord.decode(broken)
    with pytest.raises(KeyError):
        status_from_document({"site_id": "x"})


class Wall:
    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def test_a_record_is_fresh_for_its_workers_lease_time() -> None:
    wall = Wall(1000.0)
    board = StatusBoard(15.0, wall)
    board.offer(StatusRecord(_status(), "w1", 7, 1000.0, 1.5))
    wall.now_s = 1001.5  # exactly the lease time: still fresh
    assert board.get("school-beverly") is not None
    wall.now_s = 1001.6
    assert board.get("school-beverly") is None
    assert board.fresh() == {}
    last = board.last("school-beverly")
    assert last is not None and last.age_s(wall.now_s) == pytest.approx(1.6)


def test_a_record_a_few_seconds_ahead_is_fresh_with_age_zero() -> None:
    """The worker's clock 3 s ahead of this server's: fresh, age 0 (not -3)."""
    wall = Wall(1000.0)
    board = StatusBoard(15.0, wall)
    board.offer(StatusRecord(_status(), "w1", 7, 1003.0, 1.5))
    kept = board.get("school-beverly")
    assert kept is not None and kept.age_s(wall.now_s) == 0.0
    wall.now_s = 1001.5  # a lease time after it arrived: still fresh
    assert board.get("school-beverly") is not None
    wall.now_s = 1001.6  # counted from its arrival, not from 1003 (that would be fresh)
    assert board.get("school-beverly") is None
    last = board.last("school-beverly")
    assert last is not None and last.age_s(wall.now_s) == pytest.approx(1.6)


def test_a_clock_far_ahead_is_logged_once_per_worker(caplog: pytest.LogCaptureFixture) -> None:
    board = StatusBoard(15.0, Wall(1000.0))
    with caplog.at_level("WARNING", logger="lightson.status"):
        board.offer(StatusRecord(_status(), "w1", 7, 1004.0, 15.0))  # within the warning
        assert caplog.messages == []
        for _ in range(2):
            board.offer(StatusRecord(_status(), "w1", 7, 1060.0, 15.0))
    assert caplog.messages == [
        "worker w1's clock is 60 s ahead of this server's: keep the machines in NTP (its "
        "records count from their arrival here)"
    ]


@given(st.lists(st.tuples(st.integers(1, 50), st.sampled_from(["a", "b", "c"])), min_size=1))
def test_the_highest_fence_among_fresh_records_is_kept(offers: list[tuple[int, str]]) -> None:
    """A worker paused past its lease, still publishing with its older fence, never hides
    its successor's record while that one is fresh."""
    board = StatusBoard(15.0, Wall(1000.0))
    for fence, worker in offers:
        board.offer(StatusRecord(_status(), worker, fence, 1000.0, 15.0))
    kept = board.get("school-beverly")
    highest = max(fence for fence, _ in offers)
    assert kept is not None and kept.fence == highest
    assert kept.worker == [w for f, w in offers if f == highest][-1]


def test_a_stale_record_gives_way_to_a_lower_fence() -> None:
    """A site given back and taken again starts from a fresh record, whatever its fence."""
    wall = Wall(1000.0)
    board = StatusBoard(15.0, wall)
    board.offer(StatusRecord(_status(), "old", 9, 1000.0, 1.5))
    wall.now_s = 1010.0
    board.offer(StatusRecord(_status(), "new", 3, 1010.0, 1.5))
    kept = board.get("school-beverly")
    assert kept is not None and kept.worker == "new"


class Api:
    """The API role's app over SQLite, its board fed by hand, its announcements recorded."""

    def __init__(self, folder: Path) -> None:
        self.program = load_program("example")
        self.store = Store(f"sqlite:///{folder / 'api.db'}")
        self.clock = SimClock(AT + timedelta(minutes=2))
        self.wall = Wall(5000.0)
        self.board = StatusBoard(15.0, self.wall)
        self.announced: list[tuple[str, str]] = []  # (site, kind), in order
        self.live = RemoteLive(
            self.program,
            self.store,
            self.clock,
            self.board,
            lambda sites, kind: self.announced.extend((s, kind) for s in sites),
        )
        ops = Operations(
            self.program, self.store, self.clock, self.live, last_report=self.live.last_report
        )  # as ApiRole makes it
        self.client = TestClient(create_app(ops))
        token = AccessService(self.store, self.clock).issue("staff", "admin")
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> tuple[int, dict[str, object]]:
        answer = self.client.get(path, headers=self.headers)
        return answer.status_code, answer.json()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    made = Api(tmp_path)
    yield made
    made.store.close()


def test_a_site_no_worker_reports_answers_503_no_controller(api: Api) -> None:
    status, body = api.get("/api/sites/school-beverly")
    assert status == 503
    assert body == {
        "errors": [
            {
                "field": "site_id",
                "message": "no controller for site 'school-beverly': no worker has reported "
                "it (none runs, or the one that held it stopped and no other has taken it "
                "over yet)",
            }
        ]
    }


def test_a_reported_site_shows_its_status_and_its_age(api: Api) -> None:
    api.board.offer(StatusRecord(_status(), "w1", 4, 5000.0, 15.0))
    status, body = api.get("/api/sites/school-beverly")
    assert status == 200
    shown = body["status"]
    assert isinstance(shown, dict)
    assert shown["mode"] == "grid" and shown["load_kw"] == 80.25
    assert shown["age_s"] == 120.0  # the tick was at AT, the clock is 2 minutes on
    assert body["answers"] == {"depot-evse1": "Accepted"}
    for site_id in ("home-lowell", "business-worcester"):
        api.board.offer(StatusRecord(_status(site_id), "w2", 5, 5000.0, 15.0))
    listed = api.client.get("/api/sites", headers=api.headers)
    assert listed.status_code == 200
    assert {s["site_id"]: s["status"]["age_s"] for s in listed.json()} == {
        "home-lowell": 120.0,
        "business-worcester": 120.0,
        "school-beverly": 120.0,
    }


def _one_dead_one_never_seen(api: Api) -> None:
    """school-beverly reported now by w1; home-lowell last reported by w2 42 s ago (its
    lease 1.5 s); business-worcester never reported."""
    api.board.offer(StatusRecord(_status("home-lowell"), "w2", 5, 5000.0, 1.5))
    api.wall.now_s = 5042.0
    api.board.offer(StatusRecord(_status(), "w1", 4, 5041.0, 15.0))


def test_the_site_list_marks_the_sites_without_a_controller(api: Api) -> None:
    """One dead worker does not blank the list: 200, every site, those without a
    controller marked with the age of their last status and the worker that wrote it."""
    _one_dead_one_never_seen(api)
    status, body = api.get("/api/sites")
    assert status == 200
    assert isinstance(body, list)
    by_site = {line["site_id"]: line for line in body}
    assert by_site["school-beverly"]["status"]["mode"] == "grid"
    assert by_site["school-beverly"]["status"]["age_s"] == 120.0
    assert by_site["home-lowell"] == {
        "site_id": "home-lowell",
        "kind": "home",
        "utility": "national-grid",
        "enrollments": ["cs-residential-battery"],
        "status": {
            "mode": "no controller",
            "reason": "its last status came 42 s ago from worker w2",
            "age_s": 42.0,
            "worker": "w2",
        },
    }
    assert by_site["business-worcester"]["status"] == {
        "mode": "no controller",
        "reason": "no worker has reported it",
        "age_s": None,
        "worker": None,
    }
    assert api.get("/api/sites/home-lowell")[0] == 503  # one site's routes: as before
    stations = api.client.get("/api/stations", headers=api.headers).json()
    answers = {s["station_id"]: s["answer"] for s in stations}
    assert answers["depot-evse1"] == "Accepted" and answers["home-lowell-evse1"] is None


def test_the_program_counts_the_sites_without_a_controller(api: Api) -> None:
    _one_dead_one_never_seen(api)
    status, body = api.get("/api/program")
    assert status == 200
    assert body["sites"] == 3 and body["sites_without_controller"] == 2
    assert body["modes"] == {"grid": 1, "no controller": 2}
    assert body["vehicles_kw_now"] == -42.5  # school-beverly's alone


def test_the_overview_lists_the_sites_without_a_controller_first(api: Api) -> None:
    _one_dead_one_never_seen(api)
    status, body = api.get("/api/overview")
    assert status == 200
    faults = body["faults"]
    assert isinstance(faults, list)
    assert faults[:2] == [
        {
            "site_id": "home-lowell",
            "kind": "no-controller",
            "evse_ids": "",
            "message": "its last status came 42 s ago from worker w2",
            "age_s": 42.0,
            "worker": "w2",
        },
        {
            "site_id": "business-worcester",
            "kind": "no-controller",
            "evse_ids": "",
            "message": "no worker has reported it",
            "age_s": None,
            "worker": None,
        },
    ]
    assert all(f["kind"] != "no-controller" for f in faults[2:])


def test_metrics_mark_the_sites_without_a_controller_and_leave_stations_out(api: Api) -> None:
    """The API role holds no charger: no ``lightson_stations_connected`` (not a wrong 0);
    a tick time ahead of this server's clock is age 0, never negative."""
    _one_dead_one_never_seen(api)
    ahead = _status(at=api.clock.now() + timedelta(seconds=3))
    api.board.offer(StatusRecord(ahead, "w1", 4, 5042.0, 15.0))
    answer = api.client.get("/metrics", headers=api.headers)
    assert answer.status_code == 200
    text = answer.text
    assert 'lightson_site_mode{mode="no controller",site="home-lowell"} 1.0' in text
    assert 'lightson_site_mode{mode="no controller",site="business-worcester"} 1.0' in text
    assert 'lightson_site_mode{mode="grid",site="school-beverly"} 1.0' in text
    assert 'lightson_site_status_age_seconds{site="school-beverly"} 0.0' in text
    assert 'lightson_site_vehicles_kw{site="home-lowell"}' not in text  # no figure
    assert 'lightson_site_status_age_seconds{site="home-lowell"}' not in text
    assert "lightson_stations_connected" not in text


def test_a_dead_workers_site_answers_503_with_the_age_of_its_last_status(api: Api) -> None:
    api.board.offer(StatusRecord(_status(), "w1", 4, 5000.0, 1.5))
    api.wall.now_s = 5042.0
    status, body = api.get("/api/sites/school-beverly")
    assert status == 503
    errors = body["errors"]
    assert isinstance(errors, list)
    assert "its last status came 42 s ago from worker w1" in errors[0]["message"]


def test_an_event_is_stored_then_announced_to_the_sites_it_may_call(api: Api) -> None:
    event = {
        "event_id": "ng-2026-07-16",
        "program_id": "cs-ci-daily",
        "start": "2026-07-16T19:00:00Z",
        "end": "2026-07-16T22:00:00Z",
    }
    answer = api.client.post("/api/events", json=event, headers=api.headers)
    assert answer.status_code == 201
    stored = [row["event_id"] for row in api.store.rows(db.dr_events)]
    assert stored == ["ng-2026-07-16"]
    assert sorted(api.announced) == sorted((s.site_id, "changed") for s in api.program.sites)


def test_an_outage_is_stored_then_announced_and_read_back_from_the_database(api: Api) -> None:
    answer = api.client.post(
        "/api/sites/school-beverly/outage", json={"state": "lost"}, headers=api.headers
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["islanded"] is True
    rows = api.store.rows(db.grid_signals, site_id="school-beverly")
    assert [(r["source"], r["signal"]) for r in rows] == [("api", "lost")]
    assert api.announced == [("school-beverly", "grid")]
    # Another API server stored the restoration: this one reads it from the database.
    api.store.write(
        [
            (
                db.grid_signals,
                {
                    "site_id": "school-beverly",
                    "source": "api",
                    "signal": "restored",
                    "at": api.clock.now(),
                    "released_vehicles": [],
                },
            )
        ]
    ).result(5)
    assert api.live.grid_losses("school-beverly")[0] == frozenset()


def test_get_and_membership_follow_the_fresh_records(api: Api) -> None:
    statuses = api.live.status
    assert statuses.get("school-beverly") is None and "school-beverly" not in statuses
    api.board.offer(StatusRecord(_status(), "w1", 4, 5000.0, 15.0))
    assert statuses.get("school-beverly") == _status()
    assert list(statuses) == ["school-beverly"] and len(statuses) == 1
    assert dict(statuses.items()) == {"school-beverly": _status()}


def test_a_worker_reads_a_grid_signal_another_process_stored(tmp_path: Path) -> None:
    """``LiveControl.reload_grid``: what an API server stored islands the site on the
    worker, which had started before it."""
    from lightson.services.live import LiveControl
    from live_support import FakeSink

    store = Store(f"sqlite:///{tmp_path / 'worker.db'}")
    try:
        clock = SimClock(AT)
        live = LiveControl(load_program("example"), store, FakeSink(), clock)
        assert not live.islanded("school-beverly")
        row = {
            "site_id": "school-beverly",
            "source": "api",
            "signal": "lost",
            "at": AT,
            "released_vehicles": ["bus-7"],
        }
        store.write([(db.grid_signals, row)]).result(5)
        assert not live.islanded("school-beverly")  # not read yet
        live.reload_grid("school-beverly")
        assert live.islanded("school-beverly")
        assert live.grid_losses("school-beverly") == (frozenset({"api"}), None)
        assert not live.islanded("home-lowell")
    finally:
        store.close()


def test_backup_hours_come_from_the_workers_last_status(api: Api) -> None:
    """The estimate runs here, on the state of charge the worker last read: less charge
    in the bus, fewer hours of the critical loads."""
    from dataclasses import replace

    assert api.get("/api/sites/school-beverly/backup")[0] == 503
    api.board.offer(StatusRecord(_status(), "w1", 4, 5000.0, 15.0))
    status, body = api.get("/api/sites/school-beverly/backup")
    assert status == 200, body
    full = body["hours"]
    emptier = replace(_status(), soc={"bus-7": 0.3, "bus-12": None})
    api.board.offer(StatusRecord(emptier, "w1", 4, 5000.0, 15.0))
    less = api.get("/api/sites/school-beverly/backup")[1]["hours"]
    assert isinstance(full, dict) and isinstance(less, dict)
    assert 0 < less["critical"] < full["critical"]
