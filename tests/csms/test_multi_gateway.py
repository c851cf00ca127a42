"""Several CSMS processes (gateways) on one database: OCPP 1.6 transaction ids stay unique,
and the reconciler leaves alone what another gateway holds (issue #18)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

from test_reconcile import PASSWORD_HASH, START, peer, stamp

from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.csms.wire import OcppVersion
from lightson.domain.time import SimClock
from lightson.store import StationRecord, Store
from lightson.store.transactions import station_transactions
from net_support import eventually, run

BOOT_16 = {"chargePointVendor": "Lights On", "chargePointModel": "Test"}


def register(url: str) -> None:
    """Stations cs1..cs4 (1.6), registered once in the shared database."""
    setup = Store(url)
    for n in range(1, 5):
        setup.add_station(StationRecord(f"cs{n}", PASSWORD_HASH, "1.6", "negative-limit", 60))
    setup.close()


@asynccontextmanager
async def gateway(url: str, clock: SimClock) -> AsyncIterator[CsmsServer]:
    """A CSMS server with its own store on the database at ``url``, as a separate gateway
    process would be."""
    settings = CsmsSettings(port=0, offline_check_every_s=0.02, offline_close_after_s=900)
    store = Store(url)
    server = CsmsServer(store, clock, settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        store.close()


def test_transaction_ids_are_unique_across_gateways_on_one_database(database_url: str) -> None:
    """Two gateways answer StartTransaction at once, again and again: every id differs, and
    each is the id of a Started row stored before the answer, at the station that got it."""
    clock = SimClock(START)

    async def scenario() -> dict[str, list[int]]:
        register(database_url)
        async with (
            gateway(database_url, clock) as first,
            gateway(database_url, clock) as second,
            AsyncExitStack() as s,
        ):
            stations = {
                "cs1": await s.enter_async_context(peer(first, "cs1", OcppVersion.V16)),
                "cs2": await s.enter_async_context(peer(second, "cs2", OcppVersion.V16)),
                "cs3": await s.enter_async_context(peer(second, "cs3", OcppVersion.V16)),
            }
            start = {"connectorId": 1, "idTag": "tag", "meterStart": 0, "timestamp": stamp(START)}

            async def starts(station_id: str) -> list[int]:
                station = stations[station_id]
                return [
                    (await station.call("StartTransaction", start))[2]["transactionId"]
                    for _ in range(6)
                ]

            ids = await asyncio.gather(*(starts(s) for s in stations))
            store = first.store
            for station_id, given in zip(stations, ids, strict=True):
                stored = station_transactions(store, station_id)
                assert sorted(int(t.transaction_id) for t in stored) == sorted(given)
            return dict(zip(stations, ids, strict=True))

    ids = run(scenario())
    every = [i for given in ids.values() for i in given]
    assert len(every) == 18
    assert len(set(every)) == 18
    assert all(isinstance(i, int) and i > 0 for i in every)


def test_the_reconciler_leaves_what_another_gateway_holds(database_url: str) -> None:
    """cs1 starts a transaction on the first gateway, cs2 on the second; the second gateway
    started after both. Long after, the second gateway asks before closing: cs1 is held by
    the first (kept, and forgotten there), cs2 moved to the first too (kept), cs3 never came
    back anywhere (closed); while nobody can say, nothing is closed."""
    clock = SimClock(START)
    answers: dict[str, bool | None] = {}

    async def scenario() -> None:
        register(database_url)
        start = {"connectorId": 1, "idTag": "tag", "meterStart": 0, "timestamp": stamp(START)}

        async def held(station_id: str) -> bool | None:
            return answers.get(station_id, station_id in first.sessions)

        async with gateway(database_url, clock) as first, AsyncExitStack() as stack:
            first.held_elsewhere = held
            cs1 = await stack.enter_async_context(peer(first, "cs1", OcppVersion.V16))
            await cs1.call("StartTransaction", start)
            async with peer(first, "cs3", OcppVersion.V16) as cs3:
                await cs3.call("StartTransaction", start)
            async with gateway(database_url, clock) as second:
                second.held_elsewhere = held
                async with peer(second, "cs2", OcppVersion.V16) as cs2:
                    await cs2.call("StartTransaction", start)
                await stack.enter_async_context(peer(first, "cs2", OcppVersion.V16))
                # The second counts cs1 and cs3 lost from its start, cs2 from its drop.
                await eventually(lambda: set(second.reconciler.lost_at) == {"cs1", "cs2", "cs3"})
                answers.update({"cs1": None, "cs2": None, "cs3": None})  # the broker is away
                clock.advance(timedelta(seconds=901))
                await asyncio.sleep(0.2)  # several sweeps
                assert _open(second) == {"cs1", "cs2", "cs3"}
                answers.clear()
                await eventually(lambda: _open(second) == {"cs1", "cs2"})
                await eventually(lambda: not second.reconciler.lost_at)

    run(scenario())


def _open(server: CsmsServer) -> set[str]:
    return {
        station_id
        for station_id in ("cs1", "cs2", "cs3")
        if any(t.open for t in station_transactions(server.store, station_id))
    }
