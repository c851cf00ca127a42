"""``lightson serve`` and ``lightson token``: the operations server in one process.

The CSMS (OCPP on WebSocket), the live control loop and the HTTP API with the dashboard share
one event loop, one database and one clock. ``OperationsServer`` is the wiring, also used by
``lightson demo`` and the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import click
import uvicorn

from lightson.api.app import MIN_SITES_IN_AGGREGATES, Operations, create_app
from lightson.api.limits import DEFAULT_MAX_BODY_BYTES
from lightson.cli.app import (
    friendly_errors,
    log_frames,
    main,
    offline_close_option,
    program_argument,
)
from lightson.cli.certificates import CsmsCertificates
from lightson.cli.tls import station_ca, tls_context, tls_options
from lightson.config import load_program
from lightson.config.dr_rules import program_dr_rules
from lightson.config.loader import openadr_section, station_ca_section
from lightson.csms.collector import scheduled_full_collections
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.domain.assets import Program, Site
from lightson.domain.demand_response import DREvent
from lightson.domain.errors import ConfigError
from lightson.domain.time import Clock
from lightson.dr.openadr import Backoff, OpenAdrVen, VenSettings, territory
from lightson.forecast.availability import DEFAULT_MIN_SESSIONS
from lightson.programs.events import ProgramEvent
from lightson.services.access import AccessService
from lightson.services.events import EventService
from lightson.services.forecasts import SiteForecasts
from lightson.services.live import DEFAULT_ISLANDED_HOLD, LiveControl
from lightson.store import Store, default_url

LOGGER = logging.getLogger("lightson.serve")


class ShutdownReport(NamedTuple):
    """What ``lightson serve`` left the chargers on as it stopped."""

    cleared: int  # chargers whose setpoint profiles were cleared (charge-only default)
    answered: int  # of those, how many answered before the connections closed
    islanded_kept: int  # chargers of islanded sites left on their islanded setpoints


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
    forecast_min_days: float | None = None  # None: the profile; else docs/simulation.md
    islanded_hold: timedelta = DEFAULT_ISLANDED_HOLD
    availability_min_sessions: int | None = DEFAULT_MIN_SESSIONS  # None: the schedule always
    month_peak: str = "expected"  # how the controllers value the month's peak (#16)
    http_tls: tuple[Path, Path] | None = None  # (certificate, key): the API over https
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # a larger request body: 413, unread
    utility_min_sites: int = MIN_SITES_IN_AGGREGATES  # a utility's power figures cover as many
    api_docs: bool = False  # /api/docs (Swagger UI loads its script from a CDN)
    openadr: VenSettings | None = None  # the utility's VTN this server's VEN registers with
    openadr_backoff: Backoff = field(default_factory=Backoff)
    openadr_rng: random.Random = field(default_factory=random.Random)  # the backoff's jitter

    def __post_init__(self) -> None:
        # The program file's own DR programs (no rule file) take events too (all year).
        self.rules = list(program_dr_rules(self.program).values())
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
            islanded_hold=self.islanded_hold,
            availability_min_sessions=self.availability_min_sessions,
            month_peak=self.month_peak,
            forecasts=None
            if self.forecast_min_days is None
            else SiteForecasts(self.program, self.store, self.forecast_min_days),
        )
        # A vehicle said what it needs (it just plugged in, mostly): re-plan its site now.
        self.csms.telemetry.needs.append(lambda needs: self.live.wake_station(needs.station_id))
        self.csms.telemetry.connected.append(self.live.station_connected)
        self.csms.telemetry.meter.append(self.live.reading_arrived)
        self.csms.islanded_station = self.live.station_islanded
        self.operations = Operations(
            self.program,
            self.store,
            self.clock,
            self.live,
            rules=self.rules,
            connected_stations=lambda: len(self.csms.sessions),
            max_body_bytes=self.max_body_bytes,
            dr_status=self._dr_status,
            min_sites_in_aggregates=self.utility_min_sites,
            api_docs=self.api_docs,
        )
        self.ven = self._ven()
        self.app = create_app(self.operations)
        self.app.state.stations = CsmsCertificates(self.csms)  # the certificate routes
        self._http: uvicorn.Server | None = None
        self.shutdown: ShutdownReport | None = None  # set as ``running`` ends

    def _events_for(self, site: Site) -> Sequence[DREvent]:
        book = EventService(self.store, self.clock, self.rules).book()
        return book.for_site(site.site_id, site.enrollments)

    def _ven(self) -> OpenAdrVen | None:
        """The OpenADR VEN, when a VTN is configured: it takes events for the sites of the
        VTN's utility only, and each accepted event re-plans the sites it calls at once."""
        if self.openadr is None:
            return None
        utility, sites = territory(self.program, self.openadr.utility)
        return OpenAdrVen(
            EventService(self.store, self.clock, self.rules),
            self.openadr,
            self.clock,
            sites,
            self._on_dr_event,
            utility=utility,
            backoff=self.openadr_backoff,
            rng=self.openadr_rng,
        )

    def _on_dr_event(self, event: ProgramEvent) -> None:
        for site_id in event.sites or [s.site_id for s in self.program.sites]:
            self.live.wake(site_id)

    def _dr_status(self) -> dict[str, Any]:
        """The VEN's state for ``/api/health`` (``disabled`` without a VTN)."""
        if self.ven is None:
            return {"state": "disabled"}
        return self.ven.status.document()

    @property
    def url(self) -> str:
        port = self.http_port
        if self._http is not None and self._http.servers:
            port = self._http.servers[0].sockets[0].getsockname()[1]
        scheme = "https" if self.http_tls is not None else "http"
        return f"{scheme}://{self.host}:{port}"

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
            ssl_certfile=self.http_tls[0] if self.http_tls else None,
            ssl_keyfile=self.http_tls[1] if self.http_tls else None,
        )
        self._http = uvicorn.Server(config)
        async with self.csms:
            # Bound here, not by uvicorn: a port in use is then an OSError the command
            # reports in one line (uvicorn would log it and exit the process).
            listening = _listening_socket(self.host, self.http_port)
            http = asyncio.create_task(self._http.serve([listening]), name="lightson-http")
            loop = asyncio.create_task(self._control(), name="lightson-control")
            if self.ven is not None:
                await self.ven.start()  # registers in the background, retrying
            try:
                while not self._http.started:
                    if http.done():
                        http.result()  # the port is taken, say: raise it here
                        raise RuntimeError("the HTTP server stopped at start")
                    await asyncio.sleep(0.02)
                yield self
            finally:
                if self.ven is not None:
                    await self.ven.stop()
                loop.cancel()
                self._http.should_exit = True
                await asyncio.gather(loop, http, return_exceptions=True)
                self.shutdown = await self._leave_chargers_safe()

    async def _control(self) -> None:
        """The control loop, started again if it ever fails (a site's own failure is handled
        inside it; this is for the unforeseen)."""
        while True:
            try:
                await self.live.run(self.speed)
            except Exception:
                LOGGER.exception("the control loop failed; it starts again in 5 s")
                await asyncio.sleep(5.0)

    async def _leave_chargers_safe(self, timeout_s: float = 5.0) -> ShutdownReport:
        """On the way out, clear our setpoint profiles: every connected charger is left to
        its charge-only default rather than to a plan nobody will update, and each answer is
        waited for (at most ``timeout_s`` in all) before the connections close. Not at an
        islanded site: there each charger holds its islanded setpoint (``islanded_hold``)
        over a 0 W default, which keeps the building up and never charges from the island
        while we are gone."""
        islanded = {
            c.evse_id
            for s in self.program.sites
            if self.live.islanded(s.site_id)
            for c in s.chargers
        }
        stations = [s for s in self.csms.sessions if s not in islanded]
        kept = sum(1 for s in self.csms.sessions if s in islanded)
        tasks = [asyncio.ensure_future(self.csms.clear_profiles(s)) for s in stations]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        answered = 0
        for task in tasks:
            if not task.done():
                task.cancel()
            elif task.exception() is None:
                answered += 1
        report = ShutdownReport(len(stations), answered, kept)
        LOGGER.info(
            "on the way out: %d chargers cleared (%d answered), %d islanded kept theirs",
            *report,
        )
        return report


