"""Site leases: which control worker controls which site, in JetStream key-value buckets.

``lightson-leases`` (``subjects.LEASE_BUCKET``): key ``<site_id>``, value the worker's id.
The bucket's ``max_age`` is the lease time ``lease_s``: a key not rewritten for that long is
gone, so a dead worker's leases free themselves with no one to clean up after it.

- **take**: ``create`` (only if the key is absent); the revision it returns is the lease's
  **fence**, carried by every command for the site. Revisions are the bucket stream's
  sequence numbers, so a later taker always gets a higher fence.
- **renew**: ``update`` with the last revision written, every ``lease_s / 3``; a wrong
  revision (the key expired and someone took it) means the lease is lost.
- **hold**: a worker counts a lease as its own until ``lease_s`` after it *sent* its last
  successful write (the server stamps the write later, so it expires later): past that,
  without a renewal, the lease is lost whatever the reason (the broker unreachable, the
  process paused). Two workers therefore never both count a site as theirs, and a command a
  paused worker still sends carries a fence lower than its successor's (``bus.fencing``).
- **fair share**: each worker writes its id to ``lightson-workers`` at every tick (same
  ``max_age``); with ``n`` live workers and ``m`` sites each holds at most ``ceil(m / n)``
  and gives back what is above it, so sites spread when a worker joins, and a dead worker's
  sites are taken at the others' next tick after its leases expire. Among the free sites a
  worker takes first the ones ranked highest for it by rendezvous hashing, so workers
  starting together mostly reach for different sites.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError

from lightson.bus.subjects import LEASE_BUCKET

LOGGER = logging.getLogger("lightson.leases")
WORKER_BUCKET = "lightson-workers"


class KeyValue(Protocol):
    """What the leases use of a JetStream key-value bucket (``nats.js.kv.KeyValue``)."""

    async def create(self, key: str, value: bytes) -> int: ...

    async def update(self, key: str, value: bytes, last: int | None = None) -> int: ...

    async def delete(self, key: str, last: int | None = None) -> bool: ...

    async def put(self, key: str, value: bytes) -> int: ...

    async def keys(self) -> list[str]: ...


@dataclass
class Lease:
    site_id: str
    fence: int  # the key's revision when this worker took it
    revision: int  # the last revision this worker wrote
    valid_until_s: float  # on ``now``'s clock: last successful write sent + lease_s


@dataclass(frozen=True)
class LeaseChanges:
    """What a tick changed: sites taken (with their fence) and sites lost or given back."""

    taken: dict[str, int]
    lost: tuple[str, ...]


class Leases:
    """One worker's leases over ``sites``. Call :meth:`tick` every ``lease_s / 3``."""

    def __init__(
        self,
        leases: KeyValue,
        workers: KeyValue,
        worker_id: str,
        sites: Sequence[str],
        lease_s: float,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.leases, self.workers = leases, workers
        self.worker_id = worker_id
        self.sites = tuple(sites)
        self.lease_s = lease_s
        self.now = now
        self._held: dict[str, Lease] = {}

    @property
    def tick_s(self) -> float:
        return self.lease_s / 3

    def fence(self, site_id: str) -> int | None:
        """The fence of ``site_id`` while this worker holds its lease now, else ``None``."""
        lease = self._held.get(site_id)
        if lease is None or self.now() >= lease.valid_until_s:
            return None
        return lease.fence

    def held(self) -> frozenset[str]:
        """The sites whose lease this worker holds now."""
        return frozenset(s for s in self._held if self.fence(s) is not None)

    async def tick(self) -> LeaseChanges:
        """Announce this worker, renew its leases, give back what is above its fair share
        and take free sites up to it."""
        lost = [*self._expire(), *await self._renew()]
        workers = await self._live_workers()
        if workers is None:  # not knowing the others: neither give back nor take
            return LeaseChanges({}, tuple(lost))
        share = math.ceil(len(self.sites) / workers)
        lost += await self._give_back(len(self._held) - share)
        taken = await self._take(share - len(self._held))
        return LeaseChanges(taken, tuple(lost))

    def drop(self, site_id: str) -> None:
        """Forget the lease on ``site_id`` here (a gateway refused its fence: a newer holder
        has the site); the key is the newer holder's and stays."""
        self._held.pop(site_id, None)

    async def release_all(self) -> None:
        """Give every lease back (a clean stop): the others take the sites at once."""
        await self._give_back(len(self._held))

    def _expire(self) -> list[str]:
        gone = [s for s, lease in self._held.items() if self.now() >= lease.valid_until_s]
        for site_id in gone:
            LOGGER.warning("%s: lease expired before it was renewed", site_id)
            del self._held[site_id]
        return gone

    async def _renew(self) -> list[str]:
        lost = []
        for site_id, lease in list(self._held.items()):
            sent_s = self.now()
            try:
                lease.revision = await self.leases.update(
                    site_id, self.worker_id.encode(), last=lease.revision
                )
            except (KeyWrongLastSequenceError, KeyNotFoundError):
                LOGGER.warning("%s: lease lost (taken by another worker)", site_id)
                del self._held[site_id]
                lost.append(site_id)
                continue
            except Exception as error:  # the broker away: held until it expires
                LOGGER.warning("%s: lease not renewed: %s", site_id, error)
                continue
            lease.valid_until_s = sent_s + self.lease_s
        return lost

    async def _live_workers(self) -> int | None:
        try:
            await self.workers.put(self.worker_id, b"alive")
            names = set(await self.workers.keys())
        except NoKeysError:
            names = set()
        except Exception as error:
            LOGGER.warning("workers not counted: %s", error)
            return None
        return max(1, len(names | {self.worker_id}))

    async def _give_back(self, surplus: int) -> list[str]:
        if surplus <= 0:
            return []
        ranked = self._ranked(self._held)
        given = ranked[len(ranked) - surplus :]  # the ones ranked lowest for this worker
        for site_id in given:
            lease = self._held.pop(site_id)  # no command goes out for it from now
            try:
                await self.leases.delete(site_id, last=lease.revision)
            except Exception as error:  # it expires on its own
                LOGGER.info("%s: lease not deleted: %s", site_id, error)
        return given

    async def _take(self, wanted: int) -> dict[str, int]:
        if wanted <= 0:
            return {}
        try:
            present = set(await self.leases.keys())
        except NoKeysError:
            present = set()
        except Exception as error:
            LOGGER.warning("leases not read: %s", error)
            return {}
        taken: dict[str, int] = {}
        for site_id in self._ranked(s for s in self.sites if s not in present):
            if len(taken) == wanted:
                break
            sent_s = self.now()
            try:
                revision = await self.leases.create(site_id, self.worker_id.encode())
            except Exception as error:  # taken by another meanwhile, or the broker away
                LOGGER.debug("%s: lease not taken: %s", site_id, error)
                continue
            self._held[site_id] = Lease(site_id, revision, revision, sent_s + self.lease_s)
            taken[site_id] = revision
        return taken

    def _ranked(self, sites: Iterable[str]) -> list[str]:
        """Rendezvous hashing: the sites in this worker's order of preference."""

        def weight(site_id: str) -> bytes:
            return hashlib.sha256(f"{self.worker_id}\0{site_id}".encode()).digest()

        return sorted(sites, key=weight, reverse=True)


async def open_buckets(js: object, lease_s: float) -> tuple[KeyValue, KeyValue, float]:
    """The lease and worker buckets, created with ``max_age = lease_s`` where missing. An
    existing bucket keeps its own ``max_age``, which is then the lease time (returned)."""
    from nats.js import JetStreamContext
    from nats.js.api import KeyValueConfig
    from nats.js.errors import BucketNotFoundError

    assert isinstance(js, JetStreamContext)
    buckets = []
    effective_s = lease_s
    for name in (LEASE_BUCKET, WORKER_BUCKET):
        try:
            bucket = await js.key_value(name)
            ttl = (await bucket.status()).ttl
            if ttl and name == LEASE_BUCKET and abs(ttl - lease_s) > 1e-6:
                LOGGER.warning("bucket %s holds leases for %.1f s, not %.1f s", name, ttl, lease_s)
                effective_s = ttl
        except BucketNotFoundError:
            bucket = await js.create_key_value(
                KeyValueConfig(bucket=name, ttl=effective_s, history=1)
            )
        buckets.append(bucket)
    return buckets[0], buckets[1], effective_s
