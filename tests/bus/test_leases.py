"""Site leases (lightson.bus.leases): on an in-memory bucket with a clock the test moves (the
rule, with hypothesis), and on a real NATS JetStream server (the bucket's own expiry)."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st
from kv_fake import FakeBucket, FakeClock

from lightson.bus.fencing import Fences
from lightson.bus.leases import Leases, open_buckets
from nats_support import NatsServer

SITES = [f"site-{n}" for n in range(5)]
LEASE_S = 3.0


def _workers(
    count: int, clock: FakeClock, latency_s: float = 0.0
) -> tuple[list[Leases], FakeBucket, FakeBucket]:
    leases = FakeBucket(clock, LEASE_S, latency_s)
    alive = FakeBucket(clock, LEASE_S, latency_s)
    return (
        [Leases(leases, alive, f"w{n}", SITES, LEASE_S, now=clock) for n in range(count)],
        leases,
        alive,
    )


def _holders(workers: list[Leases], site_id: str) -> list[str]:
    return [w.worker_id for w in workers if w.fence(site_id) is not None]


def test_one_worker_takes_every_site_with_growing_fences() -> None:
    clock = FakeClock()
    [worker], bucket, _ = _workers(1, clock)
    changes = asyncio.run(worker.tick())
    taken = changes.taken
    assert sorted(taken) == SITES
    assert sorted(taken.values()) == [1, 2, 3, 4, 5]  # the bucket's revisions
    assert worker.held() == frozenset(SITES)
    clock.t = 1.0
    changes = asyncio.run(worker.tick())
    assert changes.taken == {} and changes.lost == ()
    # renewed: the key's revision moved on, the fence stays the one it was taken with
    assert sorted(bucket.entries[s][1] for s in SITES) == [6, 7, 8, 9, 10]
    assert {s: worker.fence(s) for s in SITES} == taken


def test_two_workers_split_the_sites_and_a_dead_ones_go_to_the_other() -> None:
    clock = FakeClock()
    workers, _, _ = _workers(2, clock)
    for _ in range(4):
        for worker in workers:
            asyncio.run(worker.tick())
        clock.t += LEASE_S / 3
    held = [len(w.held()) for w in workers]
    assert sorted(held) == [2, 3]  # ceil(5 / 2) = 3 at most each, all five held
    assert workers[0].held().isdisjoint(workers[1].held())
    survivor = workers[1]
    dead_sites = workers[0].held()
    died_at = clock.t
    while dead_sites - survivor.held():
        clock.t += survivor.tick_s
        asyncio.run(survivor.tick())
    # taken at the survivor's first tick after the dead one's leases and heartbeat expired
    assert clock.t - died_at <= LEASE_S + survivor.tick_s + 1e-9
    assert survivor.held() == frozenset(SITES)


def test_a_paused_worker_counts_nothing_as_its_own_after_lease_s() -> None:
    clock = FakeClock()
    [paused, other], _, _ = _workers(2, clock)
    asyncio.run(paused.tick())
    assert paused.held() == frozenset(SITES)
    clock.t = LEASE_S  # no renewal for lease_s: nothing is held, whatever the bucket says
    assert paused.held() == frozenset()
    assert paused.fence("site-0") is None
    changes = asyncio.run(other.tick())
    assert sorted(changes.taken) == SITES
    assert min(changes.taken.values()) > 5  # above every fence the paused worker had
    changes = asyncio.run(paused.tick())  # it wakes up: everything is lost, nothing taken
    assert sorted(changes.lost) == SITES and changes.taken == {}


def test_a_lease_is_lost_when_the_broker_stays_away_past_lease_s() -> None:
    clock = FakeClock()
    [worker], leases, alive = _workers(1, clock)
    asyncio.run(worker.tick())
    leases.away = alive.away = True
    clock.t = 2.0
    assert asyncio.run(worker.tick()).lost == ()  # not renewed, still held until 3.0
    assert worker.held() == frozenset(SITES)
    clock.t = 3.0
    assert sorted(asyncio.run(worker.tick()).lost) == SITES
    assert worker.held() == frozenset()


Step = tuple[str, int, float]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.integers(0, 2), st.just(0.0)),
        st.tuples(
            st.just("wait"),
            st.just(0),
            # on the edges (a lease's end) as well as anywhere
            st.sampled_from([0.05, 0.5, LEASE_S / 3, LEASE_S - 0.05, LEASE_S]) | st.floats(0, 4),
        ),
        st.tuples(st.just("broker"), st.integers(0, 1), st.just(0.0)),
    ),
    min_size=1,
    max_size=60,
)


@given(steps, st.sampled_from([0.0, 0.05, 0.4]))
def test_no_two_workers_hold_a_site_at_once_and_fences_only_grow(
    program: list[Step], latency_s: float
) -> None:
    """Any interleaving of three workers' ticks, pauses of any length (a worker not ticked
    is paused or dead), the broker going away and coming back, and writes that land late."""
    clock = FakeClock()
    workers, leases, alive = _workers(3, clock, latency_s)
    fences = Fences()  # what a gateway would admit: every holder's fence must pass
    for kind, n, dt in program:
        if kind == "tick":
            asyncio.run(workers[n].tick())
        elif kind == "wait":
            clock.t += dt
        else:
            leases.away = alive.away = bool(n)
        for site_id in SITES:
            holders = _holders(workers, site_id)
            assert len(holders) <= 1, (site_id, holders)
            for worker in workers:
                fence = worker.fence(site_id)
                if fence is not None:
                    assert fences.admit(site_id, fence)


def test_real_bucket_expiry_frees_a_dead_workers_lease(nats_broker: NatsServer) -> None:
    import nats

    async def scenario() -> tuple[dict[str, int], dict[str, int], float]:
        client = await nats.connect(nats_broker.url)
        try:
            leases, alive, lease_s = await open_buckets(client.jetstream(), 1.0)
            first = Leases(leases, alive, "first", ["a", "b"], lease_s)
            second = Leases(leases, alive, "second", ["a", "b"], lease_s)
            taken_first = (await first.tick()).taken
            assert (await second.tick()).taken == {}  # both held: nothing free
            await asyncio.sleep(1.3)  # "first" died: its keys expire on the server
            taken_second = (await second.tick()).taken
            return taken_first, taken_second, lease_s
        finally:
            await client.close()

    taken_first, taken_second, lease_s = asyncio.run(scenario())
    assert lease_s == 1.0
    assert sorted(taken_first) == ["a", "b"] and sorted(taken_second) == ["a", "b"]
    assert min(taken_second.values()) > max(taken_first.values())