def _listening_socket(host: str, port: int) -> socket.socket:
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


@main.command()
@program_argument("program_ref", "example")
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
    "--forecast-min-days",
    type=click.FloatRange(0),
    default=None,
    help="Forecast each site's load with its best-scored forecaster (profile, recent-days, "
    "learned) once its meter has this many days of history; default: the profile always.",
)
@click.option(
    "--keep-plans-days",
    type=click.IntRange(1, 3660),
    default=None,
    help="Delete the stored plans older than this many days, once an hour (a plan is about "
    "4 KB: some 1 GB a season for ma-2026); default: keep every plan.",
)
@click.option(
    "--islanded-hold-min",
    default=int(DEFAULT_ISLANDED_HOLD.total_seconds() // 60),
    show_default=True,
    type=click.IntRange(5, 24 * 60),
    help="Minutes an islanded site's setpoints hold, also with this server gone (OCPP 2.1 "
    "maxOfflineDuration): long enough for a restart. Under them every charger of the site "
    "holds a 0 W default, so none charges from the island.",
)
@click.option(
    "--start",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]),
    default=None,
    hidden=True,
    help="Drills and tests: the program's clock starts here (with an offset)...",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=1.0),
    default=1.0,
    hidden=True,
    help="...and runs this many times faster than the wall...",
)
@click.option(
    "--clock-origin",
    type=float,
    default=None,
    hidden=True,
    help="...counted from this CLOCK_MONOTONIC reading (another process shares the clock).",
)
@offline_close_option
@click.option(
    "--max-body-kb",
    default=DEFAULT_MAX_BODY_BYTES // 1024,
    show_default=True,
    type=click.IntRange(1, 1024 * 1024),
    help="Largest API request body, KiB: a larger one is refused (413) before it is read or "
    "its token checked.",
)
@click.option(
    "--log-frames",
    "frames",
    is_flag=True,
    help="Log every OCPP frame at INFO (by default they are DEBUG: a fleet sends millions).",
)
@click.option(
    "--openadr-vtn",
    default=None,
    metavar="URL",
    help="The utility's OpenADR 2.0b VTN (e.g. https://vtn.example/OpenADR2/Simple/2.0b): "
    "the server's VEN registers with it (retrying with backoff while it does not answer) "
    "and files its events (docs/demand-response.md).",
)
@click.option("--openadr-ven-name", default=None, help="The VEN's name (default: lightson).")
@click.option(
    "--openadr-utility",
    default=None,
    help="The utility the VTN speaks for (as in the program file): its events may call only "
    "that utility's sites. Default: the program's only utility.",
)
@click.option(
    "--openadr-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The VEN's client certificate (PEM); also signs its messages.",
)
@click.option(
    "--openadr-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The key of --openadr-cert (PEM).",
)
@click.option(
    "--openadr-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The CA the VTN's certificate must chain to (default: the system's).",
)
@click.option(
    "--utility-min-sites",
    default=MIN_SITES_IN_AGGREGATES,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="A utility sees power figures only over at least this many sites (fewer: none), so "
    "no one customer's power shows through.",
)
@click.option(
    "--learn-availability-after",
    "learn_after",
    default=DEFAULT_MIN_SESSIONS,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="Plan a vehicle on the trips learned from its charger's sessions of the last 8 "
    "weeks once it has this many (0: always the program file's schedule); "
    "docs/simulation.md.",
)
@click.option(
    "--month-peak",
    type=click.Choice(["expected", "so-far"]),
    default="expected",
    show_default=True,
    help="How the controller values the billing month's demand peak: 'expected' plans "
    "on the peak the month is expected to reach anyway (below it import costs no demand "
    "charge), 'so-far' on the peak reached so far (docs/simulation.md, early-month events).",
)
@click.option(
    "--api-docs",
    is_flag=True,
    help="Serve the interactive API docs at /api/docs (their script comes from a CDN, so "
    "they are off by default; /api/openapi.json is always served).",
)
@tls_options
@friendly_errors
def serve(
    program_ref: str,
    db: str,
    host: str,
    port: int,
    csms_port: int,
    every: int,
    controller: str,
    forecast_min_days: float | None,
    keep_plans_days: int | None,
    islanded_hold_min: int,
    start: datetime | None,
    speed: float,
    clock_origin: float | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    station_ca_cert: Path | None,
    station_ca_key: Path | None,
    tls_client_ca: Path | None,
    offline_close_after: int,
    max_body_kb: int,
    frames: bool,
    utility_min_sites: int,
    learn_after: int,
    month_peak: str,
    api_docs: bool,
    openadr_vtn: str | None,
    openadr_ven_name: str | None,
    openadr_utility: str | None,
    openadr_cert: Path | None,
    openadr_key: Path | None,
    openadr_ca: Path | None,
) -> None:
    """Run the operations server until Ctrl-C or SIGTERM: the CSMS, the control loop and the
    HTTP API with the dashboard, on one database. On the way out every connected charger's
    setpoint profiles are cleared (its charge-only default applies), except at an islanded
    site, whose chargers keep their islanded setpoints over a 0 W default. A restarted
    server takes up islanded sites, released route reserves and departures from the
    database before its first tick."""
    from lightson.csms.clock import AcceleratedClock

    tls = tls_context(tls_cert, tls_key, tls_client_ca)
    openadr = openadr_settings(
        program_ref,
        vtn=openadr_vtn,
        ven_name=openadr_ven_name,
        utility=openadr_utility,
        cert=openadr_cert,
        key=openadr_key,
        ca=openadr_ca,
    )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log_frames(enabled=frames)
    program = load_program(program_ref)
    signer = station_ca(*_station_ca_files(program_ref, station_ca_cert, station_ca_key))
    store = Store(db)
    server = OperationsServer(
        program,
        store,
        AcceleratedClock(start, speed, origin=clock_origin),
        host=host,
        http_port=port,
        csms_settings=CsmsSettings(
            host=host,
            port=csms_port,
            offline_close_after_s=offline_close_after,
            tls=tls,
            station_ca=signer,
        ),
        every=timedelta(seconds=every),
        controller=controller,
        keep_plans=timedelta(days=keep_plans_days) if keep_plans_days else None,
        forecast_min_days=forecast_min_days,
        islanded_hold=timedelta(minutes=islanded_hold_min),
        availability_min_sessions=learn_after or None,
        month_peak=month_peak,
        speed=speed,
        http_tls=(tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None,
        max_body_bytes=max_body_kb * 1024,
        utility_min_sites=utility_min_sites,
        api_docs=api_docs,
        openadr=openadr,
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
        done = server.shutdown
        if done is not None:
            click.echo(
                f"stopped; {done.cleared} chargers left on their charge-only defaults "
                f"({done.answered} answered), {done.islanded_kept} at islanded sites on "
                "their islanded setpoints"
            )

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
    finally:
        store.close()


def _station_ca_files(
    program_ref: str, cert: Path | None, key: Path | None
) -> tuple[Path | None, Path | None]:
    """The CA that signs stations' CSRs: each ``--station-ca-*`` option given, else the
    program file's ``station_ca`` key."""
    section = station_ca_section(program_ref) if cert is None or key is None else None
    if section is None:
        return cert, key
    return cert or section[0], key or section[1]


def openadr_settings(
    program_ref: str,
    *,
    vtn: str | None = None,
    ven_name: str | None = None,
    utility: str | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    ca: Path | None = None,
) -> VenSettings | None:
    """The VEN's settings: each ``--openadr-*`` option given, else the program file's
    ``openadr`` key; ``None`` when neither names a VTN."""
    section = openadr_section(program_ref)

    def pick(given: Any, name: str) -> Any:
        return given if given is not None else getattr(section, name, None)

    url = pick(vtn, "vtn_url")
    files = [pick(cert, "cert"), pick(key, "key"), pick(ca, "ca")]
    if url is None:
        if utility or ven_name or any(files):
            raise ConfigError.at("--openadr-vtn", "is needed by the other --openadr- options")
        return None
    cert_file, key_file, ca_file = (None if f is None else Path(f) for f in files)
    return VenSettings(
        url,
        pick(ven_name, "ven_name") or "lightson",
        pick(utility, "utility"),
        cert_file,
        key_file,
        ca_file,
        market_contexts=dict(section.market_contexts) if section is not None else {},
    )


@main.group()
def token() -> None:
    """API tokens for program staff, site owners and utilities."""


@token.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "owner", "utility"]), required=True)
@click.option("--site", "sites", multiple=True, help="An owner's site (repeat for several).")
@click.option("--utility", default=None, help="A utility's name as in the program file.")
@program_argument("program_ref", "example")
@click.option("--db", default=default_url(), show_default=True, help="Database URL.")
@friendly_errors
def token_add(
    name: str,
    role: str,
    sites: tuple[str, ...],
    utility: str | None,
    program_ref: str,
    db: str,
) -> None:
    """Issue a token for NAME and print it (it is shown only this once). Its sites and its
    utility must be the program's: a misspelt one would give a token that sees nothing."""
    from lightson.csms.clock import AcceleratedClock

    program = load_program(program_ref)
    unknown = sorted(set(sites) - {s.site_id for s in program.sites})
    if unknown:
        known = ", ".join(s.site_id for s in program.sites)
        raise click.BadParameter(
            f"not sites of {program.name}: {unknown} (its sites: {known})", param_hint="--site"
        )
    utilities = sorted({s.utility for s in program.sites})
    if utility is not None and utility not in utilities:
        raise click.BadParameter(
            f"'{utility}' serves no site of {program.name} (its utilities: {', '.join(utilities)})",
            param_hint="--utility",
        )
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
