"""A grid signal stored by someone else (the site's meter, an operator) and announced on
``lightson.site.<site>.grid`` reaches the control worker holding the site: it reads the
site's signals again and the site is islanded there at once (``lightson demo
--distributed`` plays the school's meter so)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import nats

from lightson.bus.connection import flushed
from lightson.bus.subjects import site_subject
from lightson.config import load_program
from lightson.control.grid import GridSignal
from lightson.csms.clock import AcceleratedClock
from lightson.roles.worker import ControlWorker
from lightson.store import Store
from lightson.store import schema as db
from nats_support import NatsServer

SCHOOL = "school-beverly"


def test_a_stored_grid_loss_announced_on_the_bus_islands_the_site(
    nats_broker: NatsServer, tmp_path: Path
) -> None:
    program = load_program("example")
    store = Store(f"sqlite:///{tmp_path / 'grid.db'}")
    clock = AcceleratedClock()

    async def scenario() -> tuple[bool, bool, bool]:
        announcer = await nats.connect(nats_broker.url)
        worker = ControlWorker(
            program, store, clock, nats_broker.url, "w-grid", lease_s=1.5, every=timedelta(hours=1)
        )
        try:
            async with worker.running() as running:
                for _ in range(100):  # at most 10 s: it holds every site
                    if len(running.owned()) == len(program.sites):
                        break
                    await asyncio.sleep(0.1)
                row = {
                    "site_id": SCHOOL,
                    "source": "meter",
                    "signal": GridSignal.LOST.value,
                    "at": clock.now(),
                    "released_vehicles": [],
                }
                await asyncio.to_thread(lambda: store.write([(db.grid_signals, row)]).result(30))
                await asyncio.sleep(0.5)
                stored_only = running.live.islanded(SCHOOL)  # nobody said so yet
                await announcer.publish(
                    site_subject(SCHOOL, "grid"), b'{"site_id": "%s"}' % SCHOOL.encode()
                )
                await flushed(announcer)
                for _ in range(100):
                    if running.live.islanded(SCHOOL):
                        break
                    await asyncio.sleep(0.1)
                others = any(
                    running.live.islanded(s.site_id) for s in program.sites if s.site_id != SCHOOL
                )
                return stored_only, running.live.islanded(SCHOOL), others
        finally:
            await announcer.close()

    try:
        stored_only, islanded, others = asyncio.run(asyncio.wait_for(scenario(), 40))
    finally:
        store.close()
    assert not stored_only
    assert islanded
    assert not others
