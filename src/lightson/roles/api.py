"""The API role (``lightson api``): the HTTP API and the dashboard, with no CSMS and no
control loop, any number of them behind a load balancer.

The routes are those of ``lightson serve`` (``lightson.api``), over the same
``Operations``; only ``ops.live`` differs: a :class:`RemoteLive` that answers from what
the others keep.

- **Site status** comes from the control workers, each writing its sites' status to the
  broker's ``lightson-status`` bucket at each tick and heartbeat (``bus.status``). A site
  with no fresh record has no live controller: a route about that site answers 503
  ``{"errors": [{"field": "site_id", "message": "no controller for site ..."}]}``; a list
  (``/api/sites``, ``/api/program``, ``/api/overview``, ``/api/stations``, ``/metrics``)
  answers 200 with every site, that one marked ``no controller`` with the age of its last
  status and the worker that wrote it. A record shown carries its tick's time
  (``status.at``, and ``age_s`` in a site's detail).
- **Stations connected** are not known here (the gateways hold them): ``/metrics`` leaves
  ``lightson_stations_connected`` out rather than show 0.
- **Islanding** (grid signals) and **plans** are read from PostgreSQL, the system of record:
  the workers store them before they act on them.
- **Writes** the owning worker must act on (an event filed or cancelled, an opt-out, a
  departure, meter readings, a grid signal or released vehicles) are stored in PostgreSQL
  by the route, as in ``serve``, and then announced on ``lightson.site.<site_id>.changed``
  (or ``.grid``), which the worker that holds the site listens to: it re-plans at once.
  An announcement lost (no worker holds the site, the broker away) loses nothing: the
  worker that takes the site reads everything from the database at its first tick.
- **Commands to stations** (the certificate routes) go over the broker to the gateway that
  holds the station (``bus.stations``); none holds it: 409 ``Offline``, as with ``serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn

from lightson.api.app import Operations, create_app
from lightson.api.deps import MIN_SITES_IN_AGGREGATES
from lightson.api.errors import HttpError
from lightson.api.limits import DEFAULT_MAX_BODY_BYTES
from lightson.bus.connection import Bus, connect_bus
from lightson.bus.stations import BusStations
from lightson.bus.status import StatusBoard, StatusRecord, open_status_bucket
from lightson.bus.subjects import SiteEventKind, site_subject
from lightson.config.dr_rules import program_dr_rules
from lightson.control.grid import GridSignal
from lightson.domain.assets import Program
from lightson.domain.plan import Setpoint
from lightson.domain.time import Clock
from lightson.services.live import DEFAULT_EVERY, LiveControl
from lightson.services.live_status import SiteStatus
from lightson.store import Store
from lightson.store import schema as db

LOGGER = logging.getLogger("lightson.api-role")
DEFAULT_STATUS_TTL_S = 15.0  # the lease time of ``lightson worker``: used if no bucket yet
ANNOUNCE_TIMEOUT_S = 2.0


class _NoSink:
    """The API role sends nothing to stations from its loop (it never ticks)."""

    async def send_setpoint(
        self,
        station_id: str,
        evse_id: int,
        setpoint: Setpoint,
        transaction_id: str | None = None,
        *,
        max_offline_s: int | None = None,
    ) -> str:
        raise RuntimeError("an API server sends no setpoint")

    async def clear_profiles(self, station_id: str, evse_id: int | None = None) -> str:
        raise RuntimeError("an API server clears no profile")

    async def install_default(self, station_id: str) -> str:
        raise RuntimeError("an API server installs no default")


def no_controller(site_id: str, last: StatusRecord | None, now_s: float) -> HttpError:
    """503 for a site no live worker reports, saying how old its last report is."""
    seen = (
        "no worker has reported it"
        if last is None
        else f"its last status came {last.age_s(now_s):.0f} s ago from worker {last.worker}"
    )
    return HttpError(
        503,
        f"no controller for site '{site_id}': {seen} (none runs, or the one that held it "
        "stopped and no other has taken it over yet)",
        "site_id",
    )


class _Statuses(dict[str, SiteStatus]):
    """``live.status`` of the API role: the fresh records of the status board. A site
    without one raises :func:`no_controller` (503) when asked for."""

    def __init__(self, board: StatusBoard, sites: Sequence[str]) -> None:
        super().__init__()
        self.board = board
        self.sites = list(sites)

    def _fresh(self) -> dict[str, SiteStatus]:
        fresh = self.board.fresh()
        return {s: fresh[s].status for s in self.sites if s in fresh}

    def __getitem__(self, site_id: str) -> SiteStatus:
        record = self.board.get(site_id)
        if record is None:
            raise no_controller(site_id, self.board.last(site_id), self.board.wall_s())
        return record.status

    def get(self, site_id: str, default: Any = None) -> Any:
        record = self.board.get(site_id)
        return default if record is None else record.status

    def __contains__(self, site_id: object) -> bool:
        return isinstance(site_id, str) and self.board.get(site_id) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._fresh())

    def __len__(self) -> int:
        return len(self._fresh())

    def items(self) -> Any:
        return self._fresh().items()

    def values(self) -> Any:
        return self._fresh().values()

    def keys(self) -> Any:
        return self._fresh().keys()


class RemoteLive(LiveControl):
    """``LiveControl`` as an API server sees it: it controls no site and never ticks; site
    status from the workers' records, grid signals from the database, and each
    ``wake`` announced to the workers on the broker."""

    def __init__(
        self,
        program: Program,
        store: Store,
        clock: Clock,
        board: StatusBoard,
        announce: Callable[[Sequence[str], SiteEventKind], None],
        every: timedelta = DEFAULT_EVERY,
    ) -> None:
        super().__init__(program, store, _NoSink(), clock, every=every, owned=())
        self.board = board
        self.announce = announce  # (site_ids, kind) -> None, from any thread
        self.status = _Statuses(board, [s.site_id for s in program.sites])
        self.started_s = board.wall_s()

    def wake(self, site_id: str | None = None) -> None:
        """Tell the worker that holds the site (``None``: every site) to re-plan now."""
        sites = [s.site_id for s in self.program.sites] if site_id is None else [site_id]
        for one in sites:
            self._site(one)
        self.announce(sites, "changed")

    def report_grid(
        self,
        site_id: str,
        source: str,
        signal: GridSignal,
        at: datetime | None = None,
        released_vehicles: frozenset[str] = frozenset(),
    ) -> None:
        """Store the signal, then tell the worker that holds the site to read it."""
        self._site(site_id)
        row = {
            "site_id": site_id,
            "source": source,
            "signal": signal.value,
            "at": at or self.clock.now(),
            "released_vehicles": sorted(released_vehicles),
        }
        self.store.write([(db.grid_signals, row)]).result(30)  # kept before it counts
        self.announce([site_id], "grid")

    def islanded(self, site_id: str) -> bool:
        self.reload_grid(site_id)
        return super().islanded(site_id)

    def grid_losses(self, site_id: str) -> tuple[frozenset[str], datetime | None]:
        self.reload_grid(site_id)
        return super().grid_losses(site_id)

    def _grid_now(self, live: Any, now: datetime) -> tuple[bool, frozenset[str]]:
        self.reload_grid(live.site.site_id)
        return super()._grid_now(live, now)

    @property
    def ticks(self) -> int:
        """The ticks of the workers that report now, each its own count."""
        by_worker: dict[str, int] = {}
        for record in self.board.fresh().values():
            by_worker[record.worker] = max(by_worker.get(record.worker, 0), record.ticks)
        return sum(by_worker.values())

    @ticks.setter
    def ticks(self, _: int) -> None:
        """``LiveControl`` sets it; this view counts from the records."""

    @property
    def last_tick_at(self) -> datetime | None:
        """The newest tick among the sites' records, fresh or not."""
        return self.board.newest_at()

    @last_tick_at.setter
    def last_tick_at(self, _: datetime | None) -> None:
        """``LiveControl`` sets it; this view reads it from the records."""

    def stalled(self, now: datetime) -> bool:
        """Never: there is no loop here; :meth:`problems` names the sites without one."""
        return False

    def problems(self, now: datetime) -> list[str]:
        """For ``/api/health``: the sites no live worker reports (once one has reported,
        or a lease time after this server started: the heartbeats came by then)."""
        waiting = self.board.wall_s() - self.started_s <= self.board.ttl_s
        if waiting and not self.board.seen():
            return []
        fresh = self.board.fresh()
        missing = [s.site_id for s in self.program.sites if s.site_id not in fresh]
        if not missing:
            return []
        return [f"{len(missing)} site(s) have no controller: {', '.join(missing)}"]

    def last_report(self, site_id: str) -> tuple[float, str] | None:
        """For a site with no fresh record: the age in seconds of its last one and the
        worker that wrote it (``None``: none seen since this server started)."""
        last = self.board.last(site_id)
        return None if last is None else (last.age_s(self.board.wall_s()), last.worker)

    def controllers(self) -> dict[str, str]:
        """The worker that controls each site with a fresh record."""
        return {s: r.worker for s, r in self.board.fresh().items()}


