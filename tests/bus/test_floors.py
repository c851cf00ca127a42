"""Fence floors shared by gateways in JetStream KV: compare-and-set, a floor never decreases."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightson.bus.connection import BrokerError, Bus, check_url, connect_bus
from lightson.bus.floors import FENCE_BUCKET, FenceFloors
from nats_support import NatsServer

_KEYS = itertools.count()


async def _two_gateways(url: str) -> tuple[list[Bus], list[FenceFloors]]:
    buses = [await connect_bus(url, f"gateway-{n}") for n in (1, 2)]
    return buses, [await FenceFloors.open(bus.jetstream) for bus in buses]


def test_a_floor_raised_on_one_gateway_refuses_a_lower_fence_on_another(
    nats_broker: NatsServer,
) -> None:
    async def scenario() -> list[object]:
        buses, (first, second) = await _two_gateways(nats_broker.url)
        seen: list[object] = [
            await first.admit("home-03", 4),  # the first holder's fence sets the floor
            await second.admit("home-03", 4),  # its station moved: the same holder, again
            await second.admit("home-03", 9),  # a successor took the lease
            await first.admit("home-03", 4),  # the old holder is fenced off there too
            await first.admit("home-03", 9),
            await first.admit("home-04", 1),  # each site on its own
            await second.floor("home-03"),
        ]
        for bus in buses:
            await bus.close()
        return seen

    *admitted, (floor, revision) = asyncio.run(scenario())
    assert admitted == [True, True, True, False, True, True]
    assert floor == 9
    assert revision > 0


def test_an_update_with_a_stale_revision_is_refused_so_a_floor_cannot_drop(
    nats_broker: NatsServer,
) -> None:
    """The compare-and-set itself: a writer that read revision r cannot write after r moved."""
    from nats.js.errors import KeyWrongLastSequenceError

    async def scenario() -> tuple[bool, int | None]:
        bus = await connect_bus(nats_broker.url, "gateway")
        floors = await FenceFloors.open(bus.jetstream)
        await floors.admit("home-03", 5)
        _, stale = await floors.floor("home-03")
        await floors.admit("home-03", 8)
        refused = False
        try:
            await floors.bucket.update("home-03", b"5", last=stale)
        except KeyWrongLastSequenceError:
            refused = True
        floor, _ = await floors.floor("home-03")
        await bus.close()
        return refused, floor

    assert asyncio.run(scenario()) == (True, 8)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=1), st.integers(min_value=0, max_value=30)),
        min_size=1,
        max_size=12,
    )
)
def test_a_floor_never_decreases_whichever_gateway_admits(
    nats_broker: NatsServer, steps: list[tuple[int, int]]
) -> None:
    """Fences arrive at either of two gateways, one at a time and then all at once: a fence
    is admitted exactly when no higher one came before, and the floor only ever rises."""
    site = f"site-{next(_KEYS)}"

    async def scenario() -> None:
        buses, gateways = await _two_gateways(nats_broker.url)
        floors_seen = [0]
        for i, (gateway, fence) in enumerate(steps):
            admitted = await gateways[gateway].admit(site, fence)
            assert admitted == (fence >= max((f for _, f in steps[:i]), default=0))
            floor, _ = await gateways[1 - gateway].floor(site)
            assert floor is not None and floor >= floors_seen[-1]
            floors_seen.append(floor)
        racing = f"{site}-race"
        await asyncio.gather(*(gateways[g].admit(racing, f) for g, f in steps))
        floor, _ = await gateways[0].floor(racing)
        assert floor == max(f for _, f in steps)
        for bus in buses:
            await bus.close()

    asyncio.run(scenario())


def test_the_bucket_is_the_named_one(nats_broker: NatsServer) -> None:
    async def scenario() -> str:
        bus = await connect_bus(nats_broker.url, "gateway")
        floors = await FenceFloors.open(bus.jetstream)
        again = await FenceFloors.open(bus.jetstream)  # a second gateway opens the same one
        await floors.admit("home-03", 2)
        assert (await again.floor("home-03"))[0] == 2
        status = await floors.bucket.status()
        await bus.close()
        return status.bucket

    assert asyncio.run(scenario()) == FENCE_BUCKET


@pytest.mark.parametrize("url", ["http://127.0.0.1:4222", "127.0.0.1:4222", "nats://"])
def test_a_url_that_is_not_a_broker_url_is_refused_in_one_line(url: str) -> None:
    with pytest.raises(BrokerError, match="not a broker URL"):
        check_url(url)


def test_no_broker_listening_is_a_broker_error_not_a_hang(tmp_path: object) -> None:
    from net_support import free_port

    with pytest.raises(BrokerError, match="cannot reach the broker"):
        asyncio.run(connect_bus(f"nats://127.0.0.1:{free_port()}", "gateway"))
