"""``lightson demo --distributed``: the demo's story on the distributed platform.

A throwaway PostgreSQL cluster and NATS server (``lightson.devservices``, in a temporary
folder, on loopback), two ``lightson gateway`` and two ``lightson worker`` processes, all
started here and stopped on the way out, Ctrl-C and SIGTERM included. Should the demo be
killed with SIGKILL, which no clean-up survives, the kernel stops them all the same (on
Linux): each is started with a parent-death signal (``devservices.die_with_parent``; its
docstring says why that and not a watchdog), and only the temporary folder stays, which the
next demo removes (:func:`sweep_leftovers`).

The emulated fleet is spread over the two gateways, each station with the other as its
backup; the workers share the sites by their leases. Every process runs on one accelerated
clock (the same start, speed and ``CLOCK_MONOTONIC`` origin), which reads 12:00 until the
origin: the time the processes, their leases and the fleet's connections need, so that the
day starts with everything up.

The school's meter is played here: its grid signals are stored in the database and announced
on the bus (``lightson.site.<site>.grid``), and the worker holding the school reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from nats.js.errors import BucketNotFoundError, NoKeysError

import lightson
from lightson.bus.connection import Bus, connect_bus
from lightson.bus.subjects import LEASE_BUCKET, site_subject
from lightson.cli.demo import (
    DAY,
    EVENT_LOCAL,
    OUTAGE_LOCAL,
    START_LOCAL,
    STEP,
    _Car,
    _Holds,
    _local,
    _until_done_or,
    announce_event,
    drive,
    fleet,
    register_stations,
    summary,
)
from lightson.config import load_program
from lightson.control.grid import GridMonitor, GridSignal
from lightson.csms.clock import AcceleratedClock
from lightson.devservices import (
    DevServiceError,
    die_with_parent,
    free_port,
    nats_server,
    postgres_cluster,
)
from lightson.domain.assets import Program, SiteKind
from lightson.services.live_status import SiteStatus
from lightson.store import Store
from lightson.store import schema as db

PROGRAM = "ma-2026"
GATEWAYS = 2
WORKERS = 2
LEASE_S = 6.0  # the workers' site leases: shares settle within seconds of the start
# Wall seconds from starting the roles to the story's 12:00: about 20 s pass on this 2-core
# machine until the four processes are up, the leases shared and the fleet connected.
LEAD_S = 40.0
READY_S = 90.0  # at most this long for each of those steps
STOP_S = 15.0  # a role that has not stopped this long after SIGTERM is killed
FOLDER_PREFIX = "lightson-demo-"  # the services' temporary folder
OWNER = "owner"  # in it: the demo's pid and start time, for a later demo's sweep


@dataclass
class Role:
    """One gateway or worker process of the demo."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str | None = None  # a gateway's charger URL


def run_distributed(hours: float, speed: float, out: Path) -> None:
    """Tell the story on PostgreSQL, NATS, two gateways and two workers; stop them all."""
    program = load_program(PROGRAM)
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=out / "lightson-demo.log",
        filemode="w",
        level=logging.INFO,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("websockets.client").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt), contextlib.ExitStack() as stack:
        for number, handler in _interrupting().items():
            stack.callback(signal.signal, number, handler)
        for left in sweep_leftovers(Path(tempfile.gettempdir())):
            click.echo(f"Removed {left}, left by a demo killed with SIGKILL")
        folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
        stack.callback(shutil.rmtree, folder, True)
        (folder / OWNER).write_text(f"{os.getpid()} {_started(os.getpid())}\n")
        folder.chmod(0o711)  # PostgreSQL's user (when we are root) passes through to pg/
        click.echo(f"{program.name}: PostgreSQL and NATS in {folder} (removed at the end)")
        (folder / "pg").mkdir()
        db_url = stack.enter_context(postgres_cluster(folder / "pg"))
        broker = stack.enter_context(nats_server(folder / "nats"))
        store = Store(db_url)
        stack.callback(store.close)
        password = secrets.token_urlsafe(18)  # 24 characters: OCPP asks for 16-40
        register_stations(program, store, password)
        origin = time.monotonic() + LEAD_S
        clock = AcceleratedClock(_local(program, DAY, START_LOCAL), speed, origin=origin)
        announce_event(program, store, clock)
        roles = stack.enter_context(_roles(db_url, broker.url, clock, origin, out))
        # Stopping takes some seconds: a second Ctrl-C must not leave the roles behind.
        stack.callback(_ignore_signals)
        asyncio.run(_story(program, store, clock, origin, broker.url, roles, password, hours))


