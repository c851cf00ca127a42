"""The live loop's shard (LiveControl.owns / take_over / release): a control worker ticks and
sends only for the sites it holds, and a site it takes over continues from the database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from lightson.config import load_program
from lightson.control.grid import GridSignal
from lightson.domain.time import SimClock
from lightson.services.live import LiveControl
from lightson.store import Store
from live_support import IN_EVENT, FakeSink, events_of, plugged, school
from net_support import run


@pytest.fixture
def store(tmp_path: Path) -> Any:
    store = Store(f"sqlite:///{tmp_path / 'shard.db'}")
    yield store
    store.close()


def test_by_default_the_loop_owns_every_site(store: Store) -> None:
    program = load_program("example")
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT))
    assert loop.owned() == ["home-lowell", "business-worcester", "school-beverly"]
    assert all(loop.owns(s.site_id) for s in program.sites)
    statuses = run(loop.tick_all())
    assert [s.site_id for s in statuses] == loop.owned()
    assert sorted(station for station, _ in sink.defaults) == sorted(
        c.evse_id for s in program.sites for c in s.chargers
    )


def test_a_shard_ticks_and_sends_only_for_its_sites(store: Store) -> None:
    program = load_program("example")
    plugged(store, "biz-evse1", 0.5, IN_EVENT - timedelta(minutes=1))
    sink = FakeSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT), owned=["home-lowell"])
    assert loop.owned() == ["home-lowell"] and not loop.owns("business-worcester")
    statuses = run(loop.tick_all())
    assert [s.site_id for s in statuses] == ["home-lowell"]
    assert sink.defaults == [("home-lowell-evse1", False)]
    # Another worker's site: woken or ticked, nothing happens here.
    loop.wake("business-worcester")
    loop.wake()
    assert loop._woken_for == {"home-lowell"}
    status = run(loop.tick("business-worcester"))
    assert (status.mode, status.reason) == ("starting", "no tick yet")
    assert sink.sent == [] and sink.defaults == [("home-lowell-evse1", False)]


def test_a_taken_over_site_continues_from_the_database(store: Store) -> None:
    program = school()
    for station in ("depot-evse1", "depot-evse2"):
        plugged(store, station, 0.8, IN_EVENT - timedelta(minutes=2), tx=f"tx-{station}")
    clock = SimClock(IN_EVENT)
    dead_sink, next_sink = FakeSink(), FakeSink()
    dead = LiveControl(program, store, dead_sink, clock, events_of(program))
    successor = LiveControl(program, store, next_sink, clock, events_of(program), owned=())
    before = run(dead.tick("school-beverly"))
    # The first worker saw an outage declared after the second one started, then died.
    dead.report_grid("school-beverly", "api", GridSignal.LOST)
    assert not successor.islanded("school-beverly")  # not known there yet
    successor.take_over("school-beverly")
    assert successor.owns("school-beverly") and successor.islanded("school-beverly")
    assert successor._woken_for == {"school-beverly"}  # it ticks at once
    assert successor.status["school-beverly"].reason == "taken over: no tick yet"
    after = run(successor.tick("school-beverly"))
    assert after.mode == "islanded"
    # Its chargers get their default again: what they hold is not known here.
    assert next_sink.defaults == [("depot-evse1", False), ("depot-evse2", False)]
    assert before.mode == "grid" and before.soc == after.soc == {"bus-7": 0.8, "bus-12": 0.8}


def test_on_the_grid_the_successor_decides_what_the_dead_worker_decided(store: Store) -> None:
    program = school()
    for station in ("depot-evse1", "depot-evse2"):
        plugged(store, station, 0.8, IN_EVENT - timedelta(minutes=2), tx=f"tx-{station}")
    clock = SimClock(IN_EVENT)
    dead = LiveControl(program, store, FakeSink(), clock, events_of(program))
    successor = LiveControl(program, store, FakeSink(), clock, events_of(program), owned=[])
    before = run(dead.tick("school-beverly"))
    successor.take_over("school-beverly")
    after = run(successor.tick("school-beverly"))
    assert after.mode == before.mode == "grid"
    assert [(s.evse_id, round(s.power_kw, 3)) for s in after.setpoints] == [
        (s.evse_id, round(s.power_kw, 3)) for s in before.setpoints
    ]
    assert all(s.power_kw < -1.0 for s in after.setpoints)  # still into the event


class ReleasingSink(FakeSink):
    """Another worker takes the site while this one's tick is sending."""

    loop: LiveControl

    async def install_default(self, station_id: str) -> str:
        self.loop.release("school-beverly")
        return await super().install_default(station_id)


def test_a_released_site_is_not_ticked_and_its_status_says_why(store: Store) -> None:
    program = school()
    sink = ReleasingSink()
    loop = LiveControl(program, store, sink, SimClock(IN_EVENT))
    sink.loop = loop
    run(loop.tick("school-beverly"))  # released during its tick
    assert not loop.owns("school-beverly")
    status = loop.status["school-beverly"]
    assert (status.mode, status.reason) == ("starting", "controlled by another worker")
    sent = list(sink.defaults)
    assert run(loop.tick_all()) == []
    run(loop.tick("school-beverly"))
    assert sink.defaults == sent  # nothing more went out
    loop.take_over("school-beverly")
    assert loop.owns("school-beverly")
