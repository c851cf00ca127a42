"""The control worker: the live loop for the sites whose lease it holds, over the broker.

A worker holds site leases (``bus.leases``, renewed every ``lease_s / 3``), listens to the
wake-ups of its sites (``lightson.site.<site_id>.*``: the gateway stored something a
station sent; the data is read from PostgreSQL at the tick), runs ``services.live``'s loop
for those sites only, and sends every command through ``BusSink`` with the site's fence.
A site taken over (its worker died, or the shares moved) ticks at once from what the
database holds; a site lost (expired, given back, or fenced by a gateway) stops at once.

The API servers see the sites through the worker: after each tick of a site, and for every
site it holds at each lease tick, the worker writes the site's status with its lease fence
to the ``lightson-status`` bucket (``bus.status``). They tell it of what people changed on
the same wake-up subjects: ``changed`` (re-plan now) and ``grid`` (read the site's grid
signals from the database again, then re-plan).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import nats
from nats.aio.subscription import Subscription

from lightson.bus.leases import Leases, open_buckets
from lightson.bus.sink import BusSink
from lightson.bus.status import StatusPublisher, open_status_bucket
from lightson.bus.subjects import site_wildcard
from lightson.config.dr_rules import program_dr_rules
from lightson.domain.assets import Program, Site
from lightson.domain.demand_response import DREvent
from lightson.domain.errors import ConfigError, LightsOnError
from lightson.domain.time import Clock
from lightson.services.engines import InlineEngine, RayEngine
from lightson.services.events import EventService
from lightson.services.live import DEFAULT_ISLANDED_HOLD, LiveControl
from lightson.services.live_status import SiteStatus
from lightson.store import Store

LOGGER = logging.getLogger("lightson.worker")
DEFAULT_LEASE_S = 15.0
KEY_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=")


class BrokerError(LightsOnError):
    """The message broker cannot be reached (it may come back: retrying can help)."""

    retryable = True


def check_bus_url(url: str) -> str:
    """A NATS URL (``nats://host:port``, ``tls://...``), or ``ConfigError`` naming --bus."""
    scheme, _, rest = url.partition("://")
    if scheme not in ("nats", "tls") or not rest or any(c.isspace() for c in url):
        raise ConfigError.at("--bus", f"must be a NATS URL like nats://127.0.0.1:4222, not {url!r}")
    return url


def check_worker_id(worker_id: str) -> str:
    if not worker_id or not set(worker_id) <= KEY_CHARACTERS:
        raise ConfigError.at("--worker-id", "letters, digits, '-', '_' and '=' only")
    return worker_id


@dataclass
class ControlWorker:
    """One control worker, started and stopped with :meth:`running`."""

    program: Program
    store: Store
    clock: Clock
    bus_url: str
    worker_id: str
    lease_s: float = DEFAULT_LEASE_S
    every: timedelta = timedelta(minutes=5)
    speed: float = 1.0
    controller: str = "v2x-mpc"
    keep_plans: timedelta | None = None
    islanded_hold: timedelta = DEFAULT_ISLANDED_HOLD
    command_timeout_s: float = 35.0
    # Where the site LPs are solved: here (inline) or on Ray (a planning burst's solves
    # spread over Ray's CPUs while this worker's event loop keeps renewing its leases).
    engine: InlineEngine | RayEngine = field(default_factory=InlineEngine)
    _subscriptions: dict[str, Subscription] = field(default_factory=dict, init=False)
    _publishing: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        check_bus_url(self.bus_url)
        check_worker_id(self.worker_id)
        self.rules = list(program_dr_rules(self.program).values())
        self._site_of = {c.evse_id: s.site_id for s in self.program.sites for c in s.chargers}

    def _events_for(self, site: Site) -> Sequence[DREvent]:
        book = EventService(self.store, self.clock, self.rules).book()
        return book.for_site(site.site_id, site.enrollments)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ControlWorker]:
        try:
            # Once connected it reconnects for ever; the first connection gets 5 s.
            self.client = await asyncio.wait_for(
                nats.connect(
                    self.bus_url,
                    name=f"lightson-worker-{self.worker_id}",
                    connect_timeout=2,
                    max_reconnect_attempts=-1,
                ),
                5.0,
            )
        except Exception as error:
            why = str(error) or type(error).__name__
            raise BrokerError(f"--bus: cannot reach {self.bus_url}: {why}") from None
        try:
            await self._start_engine()
            leases, workers, lease_s = await open_buckets(self.client.jetstream(), self.lease_s)
            # Each site's status for the API servers, kept as long as a lease (bus.status).
            statuses, _ = await open_status_bucket(self.client.jetstream(), lease_s)
            self.publisher = StatusPublisher(statuses, self.worker_id, lease_s)
            sites = [s.site_id for s in self.program.sites]
            self.leases = Leases(leases, workers, self.worker_id, sites, lease_s)
            sink = BusSink(
                self.client,
                self._site_of.get,
                self.leases.fence,
                self._fenced,
                timeout_s=self.command_timeout_s,
            )
            self.live = LiveControl(
                self.program,
                self.store,
                sink,
                self.clock,
                self._events_for,
                controller=self.controller,
                every=self.every,
                keep_plans=self.keep_plans,
                islanded_hold=self.islanded_hold,
                owned=(),
                engine=self.engine,
            )
            self.live.status_changed.append(self._status_changed)
            tasks = [
                asyncio.create_task(self._hold_leases(), name="lightson-leases"),
                asyncio.create_task(self._control(), name="lightson-control"),
            ]
            try:
                yield self
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.leases.release_all(), 5.0)
        finally:
            with contextlib.suppress(Exception):
                await self.client.close()
            await asyncio.to_thread(self.engine.close)

    async def _start_engine(self) -> None:
        if isinstance(self.engine, RayEngine):
            LOGGER.info("starting Ray (%d CPUs) for the site LPs", self.engine.num_cpus)
            await self.engine.start_async()

    async def _hold_leases(self) -> None:
        while True:
            try:
                changes = await self.leases.tick()
                lost = [*changes.lost, *(s for s in self._subscriptions if not self.live.owns(s))]
                for site_id in lost:
                    await self._lose(site_id)
                for site_id, fence in changes.taken.items():
                    LOGGER.info("%s: lease taken (fence %d)", site_id, fence)
                    await self._subscribe(site_id)
                    self.live.take_over(site_id)
                await self._publish_all()
            except Exception:
                LOGGER.exception("the leases' tick failed; tried again")
            await asyncio.sleep(self.leases.tick_s)

    def _status_changed(self, status: SiteStatus) -> None:
        """A site of ours ticked: its status goes to the API servers now."""
        fence = self.leases.fence(status.site_id)
        if fence is not None:
            task = asyncio.get_running_loop().create_task(
                self.publisher.publish(status, fence, self.live.ticks)
            )
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)

    async def _publish_all(self) -> None:
        """The heartbeat: every held site's last status written again, so the API servers
        know this worker lives between its ticks."""
        for site_id in self.live.owned():
            fence = self.leases.fence(site_id)
            if fence is not None:
                await self.publisher.publish(self.live.status[site_id], fence, self.live.ticks)

    async def _control(self) -> None:
        while True:
            try:
                await self.live.run(self.speed)
            except Exception:
                LOGGER.exception("the control loop failed; it starts again in 5 s")
                await asyncio.sleep(5.0)

    async def _lose(self, site_id: str) -> None:
        LOGGER.warning("%s: lease lost; this worker stops controlling it", site_id)
        self.live.release(site_id)
        subscription = self._subscriptions.pop(site_id, None)
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    def _fenced(self, site_id: str) -> None:
        """A gateway refused this worker's fence: a newer holder has the site."""
        self.leases.drop(site_id)
        self.live.release(site_id)  # its wake-ups stop at the leases' next tick

    async def _subscribe(self, site_id: str) -> None:
        if site_id in self._subscriptions:
            return

        async def woken(message: Any) -> None:
            kind = message.subject.rsplit(".", 1)[1]
            if kind == "grid":  # an API server (or the site meter) stored a grid signal
                await asyncio.to_thread(self.live.reload_grid, site_id)
            self.live.site_event(site_id, kind, _station_of(message.data))

        self._subscriptions[site_id] = await self.client.subscribe(site_wildcard(site_id), cb=woken)

    def owned(self) -> list[str]:
        return self.live.owned()


def _station_of(data: bytes) -> str | None:
    """The station a wake-up names, where its body is JSON with ``station_id``."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        station = json.loads(data or b"null").get("station_id")
        return None if station is None else str(station)
    return None
