"""``lightson demo``: the whole platform live on this machine, on an accelerated clock.

The operations server (CSMS, control loop, API and dashboard) runs on a fresh SQLite file,
and every charger of the ``ma-2026`` program is an emulated OCPP station on loopback with
its vehicle, which leaves and comes back as its trips say. The utility announced a
ConnectedSolutions event for 15:00-18:00 the evening before; a storm takes one school
depot's feeder down from 19:00 to 23:00. One simulated hour passes every 10 seconds; the
clock stops while the fleet sends its readings and while a control pass that fell behind
finishes, so on a slow machine the day runs slower but the story is the same.

``--distributed`` tells the same story on the distributed platform instead
(``cli/demo_distributed.py``): PostgreSQL, NATS, two gateways and two control workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import click

from lightson.cli.app import friendly_errors, main
from lightson.cli.serve import OperationsServer
from lightson.config import load_program
from lightson.control.grid import GridSignal
from lightson.csms.auth import hash_password
from lightson.csms.clock import AcceleratedClock
from lightson.csms.collector import scheduled_full_collections
from lightson.csms.server import CsmsSettings
from lightson.csms.translate import Dialect
from lightson.csms.wire import OcppVersion
from lightson.domain.assets import Program, Site, SiteKind, Vehicle
from lightson.domain.errors import ConfigError
from lightson.domain.time import TimeGrid
from lightson.emulator import EmulatedEv, EmulatedStation, Evse
from lightson.physics.trips import TripSchedule, trip_schedule
from lightson.services.access import AccessService
from lightson.services.events import EventService
from lightson.services.live import LiveControl
from lightson.services.live_status import SiteStatus
from lightson.store import StationRecord, Store

DAY = "2026-07-15"  # a hot July weekday: summer break, so buses are at the depot
START_LOCAL = "12:00"
EVENT_LOCAL = ("15:00", "18:00")
OUTAGE_LOCAL = ("19:00", "23:00")
METER_EVERY = timedelta(minutes=5)
STEP = timedelta(minutes=15)
# A pass over every site may take this share of a control period before the clock waits for
# it; the clock is checked this often (wall-clock seconds).
PASS_SHARE = 2 / 3
PACE_POLL_S = 0.02


@dataclass
class _Car:
    """One emulated station and its vehicle, moved by the vehicle's trip schedule."""

    vehicle: Vehicle
    station: EmulatedStation
    schedule: TripSchedule
    ev: EmulatedEv
    plugged: bool = False
    step: int = -1  # the last step of the schedule applied


@dataclass
class _Waits:
    """How often and how long the clock waited for the control loop."""

    passes: int = 0
    seconds: float = 0.0  # wall-clock


@dataclass
class _Tally:
    """What the emulated chargers metered (not what was planned)."""

    event_kwh: float = 0.0  # discharged by the vehicles that discharged
    event_net_kwh: float = 0.0  # less what the others charged meanwhile
    event_hours: float = 0.0
    event_stations: set[str] = field(default_factory=set)
    islanded_hours: float = 0.0
    islanded_kwh: float = 0.0  # the school's buses to its building
    peak_discharge_kw: float = 0.0
    lines: list[str] = field(default_factory=list)
    waits: _Waits | None = None  # the clock's waits for the control loop
    # The gateway each discharging station was connected to (a station that moved counts
    # at both): told when there are several.
    event_by_gateway: dict[str, set[str]] = field(default_factory=dict)


class StoryControl(Protocol):
    """What the story asks of the platform's control: the school's grid signal as its meter
    reports it, and what to say in the hourly notes."""

    async def report_grid(self, site_id: str, signal: GridSignal, at: datetime) -> None: ...

    def islanded(self, site_id: str) -> bool: ...

    def status(self, site_id: str) -> SiteStatus | None:
        """The site's last tick (``None``: not visible from here)."""

    def notes(self) -> list[str]:
        """What else the hour's line says (sites on their safe default, a gateway gone)."""


class _InProcess:
    """The single-process story: the operations server's own control loop."""

    def __init__(self, live: LiveControl) -> None:
        self.live = live

    async def report_grid(self, site_id: str, signal: GridSignal, at: datetime) -> None:
        # report_grid waits for the database: off the event loop, which serves the chargers.
        await asyncio.to_thread(self.live.report_grid, site_id, "meter", signal, at)

    def islanded(self, site_id: str) -> bool:
        return self.live.islanded(site_id)

    def status(self, site_id: str) -> SiteStatus | None:
        return self.live.status[site_id]

    def notes(self) -> list[str]:
        fallback = [s for s, st in self.live.status.items() if st.mode == "fallback"]
        return [f"{len(fallback)} site(s) on the safe default"] if fallback else []


