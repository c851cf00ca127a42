"""Kill -9 of a control worker: two ``lightson worker`` processes share PostgreSQL and NATS;
the killed one's sites are taken over within one tick, and a fake gateway that records every
command with its fence never admits two workers' commands for one site interleaved."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats

from lightson.bus.connection import flushed
from lightson.bus.fencing import Fences
from lightson.bus.subjects import Command, CommandReply
from lightson.config import load_program
from lightson.store import Store
from live_support import plugged
from nats_support import NatsServer
from pg_support import fresh_database

SRC = Path(__file__).resolve().parents[2] / "src"
LEASE_S, EVERY_S = 1.5, 5


def _worker(name: str, bus: str, db: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    command = [sys.executable, "-m", "lightson.cli", "worker", "example", "--bus", bus]
    command += ["--db", db, "--worker-id", name, "--lease-s", str(LEASE_S)]
    return subprocess.Popen(
        [*command, "--every", str(EVERY_S)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def test_kill_9_of_a_worker_its_sites_move_within_one_tick(
    nats_broker: NatsServer, postgres_cluster: str, tmp_path: Path
) -> None:
    db = fresh_database(postgres_cluster)
    program = load_program("example")
    sites = {s.site_id for s in program.sites}
    store = Store(db)
    for site in program.sites:  # plugged vehicles: setpoints go out at every tick
        for charger in site.chargers:
            plugged(store, charger.evse_id, 0.6, datetime.now(UTC), tx=f"tx-{charger.evse_id}")
    store.close()
    received: list[tuple[float, Command, str, bool]] = []  # when, what, sender, admitted
    fences = Fences()
    workers: list[subprocess.Popen[bytes]] = []

    async def scenario() -> float:
        gateway = await nats.connect(nats_broker.url)

        async def answer(message: Any) -> None:
            command = Command.decode(message.data)
            admitted = fences.admit(command.site_id, command.fence)
            sender = ".".join(message.reply.split(".")[:2])
            received.append((time.monotonic(), command, sender, admitted))
            reply = CommandReply("Accepted") if admitted else CommandReply("Rejected", "fenced")
            await message.respond(reply.encode())

        await gateway.subscribe("lightson.cmd.*", cb=answer)
        await flushed(gateway)

        async def until(done: Any, limit_s: float) -> None:
            deadline = time.monotonic() + limit_s
            while not done():
                assert time.monotonic() < deadline, "timed out"
                await asyncio.sleep(0.1)

        def senders() -> set[str]:
            return {sender for _, _, sender, _ in received}

        workers.append(_worker("first", nats_broker.url, db, tmp_path / "first.log"))
        await until(lambda: {c.site_id for _, c, _, _ in received} == sites, 60)
        workers.append(_worker("second", nats_broker.url, db, tmp_path / "second.log"))
        await until(lambda: len(senders()) == 2, 60)
        await asyncio.sleep(2 * LEASE_S)  # the shares settle
        workers[0].kill()  # SIGKILL
        workers[0].wait(10)
        killed_at = time.monotonic()
        first = received[0][2]
        second = next(s for s in senders() if s != first)

        def all_from_second() -> bool:
            late = {c.site_id for t, c, s, _ in received if t > killed_at and s == second}
            return late == sites

        await until(all_from_second, 30)
        await gateway.close()
        return killed_at

    try:
        killed_at = asyncio.run(asyncio.wait_for(scenario(), 150))
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    first = received[0][2]
    second = next(s for _, _, s, _ in received if s != first)
    held_by_first = {
        site_id
        for site_id in sites
        if [s for t, c, s, ok in received if c.site_id == site_id and ok and t < killed_at][-1]
        == first
    }
    assert held_by_first  # the killed worker held sites
    # Each of its sites got a command from the survivor within one tick of the kill.
    for site_id in held_by_first:
        taken = min(
            t for t, c, s, _ in received if c.site_id == site_id and s == second and t > killed_at
        )
        assert taken - killed_at <= EVERY_S, (site_id, taken - killed_at)
    # Per site, admitted commands come from one worker, then from the next with a higher
    # fence, never back: no two workers controlled a site at once.
    for site_id in sites:
        admitted = [(c.fence, s) for _, c, s, ok in received if c.site_id == site_id and ok]
        assert [f for f, _ in admitted] == sorted(f for f, _ in admitted)
        holders = [s for n, (_, s) in enumerate(admitted) if n == 0 or admitted[n - 1][1] != s]
        assert len(holders) == len(set(holders)), (site_id, holders)
        fence_holder: dict[int, str] = {}
        for fence, sender in admitted:
            assert fence_holder.setdefault(fence, sender) == sender