def sweep_leftovers(temp: Path) -> list[Path]:
    """Remove the services' folders in ``temp`` whose demo is gone without removing them
    (killed with SIGKILL: its processes died with it, its folder stayed); the removed ones.
    A folder is its demo's while a process with the pid and start time of its ``owner``
    file runs; one without that file (another demo starting up, an older version) stays."""
    removed = []
    for folder in sorted(temp.glob(f"{FOLDER_PREFIX}*")):
        try:
            pid, started = (folder / OWNER).read_text().split()
            owner_runs = _started(int(pid)) == started
        except (OSError, ValueError):
            continue
        if not owner_runs:
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
    return removed


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, ``/proc``), or ``-`` when
    none runs: with the pid, it names one process, pids being reused."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "-"


def _interrupting() -> dict[signal.Signals, Any]:
    """SIGTERM, as Ctrl-C, interrupts the start-up (whatever is up is stopped); returns the
    handlers it replaced."""

    def interrupt(_number: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, interrupt)
    return previous


def _ignore_signals() -> None:
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)


@contextlib.contextmanager
def _roles(
    db_url: str, bus_url: str, clock: AcceleratedClock, origin: float, out: Path
) -> Iterator[list[Role]]:
    """The gateways (listening when this yields) and the workers; SIGTERM to each on the
    way out, workers first (they give their leases back), SIGKILL after ``STOP_S``."""
    common = ["--bus", bus_url, "--db", db_url, "--start", clock.start.isoformat()]
    common += ["--speed", repr(clock.speed), "--clock-origin", repr(origin)]
    roles: list[Role] = []
    try:
        for n in range(1, GATEWAYS + 1):
            port = free_port()
            name = f"gateway-{n}"
            args = ["gateway", PROGRAM, *common, "--port", str(port), "--name", f"demo-{name}"]
            roles.append(_start(name, args, out, f"ws://127.0.0.1:{port}/ocpp"))
        for n in range(1, WORKERS + 1):
            name = f"worker-{n}"
            args = ["worker", PROGRAM, *common, "--worker-id", f"demo-{name}"]
            args += ["--every", str(int(STEP.total_seconds())), "--lease-s", repr(LEASE_S)]
            roles.append(_start(name, args, out))
        for role in roles:
            if role.url is not None:
                _wait_listening(role)
        yield roles
    finally:
        workers = [r for r in roles if r.url is None]
        _stop(workers)
        _stop([r for r in roles if r not in workers])


def _start(name: str, args: Sequence[str], out: Path, url: str | None = None) -> Role:
    log = out / f"{name}.log"
    # Where this package is, for the child's imports (a source checkout as an install).
    path = [str(Path(lightson.__file__).resolve().parents[1])]
    path += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "lightson.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # a Ctrl-C in the terminal is the demo's to pass on
            # Killed with the demo, whatever kills it: SIGKILL, as its servers are going
            # too, so a clean stop has nobody to talk to, and SIGKILL cannot hang.
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
    return Role(name, process, log, url)