def _dialect(version: OcppVersion, bidirectional: bool) -> Dialect:
    if not bidirectional:
        return Dialect.CHARGE_ONLY
    return Dialect.CENTRAL_SETPOINT if version is OcppVersion.V21 else Dialect.NEGATIVE_LIMIT


def _local(program: Program, day: str, hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=program.timezone)


@main.command()
@click.option(
    "--hours",
    default=12.0,
    show_default=True,
    type=click.FloatRange(1, 72),
    help="Simulated hours to run (from 12:00 on 2026-07-15).",
)
@click.option(
    "--speed",
    default=360.0,
    show_default=True,
    type=click.FloatRange(10, 3600),
    help="Simulated seconds per real second (360: an hour every 10 s); slower when this "
    "machine cannot plan every site in time.",
)
@click.option(
    "--keep-open",
    is_flag=True,
    help="Keep the server and dashboard running after the last hour, until Ctrl-C, with "
    "the clock stopped there.",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="HTTP port of the dashboard and API.",
)
@click.option(
    "--csms-port",
    default=9000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="WebSocket port the emulated chargers connect to.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for the demo's database (a fresh one each run) and logs.",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="The same story on the distributed platform: a throwaway PostgreSQL and NATS "
    "server, two gateway and two control-worker processes on loopback, the fleet spread "
    "over both gateways (needs Debian's postgresql and nats-server; no dashboard).",
)
@friendly_errors
def demo(
    hours: float,
    speed: float,
    keep_open: bool,
    port: int,
    csms_port: int,
    out: Path,
    distributed: bool,
) -> None:
    """Run the platform live: the ma-2026 program's chargers as emulated OCPP stations, a
    ConnectedSolutions event and a school outage, with the dashboard. Ctrl-C stops."""
    if distributed:
        if keep_open:
            raise ConfigError.at(
                "--keep-open", "not with --distributed yet: it has no API role to keep open"
            )
        from lightson.cli.demo_distributed import run_distributed

        run_distributed(hours, speed, out)
        return
    program = load_program("ma-2026")
    out.mkdir(parents=True, exist_ok=True)
    db_path = out / "lightson-demo.db"
    for old in out.glob("lightson-demo.db*"):
        old.unlink()
    log = out / "lightson-demo.log"  # the servers' own messages, not mixed into the story
    logging.basicConfig(
        filename=log,
        filemode="w",
        level=logging.INFO,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The ocpp package logs every frame the 100 emulated stations send (10 MB a run), and
    # websockets every connection: their warnings are what the log is for.
    for noisy in ("ocpp", "websockets.server", "websockets.client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    start = _local(program, DAY, START_LOCAL)
    clock = AcceleratedClock(start, speed, paused=True)  # until the fleet is connected
    store = Store(f"sqlite:///{db_path}")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(program, store, clock, hours, keep_open, port, csms_port))
    finally:
        store.close()


async def _run(
    program: Program,
    store: Store,
    clock: AcceleratedClock,
    hours: float,
    keep_open: bool,
    port: int,
    csms_port: int,
) -> None:
    password = secrets.token_urlsafe(18)  # 24 characters: OCPP asks for 16-40
    register_stations(program, store, password)
    token = AccessService(store, clock).issue("demo-admin", "admin")
    school = next(s for s in program.sites if s.kind is SiteKind.SCHOOL)
    server = OperationsServer(
        program,
        store,
        clock,
        http_port=port,
        csms_settings=CsmsSettings(port=csms_port),
        every=STEP,
        speed=clock.speed,
    )
    announce_event(program, store, clock)
    # Ctrl-C (or a service manager's SIGTERM) sets ``stop`` at any point of the story and
    # while it is kept open. Installed before the HTTP server starts: uvicorn takes the
    # signals while it runs and, as it stops, gives them back to this handler.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    async with scheduled_full_collections(300.0), server.running() as running:
        click.echo(
            f"{program.name}: {len(program.sites)} sites, "
            f"{sum(len(s.chargers) for s in program.sites)} chargers as emulated "
            f"OCPP stations on {running.csms.url}"
        )
        click.echo(f"\n  dashboard: {running.url}/#token={token}\n")
        click.echo(f"  server log: {logging.getLogger().handlers[0].baseFilename}\n")  # type: ignore[attr-defined]
        click.echo(
            f"One simulated hour every {3600 / clock.speed:g} s. ConnectedSolutions event "
            f"{'-'.join(EVENT_LOCAL)}; {school.site_id} loses the grid "
            f"{'-'.join(OUTAGE_LOCAL)}. Ctrl-C stops.\n"
        )
        cars: list[_Car] = []
        try:
            story = asyncio.create_task(_story(program, running, cars, password, clock, hours))
            if not await _until_done_or(stop, story):
                click.echo("\nStopped (Ctrl-C).")
                return
            summary(story.result(), school, len(cars))
            if keep_open:
                # The fleet stops reporting with the story: the clock stops with it, so the
                # dashboard shows the story's end, not hours of silent chargers.
                clock.pause()
                stopped = clock.now().astimezone(program.timezone)
                click.echo(
                    f"\nStill serving {running.url}/ with the clock stopped at "
                    f"{stopped:%H:%M %Z} (Ctrl-C stops)."
                )
                await stop.wait()
        finally:
            await asyncio.gather(*(c.station.stop() for c in cars), return_exceptions=True)


async def _until_done_or(stop: asyncio.Event, work: asyncio.Task[Any]) -> bool:
    """Wait for ``work``; ``False`` (and ``work`` cancelled) if ``stop`` is set first."""
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if work.done():
        work.result()  # its failure, if it failed
        return True
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    return False


async def _story(
    program: Program,
    server: OperationsServer,
    cars: list[_Car],
    password: str,
    clock: AcceleratedClock,
    hours: float,
) -> _Tally:
    """Connect the fleet (into ``cars``, so the caller can stop it), start the clock and
    drive the story, the clock waiting for the control loop whenever a pass over the sites
    falls behind."""
    await fleet(program, [server.csms.url], cars, password, clock)
    clock.resume()
    school = next(s for s in program.sites if s.kind is SiteKind.SCHOOL)
    holds = _Holds(clock)
    pacing = asyncio.create_task(_keep_pace(server.live, holds))
    try:
        tally = await drive(program, _InProcess(server.live), cars, holds, school, hours)
    finally:
        pacing.cancel()
        await asyncio.gather(pacing, return_exceptions=True)
    tally.waits = holds.waits
    return tally


class _Holds:
    """The demo's clock runs unless something holds it: the fleet sending its readings (in
    the field every station reports at the same moment; here they go one after another), or
    a control pass that fell behind (:func:`_keep_pace`). ``shared``: other processes run
    on the same clock (``--distributed``), so it is never held and the fleet's readings go
    all at once instead."""

    def __init__(self, clock: AcceleratedClock, shared: bool = False) -> None:
        self.clock = clock
        self.shared = shared
        self.count = 0
        self.waits = _Waits()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self.shared:
            yield
            return
        if self.count == 0:
            self.clock.pause()
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self.clock.resume()


async def _keep_pace(live: LiveControl, holds: _Holds) -> None:
    """Hold the clock while a pass over every site has run longer than :data:`PASS_SHARE`
    of a control period, until the pass ends. On a machine too slow for ``--speed`` the
    simulated day then runs slower than asked, rather than the plans falling behind the day:
    in the field a pass takes seconds of a 15-minute period, and a setpoint that lapses
    before the next pass would be a fault of the demo, not of the platform."""
    budget = live.every * PASS_SHARE
    while True:
        await asyncio.sleep(PACE_POLL_S)
        started = live.pass_started
        if started is None or holds.clock.now() - started < budget:
            continue
        held_at = time.monotonic()
        with holds.held():
            while live.pass_started == started:
                await asyncio.sleep(PACE_POLL_S)
        holds.waits.passes += 1
        holds.waits.seconds += time.monotonic() - held_at


def register_stations(program: Program, store: Store, password: str) -> None:
    """Each charger of the program, with one password (an scrypt hash is slow)."""
    digest = hash_password(password)
    for site in program.sites:
        for charger in site.chargers:
            version = OcppVersion[charger.protocol.name]  # the domain's enum, the wire's names
            dialect = _dialect(version, charger.bidirectional)
            store.add_station(
                StationRecord(
                    charger.evse_id,
                    digest,
                    version.value,
                    dialect.value,
                    charger.max_charge_kw,
                    site.site_id,
                )
            )


def announce_event(program: Program, store: Store, clock: AcceleratedClock) -> None:
    """The utility called the event the evening before (16 h notice, as the rules ask)."""
    day_before = (datetime.fromisoformat(DAY) - timedelta(days=1)).date().isoformat()
    notice = _local(program, day_before, "21:00")
    service = EventService(store, clock)
    for program_id in ("cs-residential-battery", "cs-ci-daily"):
        service.submit(
            {
                "event_id": f"{program_id}-{DAY}",
                "program_id": program_id,
                "start": _local(program, DAY, EVENT_LOCAL[0]).isoformat(),
                "end": _local(program, DAY, EVENT_LOCAL[1]).isoformat(),
                "notice_at": notice.isoformat(),
                "source": "demo",
            }
        )


async def fleet(
    program: Program,
    urls: Sequence[str],
    cars: list[_Car],
    password: str,
    clock: AcceleratedClock,
) -> None:
    """Connect every vehicle's emulated station (each added to ``cars`` as it is made): the
    n-th to ``urls[n % len(urls)]``, the others its backups in turn (where it reconnects if
    its gateway goes)."""
    now = clock.now()
    grid = TimeGrid(now, 4 * 96, STEP)
    for site in program.sites:
        for vehicle in site.vehicles:
            charger = site.charger(vehicle.evse_id)
            version = OcppVersion[charger.protocol.name]
            dialect = _dialect(version, charger.bidirectional)
            n = len(cars) % len(urls)
            station = EmulatedStation(
                charger.evse_id,
                password,
                version,
                urls[n],
                clock,
                {1: Evse(1, charger.max_charge_kw, charger.max_discharge_kw)},
                dialect=dialect.value,
                backup_urls=[*urls[n + 1 :], *urls[:n]],
            )
            ev = EmulatedEv(
                battery_kwh=vehicle.battery_kwh,
                soc=vehicle.initial_soc,
                max_charge_kw=vehicle.max_charge_kw,
                max_discharge_kw=vehicle.max_discharge_kw,
                min_soc=vehicle.soc_min,
            )
            schedule = trip_schedule(vehicle.trips, grid, program.timezone)
            cars.append(_Car(vehicle, station, schedule, ev))
    runs = [asyncio.create_task(car.station.run()) for car in cars]
    await asyncio.wait_for(asyncio.gather(*(c.station.connected.wait() for c in cars)), 60)
    refused = [c.station.id for c in cars if c.station.refused]
    if refused:
        for run in runs:
            run.cancel()
        raise ConfigError.at("demo", f"the CSMS refused {refused}")
    await _follow_trips(cars, 0)


async def _follow_trips(cars: Sequence[_Car], k: int) -> None:
    """Plug in or unplug each vehicle as its trips say at step ``k`` (a returning vehicle
    comes back with the trip's energy spent)."""
    for car in cars:
        for j in range(car.step + 1, k + 1):  # the trip energy of every step not yet applied
            spent_kwh = float(car.schedule.trip_energy_kwh[j])
            car.ev.soc = max(car.ev.soc - spent_kwh / car.ev.battery_kwh, 0.0)
        car.step = max(car.step, k)
        away = bool(car.schedule.away[k])
        if away and car.plugged:
            await car.station.unplug(1)
            car.plugged = False
        elif not away and not car.plugged:
            await car.station.plug_in(1, car.ev)
            await car.station.send_meter_values()
            car.plugged = True


async def drive(
    program: Program,
    control: StoryControl,
    cars: Sequence[_Car],
    holds: _Holds,
    school: Site,
    hours: float,
) -> _Tally:
    """Advance the fleet in 5-minute steps of simulated time; report every hour."""
    clock = holds.clock
    tally = _Tally()
    start = clock.start
    end = start + timedelta(hours=hours)
    event = tuple(_local(program, DAY, t) for t in EVENT_LOCAL)
    outage = tuple(_local(program, DAY, t) for t in OUTAGE_LOCAL)
    lost = restored = False
    school_chargers = {c.evse_id for c in school.chargers}
    last, last_hour = clock.now(), -1
    click.echo(f"{'time':<10}{'vehicles kW':>12}{'discharging':>12}{'plugged':>9}  what is on")
    while clock.now() < end:
        await asyncio.sleep(METER_EVERY.total_seconds() / clock.speed)
        now = clock.now()
        elapsed_s = (now - last).total_seconds()
        if elapsed_s <= 0:  # the clock waits for the control loop: so does the fleet
            continue
        last = now
        if not lost and now >= outage[0]:
            await control.report_grid(school.site_id, GridSignal.LOST, outage[0])
            lost = True
        if lost and not restored and now >= outage[1]:
            await control.report_grid(school.site_id, GridSignal.RESTORED, outage[1])
            restored = True
        with holds.held():  # the fleet reports at one moment, however long sending takes
            await _follow_trips(cars, int((now - start) / STEP))
            for car in cars:
                car.station.advance(elapsed_s)
            sends = [c.station.send_meter_values() for c in cars if c.plugged]
            if holds.shared:  # the clock runs on meanwhile: all at once, as in the field
                await asyncio.gather(*sends)
            else:
                for send in sends:
                    await send
        power_kw = sum(c.station.evses[1].power_kw for c in cars)
        discharge_kw = sum(max(-c.station.evses[1].power_kw, 0.0) for c in cars)
        school_kw = -sum(
            c.station.evses[1].power_kw for c in cars if c.vehicle.evse_id in school_chargers
        )
        in_event = event[0] <= now < event[1]
        if in_event:
            tally.event_kwh += discharge_kw * elapsed_s / 3600
            tally.event_net_kwh += -power_kw * elapsed_s / 3600
            tally.event_hours += elapsed_s / 3600
            tally.peak_discharge_kw = max(tally.peak_discharge_kw, discharge_kw)
            for car in cars:
                if car.station.evses[1].power_kw < -0.1:
                    tally.event_stations.add(car.station.id)
                    gateway = car.station.urls[car.station.url_index]
                    tally.event_by_gateway.setdefault(gateway, set()).add(car.station.id)
        islanded = control.islanded(school.site_id)
        if islanded:
            tally.islanded_hours += elapsed_s / 3600
            tally.islanded_kwh += school_kw * elapsed_s / 3600
        hour = int((now - start).total_seconds() // 3600)
        if hour != last_hour:
            last_hour = hour
            notes = []
            if in_event:
                notes.append("ConnectedSolutions event")
            if islanded:
                status = control.status(school.site_id)
                if status is None:  # the site's tick is not visible from here
                    notes.append(
                        f"{school.site_id} islanded: its buses give {max(school_kw, 0.0):.0f} kW"
                    )
                elif status.mode != "islanded":  # the grid was lost since its last tick
                    notes.append(f"{school.site_id} islanded: switching to its buses")
                else:
                    carried = {
                        "critical": "its critical loads",
                        "essential": "its critical and essential loads",
                        "full": "the whole building",
                    }.get(status.tier or "", "not even its critical loads")
                    notes.append(
                        f"{school.site_id} islanded: its buses give {max(school_kw, 0.0):.0f} kW "
                        f"({carried})"
                    )
            notes.extend(control.notes())
            local = now.astimezone(program.timezone)
            click.echo(
                f"{local:%H:%M %Z}{power_kw:>+11.0f}{discharge_kw:>12.0f}"
                f"{sum(c.plugged for c in cars):>9}  {'; '.join(notes)}"
            )
    return tally


def summary(tally: _Tally, school: Site, chargers: int, gateways: Sequence[str] = ()) -> None:
    """The story's figures, as the emulated chargers metered them; with ``gateways``, how
    many discharging stations each carried."""
    if tally.event_hours:
        stations = len(tally.event_stations)
        click.echo(
            f"\nEvent: {stations} of the {chargers} emulated chargers discharged. The vehicles "
            f"gave {tally.event_kwh:,.0f} kWh; net of those charging meanwhile "
            f"{tally.event_net_kwh:,.0f} kWh, {tally.event_net_kwh / tally.event_hours:,.0f} kW "
            f"on average (discharge peak {tally.peak_discharge_kw:,.0f} kW). The program "
            "expects more than 1 MW."
        )
    if tally.event_hours and gateways:
        through = [tally.event_by_gateway.get(url, set()) for url in gateways]
        counts = ", ".join(
            f"{len(stations)} through gateway {n} ({url})"
            for n, (url, stations) in enumerate(zip(gateways, through, strict=True), 1)
        )
        both = set.intersection(*through) if len(through) > 1 else set()
        moved = f"; {len(both)} through both (they moved when a gateway went)" if both else ""
        click.echo(f"Gateways: of the stations that discharged, {counts}{moved}.")
    if tally.islanded_hours:
        click.echo(
            f"Outage: {school.site_id} ran {tally.islanded_hours:.1f} h islanded, its buses "
            f"giving the building {tally.islanded_kwh:,.0f} kWh (islanded until the grid was "
            "back and the 5-minute enter-service delay had passed)."
        )
    if tally.waits is not None and tally.waits.passes:
        click.echo(
            f"The clock waited {tally.waits.seconds:.1f} s for {tally.waits.passes} control "
            "passes that took longer than this machine allows at this --speed: the day ran "
            "slower than asked, every site still planned every 15 minutes."
        )
