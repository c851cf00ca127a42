"""``lightson serve`` and ``lightson token``: the operations server in one process.

The CSMS (OCPP on WebSocket), the live control loop and the HTTP API with the dashboard share
one event loop, one database and one clock. ``OperationsServer`` is the wiring, also used by
``lightson demo`` and the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import click
import uvicorn

from lightson.api.app import Operations, create_app
from lightson.cli.app import friendly_errors, main
from lightson.config import load_program
from lightson.csms.collector import scheduled_full_collections
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.domain.assets import Program, Site
from lightson.domain.demand_response import DREvent
from lightson.domain.telemetry import ChargingNeeds
from lightson.domain.time import Clock
from lightson.services.access import AccessService
from lightson.services.events import EventService
from lightson.services.live import LiveControl
from lightson.store import Store, default_url

LOGGER = logging.getLogger("lightson.serve")


@dataclass
class OperationsServer:
    """Everything ``lightson serve`` runs, started and stopped together."""

    program: Program
    store: Store
    clock: Clock
    host: str = "127.0.0.1"
    http_port: int = 8000
    csms_settings: CsmsSettings = field(default_factory=CsmsSettings)
    every: timedelta = timedelta(minutes=5)
    speed: float = 1.0
    controller: str = "v2x-mpc"
    keep_plans: timedelta | None = None

    def __post_init__(self) -> None:
        self.csms = CsmsServer(self.store, self.clock, self.csms_settings)
        self.live = LiveControl(
            self.program,
            self.store,
            self.csms,
            self.clock,
            self._events_for,
            controller=self.controller,
            every=self.every,
            keep_plans=self.keep_plans,
        )
        self._site_of_station = {
            c.evse_id: s.site_id for s in self.program.sites for c in s.chargers
        }
        self.csms.telemetry.needs.append(self._on_needs)
        self.operations = Operations(
            self.program,
            self.store,
            self.clock,
            self.live,
            connected_stations=lambda: len(self.csms.sessions),
        )
        self.app = create_app(self.operations)
        self._http: uvicorn.Server | None = None

    def _events_for(self, site: Site) -> Sequence[DREvent]:
        book = EventService(self.store, self.clock).book()
        return book.for_site(site.site_id, site.enrollments)

    def _on_needs(self, needs: ChargingNeeds) -> None:
        """A vehicle said what it needs (it just plugged in, mostly): re-plan its site now."""
        site_id = self._site_of_station.get(needs.station_id)
        if site_id is not None:
            self.live.wake(site_id)

    @property
    def url(self) -> str:
        port = self.http_port
        if self._http is not None and self._http.servers:
            port = self._http.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}"

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[OperationsServer]:
        # log_config=None: uvicorn's own dictConfig would close the handlers already set up
        # (a FileHandler opened with mode "w" then drops every record).
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.http_port,
            log_config=None,
            log_level="warning",
            lifespan="off",
        )
        self._http = uvicorn.Server(config)
        async with self.csms:
            http = asyncio.create_task(self._http.serve(), name="lightson-http")
            loop = asyncio.create_task(self._control(), name="lightson-control")
            try:
                while not self._http.started:
                    if http.done():
                        http.result()  # the port is taken, say: raise it here
                        raise RuntimeError("the HTTP server stopped at start")
                    await asyncio.sleep(0.02)
                yield self
            finally:
                loop.cancel()
                self._http.should_exit = True
                await asyncio.gather(loop, http, return_exceptions=True)
                await self._leave_chargers_safe()

    async def _control(self) -> None:
        """The control loop, started again if it ever fails (a site's own failure is handled
        inside it; this is for the unforeseen)."""
        while True:
            try:
                await self.live.run(self.speed)
            except Exception:
                LOGGER.exception("the control loop failed; it starts again in 5 s")
                await asyncio.sleep(5.0)

    async def _leave_chargers_safe(self, timeout_s: float = 5.0) -> None:
        """On the way out, clear our setpoint profiles: every connected charger is left to
        its charge-only default rather than to a plan nobody will update. Not at an islanded
        site: the default would charge from the island, while the setpoints it holds keep
        the building up until they expire."""
        islanded = {
            c.evse_id
            for s in self.program.sites
            if self.live.islanded(s.site_id)
            for c in s.chargers
        }
        stations = [s for s in self.csms.sessions if s not in islanded]
        if not stations:
            return
        clears = [self.csms.clear_profiles(station) for station in stations]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*clears, return_exceptions=True)


@main.command()
@click.option(
    "--program",
    "program_ref",
    default="example",
    show_default=True,
    help="Program file, or a bundled program ('example', 'ma-2026').",
)
@click.option("--db", default=default_url(), show_default=True, help="Database URL.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="HTTP port of the API and dashboard.",
)
@click.option(
    "--csms-port",
    default=9000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="WebSocket port for the chargers (OCPP).",
)
@click.option(
    "--every",
    default=300,
    show_default=True,
    type=click.IntRange(10, 3600),
    help="Seconds between re-plans of every site, on multiples of it (a site also re-plans "
    "at once on a plug-in, an event or an outage). A setpoint holds for two of them.",
)
@click.option(
    "--controller",
    default="v2x-mpc",
    show_default=True,
    type=click.Choice(["unmanaged", "smart-charge", "v2x-mpc"]),
)
@click.option(
    "--keep-plans-days",
    type=click.IntRange(1, 3660),
    default=None,
    help="Delete the stored plans older than this many days, once an hour (a plan is about "
    "4 KB: some 1 GB a season for ma-2026); default: keep every plan.",
)
@click.option(
    "--offline-close-after",
    default=900,
    show_default=True,
    type=click.IntRange(60, 86400),
    help="Seconds a station may stay disconnected before its open transactions are closed "
    "(its vehicle then no longer counts as plugged); docs/csms.md.",
)
@friendly_errors
def serve(
    program_ref: str,
    db: str,
    host: str,
    port: int,
    csms_port: int,
    every: int,
    controller: str,
    keep_plans_days: int | None,
    offline_close_after: int,
) -> None:
    """Run the operations server until Ctrl-C or SIGTERM: the CSMS, the control loop and the
    HTTP API with the dashboard, on one database. On the way out every connected charger's
    setpoint profiles are cleared (its charge-only default applies)."""
    from lightson.csms.clock import AcceleratedClock

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    program = load_program(program_ref)
    store = Store(db)
    server = OperationsServer(
        program,
        store,
        AcceleratedClock(),
        host=host,
        http_port=port,
        csms_settings=CsmsSettings(
            host=host, port=csms_port, offline_close_after_s=offline_close_after
        ),
        every=timedelta(seconds=every),
        controller=controller,
        keep_plans=timedelta(days=keep_plans_days) if keep_plans_days else None,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):  # a service manager stops with SIGTERM
            loop.add_signal_handler(number, stop.set)
        async with scheduled_full_collections(300.0), server.running() as running:
            click.echo(f"dashboard and API: {running.url}/  (tokens: lightson token add)")
            click.echo(f"chargers: {running.csms.url}/<station id>   Ctrl-C stops")
            await stop.wait()
        click.echo("stopped; the chargers are on their charge-only defaults")

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
    finally:
        store.close()


@main.group()
def token() -> None:
    """API tokens for program staff, site owners and utilities."""


@token.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "owner", "utility"]), required=True)
@click.option("--site", "sites", multiple=True, help="An owner's site (repeat for several).")
@click.option("--utility", default=None, help="A utility's name as in the program file.")
@click.option("--db", default=default_url(), show_default=True, help="Database URL.")
@friendly_errors
def token_add(name: str, role: str, sites: tuple[str, ...], utility: str | None, db: str) -> None:
    """Issue a token for NAME and print it (it is shown only this once)."""
    from lightson.csms.clock import AcceleratedClock

    store = Store(db)
    try:
        click.echo(AccessService(store, AcceleratedClock()).issue(name, role, sites, utility))
    finally:
        store.close()


@token.command("revoke")
@click.argument("name")
@click.option("--db", default=default_url(), show_default=True, help="Database URL.")
@friendly_errors
def token_revoke(name: str, db: str) -> None:
    """Revoke NAME's token."""
    from lightson.csms.clock import AcceleratedClock

    store = Store(db)
    try:
        AccessService(store, AcceleratedClock()).revoke(name)
        click.echo(f"revoked {name}")
    finally:
        store.close()