def _wait_listening(role: Role) -> None:
    assert role.url is not None
    port = int(role.url.rsplit(":", 1)[1].split("/", 1)[0])
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if role.process.poll() is not None:
            raise DevServiceError(f"{role.name} exited: see {role.log}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return
        time.sleep(0.1)
    raise DevServiceError(f"{role.name} did not listen within {READY_S:g} s: see {role.log}")


def _stop(roles: Sequence[Role]) -> None:
    for role in roles:
        if role.process.poll() is None:
            role.process.terminate()
    for role in roles:
        try:
            role.process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            role.process.kill()
            role.process.wait(10)


class OverTheBus:
    """The story's control on the distributed platform: the workers run it; the school's
    meter (played here) stores its grid signals and announces them on the bus."""

    def __init__(self, store: Store, bus: Bus, clock: AcceleratedClock, roles: Sequence[Role]):
        self.store = store
        self.bus = bus
        self.clock = clock
        self.roles = roles
        self.grids: dict[str, GridMonitor] = {}

    async def report_grid(self, site_id: str, signal: GridSignal, at: datetime) -> None:
        row: dict[str, object] = {
            "site_id": site_id,
            "source": "meter",
            "signal": signal.value,
            "at": at,
            "released_vehicles": [],
        }
        await asyncio.to_thread(lambda: self.store.write([(db.grid_signals, row)]).result(30))
        self.grids.setdefault(site_id, GridMonitor()).report("meter", signal, at)
        body = json.dumps({"site_id": site_id}).encode()
        await self.bus.client.publish(site_subject(site_id, "grid"), body)

    def islanded(self, site_id: str) -> bool:
        grid = self.grids.get(site_id)
        return grid is not None and grid.islanded(self.clock.now())

    def status(self, site_id: str) -> SiteStatus | None:
        return None  # the worker's, not visible from here

    def notes(self) -> list[str]:
        gone = [f"{r.name} gone ({r.process.returncode})" for r in self.roles if _gone(r)]
        return gone


def _gone(role: Role) -> bool:
    return role.process.poll() is not None


async def _story(
    program: Program,
    store: Store,
    clock: AcceleratedClock,
    origin: float,
    bus_url: str,
    roles: Sequence[Role],
    password: str,
    hours: float,
) -> None:
    """Tell the story until its end, or until Ctrl-C or SIGTERM (the fleet is stopped)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    story = asyncio.create_task(
        _tell(program, store, clock, origin, bus_url, roles, password, hours)
    )
    if not await _until_done_or(stop, story):
        click.echo("\nStopped (Ctrl-C).")


async def _tell(
    program: Program,
    store: Store,
    clock: AcceleratedClock,
    origin: float,
    bus_url: str,
    roles: Sequence[Role],
    password: str,
    hours: float,
) -> None:
    bus = await connect_bus(bus_url, "lightson-demo")
    try:
        urls = [r.url for r in roles if r.url is not None]
        for role in roles:
            where = f"{role.url}, " if role.url else ""
            click.echo(f"  {role.name}: {where}pid {role.process.pid}, log {role.log}")
        await _sites_held(bus, program, roles)
        school = next(s for s in program.sites if s.kind is SiteKind.SCHOOL)
        click.echo(
            f"{len(program.sites)} sites on {WORKERS} workers, "
            f"{sum(len(s.chargers) for s in program.sites)} chargers as emulated OCPP "
            f"stations on {GATEWAYS} gateways"
        )
        cars: list[_Car] = []
        try:
            await fleet(program, urls, cars, password, clock)
            late_s = time.monotonic() - origin
            if late_s > 0:
                click.echo(f"(the fleet connected {late_s:.0f} s after the day began)")
            click.echo(
                f"\nOne simulated hour every {3600 / clock.speed:g} s. ConnectedSolutions "
                f"event {'-'.join(EVENT_LOCAL)}; {school.site_id} loses the grid "
                f"{'-'.join(OUTAGE_LOCAL)}. Ctrl-C stops.\n"
            )
            await asyncio.sleep(max(origin - time.monotonic(), 0.0))
            control = OverTheBus(store, bus, clock, roles)
            holds = _Holds(clock, shared=True)
            tally = await drive(program, control, cars, holds, school, hours)
            summary(tally, school, len(cars), urls)
        finally:
            await asyncio.gather(*(c.station.stop() for c in cars), return_exceptions=True)
    finally:
        await bus.close()


async def _sites_held(bus: Bus, program: Program, roles: Sequence[Role]) -> None:
    """Wait until the workers hold a lease on every site (bounded)."""
    kv = None
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        for role in roles:
            if _gone(role):
                raise DevServiceError(f"{role.name} exited: see {role.log}")
        with contextlib.suppress(BucketNotFoundError, NoKeysError):
            kv = kv or await bus.jetstream.key_value(LEASE_BUCKET)
            if len(await kv.keys()) >= len(program.sites):
                return
        await asyncio.sleep(0.2)
    raise DevServiceError(f"the workers did not take every site's lease within {READY_S:g} s")


__all__ = ["OverTheBus", "Role", "run_distributed", "sweep_leftovers"]
