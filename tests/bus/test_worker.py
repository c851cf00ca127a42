"""Control workers over a real NATS server and a fake gateway: two workers split the sites,
each ticks and commands only its own shard, with its lease's fence."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats

from lightson.bus.connection import flushed
from lightson.bus.fencing import Fences
from lightson.bus.subjects import Command, CommandReply
from lightson.config import load_program
from lightson.csms.clock import AcceleratedClock
from lightson.roles.worker import ControlWorker
from lightson.store import Store
from nats_support import NatsServer


def test_two_workers_split_the_sites_and_command_only_their_own(
    nats_broker: NatsServer, tmp_path: Path
) -> None:
    program = load_program("example")
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    received: list[tuple[Command, str]] = []  # with the sender's reply inbox
    fences = Fences()

    async def scenario() -> tuple[list[str], list[str]]:
        gateway = await nats.connect(nats_broker.url)

        async def answer(message: Any) -> None:
            command = Command.decode(message.data)
            received.append((command, ".".join(message.reply.split(".")[:2])))
            admitted = fences.admit(command.site_id, command.fence)
            reply = CommandReply("Accepted") if admitted else CommandReply("Rejected", "fenced")
            await message.respond(reply.encode())

        await gateway.subscribe("lightson.cmd.*", cb=answer)
        await flushed(gateway)
        workers = [
            ControlWorker(
                program,
                store,
                AcceleratedClock(),
                nats_broker.url,
                name,
                lease_s=1.5,
                every=timedelta(hours=1),  # ticks come from take-overs only
            )
            for name in ("w-a", "w-b")
        ]
        try:
            async with workers[0].running() as a, workers[1].running() as b:
                for _ in range(100):  # at most 10 s
                    await asyncio.sleep(0.1)
                    if len(a.owned()) + len(b.owned()) == 3 and min(len(a.owned()), len(b.owned())):
                        break
                await asyncio.sleep(1.0)  # the take-over ticks finish
                return a.owned(), b.owned()
        finally:
            await gateway.close()

    try:
        owned_a, owned_b = asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        store.close()
    assert sorted([len(owned_a), len(owned_b)]) == [1, 2]  # ceil(3 / 2) at most each
    assert set(owned_a).isdisjoint(owned_b)
    assert sorted(owned_a + owned_b) == sorted(s.site_id for s in program.sites)
    # A worker started alone takes every site, then gives one back when the other joins:
    # per site, commands come from one worker and then, with a higher fence, from the next.
    last_sender: dict[str, str] = {}
    fence_of: dict[tuple[str, str], int] = {}
    for command, sender in received:
        previous = last_sender.get(command.site_id)
        if previous is not None and previous != sender:
            assert command.fence > fence_of[(command.site_id, previous)]
        fence_of[(command.site_id, sender)] = command.fence
        last_sender[command.site_id] = sender
    assert len({last_sender[s] for s in owned_a}) == len({last_sender[s] for s in owned_b}) == 1
    assert last_sender[owned_a[0]] != last_sender[owned_b[0]]
    assert len({sender for _, sender in received}) == 2
    stations = {c.evse_id for s in program.sites for c in s.chargers}
    assert {c.station_id for c, _ in received} == stations  # each got its default
    assert {c.op for c, _ in received} == {"install_default"}
