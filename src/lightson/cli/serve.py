"""``lightson serve`` and ``lightson token``: the operations server in one process.

The CSMS (OCPP on WebSocket), the live control loop and the HTTP API with the dashboard share
one event loop, one database and one clock. ``OperationsServer`` is the wiring, also used by
``lightson demo`` and the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        config = uvicorn.Config(
            self.app, host=self.host, port=self.http_port, log_level="warning", lifespan="off"
        )
        self._http = uvicorn.Server(config)
        async with self.csms:
            http = asyncio.create_task(self._http.serve(), name="lightson-http")
            loop = asyncio.create_task(self.live.run(self.speed), name="lightson-control")
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
    help="Seconds between re-plans of every site (more often when woken).",
)
@click.option(
    "--controller",
    default="v2x-mpc",
    show_default=True,
    type=click.Choice(["unmanaged", "smart-charge", "v2x-mpc"]),
)
@friendly_errors
def serve(
    program_ref: str, db: str, host: str, port: int, csms_port: int, every: int, controller: str
) -> None:
    """Run the operations server until Ctrl-C: the CSMS, the control loop and the HTTP API
    with the dashboard, on one database."""
    from lightson.csms.clock import AcceleratedClock

    program = load_program(program_ref)
    store = Store(db)
    server = OperationsServer(
        program,
        store,
        AcceleratedClock(),
        host=host,
        http_port=port,
        csms_settings=CsmsSettings(host=host, port=csms_port),
        every=timedelta(seconds=every),
        controller=controller,
    )

    async def run() -> None:
        async with scheduled_full_collections(300.0), server.running() as running:
            click.echo(f"dashboard and API: {running.url}/  (tokens: lightson token add)")
            click.echo(f"chargers: {running.csms.url}/<station id>   Ctrl-C stops")
            await asyncio.Event().wait()

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