@dataclass
class ApiRole:
    """An API server: the FastAPI app over PostgreSQL and the broker, started and stopped
    with :meth:`running`."""

    program: Program
    store: Store
    clock: Clock
    bus_url: str
    host: str = "127.0.0.1"
    http_port: int = 8000
    every: timedelta = DEFAULT_EVERY  # the workers' --every (for a plan's due time)
    http_tls: tuple[Path, Path] | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    utility_min_sites: int = MIN_SITES_IN_AGGREGATES
    api_docs: bool = False
    name: str = "lightson-api"
    status_ttl_s: float = DEFAULT_STATUS_TTL_S
    _http: uvicorn.Server | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        port = self.http_port
        if self._http is not None and self._http.servers:
            port = self._http.servers[0].sockets[0].getsockname()[1]
        scheme = "https" if self.http_tls is not None else "http"
        return f"{scheme}://{self.host}:{port}"

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ApiRole]:
        """Connect to the broker (none: :class:`BrokerError`, nothing listens), follow the
        status bucket, then serve HTTP; on the way out the reverse."""
        self.bus = bus = await connect_bus(self.bus_url, self.name)
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        try:
            bucket, ttl_s = await open_status_bucket(bus.jetstream, self.status_ttl_s)
            self.board = StatusBoard(ttl_s)
            await self.board.watch(bucket)
            try:
                async with self._serving(bus):
                    yield self
            finally:
                await self.board.stop()
        finally:
            await bus.close()

    @contextlib.asynccontextmanager
    async def _serving(self, bus: Bus) -> AsyncIterator[None]:
        self.live = RemoteLive(
            self.program, self.store, self.clock, self.board, self.announce, self.every
        )
        self.operations = Operations(
            self.program,
            self.store,
            self.clock,
            self.live,
            rules=list(program_dr_rules(self.program).values()),
            problems=self.live.problems,
            last_report=self.live.last_report,
            max_body_bytes=self.max_body_bytes,
            min_sites_in_aggregates=self.utility_min_sites,
            api_docs=self.api_docs,
        )
        self.app = create_app(self.operations)
        self.app.state.stations = BusStations(bus, self._ocpp_version)  # certificate routes
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.http_port,
            log_config=None,
            log_level="warning",
            lifespan="off",
            ssl_certfile=self.http_tls[0] if self.http_tls else None,
            ssl_keyfile=self.http_tls[1] if self.http_tls else None,
        )
        self._http = server = uvicorn.Server(config)
        listening = listening_socket(self.host, self.http_port)
        http = asyncio.create_task(server.serve([listening]), name="lightson-http")
        try:
            while not server.started:
                if http.done():
                    http.result()  # the port is taken, say: raise it here
                    raise RuntimeError("the HTTP server stopped at start")
                await asyncio.sleep(0.02)
            yield
        finally:
            server.should_exit = True
            await asyncio.gather(http, return_exceptions=True)

    def _ocpp_version(self, station_id: str) -> str | None:
        record = self.store.station(station_id)
        return record.ocpp_version if record is not None else None

    def announce(self, sites: Sequence[str], kind: SiteEventKind) -> None:
        """Wake the workers that hold ``sites`` (what changed is already stored). From the
        event loop or any thread; a failure is logged, never raised: the write stands and
        each worker reads it at its next tick."""
        body = json.dumps({"by": self.name}).encode()

        async def publish() -> None:
            for site_id in sites:
                await self.bus.client.publish(site_subject(site_id, kind), body)

        if threading.get_ident() == self._loop_thread:
            task = self.loop.create_task(publish())
            task.add_done_callback(_log_failure)
            return
        try:
            asyncio.run_coroutine_threadsafe(publish(), self.loop).result(ANNOUNCE_TIMEOUT_S)
        except Exception as error:
            LOGGER.warning("%s: the workers were not told of a change: %s", kind, error)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        LOGGER.warning("the workers were not told of a change: %s", task.exception())


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening, non-blocking socket (a port in use: ``OSError`` naming --port)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listening = socket.socket(family, kind, proto)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind(address)
    except OSError as error:
        listening.close()
        raise OSError(
            error.errno, f"cannot listen on {host}:{port} (--port): {error.strerror}"
        ) from None
    listening.listen(2048)
    listening.setblocking(False)
    return listening


__all__ = ["ApiRole", "RemoteLive", "listening_socket", "no_controller"]
