"""The live loop's decision engines (lightson.services.engines): the same plans inline and
on Ray, the controller (with its warm start) round-tripped, the event loop free meanwhile."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lightson.config import load_program
from lightson.control.controllers import LinearProgramController
from lightson.domain.errors import ConfigError
from lightson.domain.time import SimClock
from lightson.services.engines import InlineEngine, RayEngine, make_engine
from lightson.services.live import LiveControl
from lightson.services.live_status import SiteStatus
from lightson.store import Store
from live_support import IN_EVENT, FakeSink, events_of, plugged
from net_support import run

SOC = {  # every charger of the example program, plugged, at its own state of charge
    "home-lowell-evse1": 0.55,
    "biz-evse1": 0.4,
    "biz-evse2": 0.7,
    "depot-evse1": 0.8,
    "depot-evse2": 0.65,
}


@pytest.fixture(scope="module")
def ray_engine() -> Iterator[RayEngine]:
    pytest.importorskip("ray")
    engine = RayEngine(num_cpus=2, start_timeout_s=180.0)
    run(engine.start_async())
    yield engine
    engine.close()


def readings(store: Store, at: datetime, shift: float = 0.0) -> None:
    for station, soc in SOC.items():
        plugged(store, station, soc + shift, at - timedelta(minutes=2), tx=f"tx-{station}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'engines.db'}")
    readings(store, IN_EVENT)
    yield store
    store.close()


def _two_passes(loop: LiveControl, clock: SimClock) -> list[list[SiteStatus]]:
    """A pass in the event, and one an hour and a quarter later on new readings (a new
    plan, warm-started from the first one's basis)."""
    first = run(loop.tick_all())
    clock.advance(timedelta(minutes=75))
    readings(loop.store, clock.now(), shift=0.05)
    return [first, run(loop.tick_all())]


def test_ray_gives_the_same_setpoints_and_plans_as_inline(
    tmp_path: Path, ray_engine: RayEngine
) -> None:
    program = load_program("example")
    results: dict[str, Any] = {}
    for engine in (InlineEngine(), ray_engine):
        own = Store(f"sqlite:///{tmp_path / engine.name}.db")  # each its second readings
        readings(own, IN_EVENT)
        clock = SimClock(IN_EVENT)
        sink = FakeSink()
        loop = LiveControl(program, own, sink, clock, events_of(program), engine=engine)
        try:
            passes = _two_passes(loop, clock)
        finally:
            own.close()
        plans = {s.site_id: loop.plan(s.site_id) for s in program.sites}
        made = {s.site_id: loop._sites[s.site_id].controller for s in program.sites}
        results[engine.name] = (passes, plans, made, sink.sent)

    inline, ray = results["inline"], results["ray"]
    for inline_pass, ray_pass in zip(inline[0], ray[0], strict=True):
        assert [s.site_id for s in ray_pass] == [s.site_id for s in inline_pass]
        for a, b in zip(inline_pass, ray_pass, strict=True):
            assert a.mode == b.mode == "grid"
            assert a.setpoints == b.setpoints
            assert a.answers == b.answers
    # The burst solved something: the school's buses discharge into the event.
    school = {s.evse_id: s.power_kw for s in inline[0][0][2].setpoints}
    assert school["depot-evse1"] < -1.0 and school["depot-evse2"] < -1.0
    for site_id, plan in inline[1].items():
        other = ray[1][site_id]
        assert plan is not None and other is not None
        assert plan.start == other.start == datetime(2026, 7, 15, 20, 45, tzinfo=UTC)
        assert plan.objective == other.objective
        np.testing.assert_array_equal(plan.site_net_power_kw, other.site_net_power_kw)
        for a, b in zip(plan.vehicles, other.vehicles, strict=True):
            np.testing.assert_array_equal(a.power_kw, b.power_kw)
    # Each site's controller came back from Ray with its two plans.
    assert {s: c.plans_made for s, c in ray[2].items()} == {s: 2 for s in ray[2]}
    assert sorted(ray[3], key=str) == sorted(inline[3], key=str)


def test_the_event_loop_runs_while_ray_solves(store: Store, ray_engine: RayEngine) -> None:
    program = load_program("example")
    loop = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), engine=ray_engine)
    beats: list[int] = []

    async def both() -> list[SiteStatus]:
        async def heartbeat() -> None:
            while True:
                beats.append(len(beats))
                await asyncio.sleep(0)

        beating = asyncio.create_task(heartbeat())
        try:
            return await loop.tick_all()
        finally:
            beating.cancel()

    statuses = run(both())
    assert [s.mode for s in statuses] == ["grid"] * 3
    # A solve that blocked the loop would leave the heartbeat at its first beat or so; Ray
    # tasks take at least one message round trip each, thousands of loop turns.
    assert len(beats) > 100


def test_a_controller_with_its_warm_start_survives_pickling(store: Store) -> None:
    program = load_program("example")
    loop = LiveControl(program, store, FakeSink(), SimClock(IN_EVENT), events_of(program))
    run(loop.tick("school-beverly"))
    controller = loop._sites["school-beverly"].controller
    assert isinstance(controller, LinearProgramController)
    copy = pickle.loads(pickle.dumps(controller))
    assert copy.plans_made == 1 and copy.last_plan is not None
    assert copy.last_plan.objective == controller.last_plan.objective  # type: ignore[union-attr]
    kept, copied = controller._warm._basis, copy._warm._basis
    assert kept is not None and copied is not None
    assert [int(s) for s in copied.col_status] == [int(s) for s in kept.col_status]
    assert [int(s) for s in copied.row_status] == [int(s) for s in kept.row_status]
    assert copy._warm._shape == controller._warm._shape


def test_an_unknown_engine_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="known: inline, ray"):
        make_engine("dask")
    assert make_engine("inline").parallel == 1
    assert make_engine("ray", num_cpus=3).parallel == 6
