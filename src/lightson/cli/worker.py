"""``lightson worker``: a control worker, one of any number sharing the program's sites over
the message broker (NATS JetStream) and PostgreSQL (docs/operations.md, "Control workers")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from datetime import datetime, timedelta

import click

from lightson.cli.app import friendly_errors, main, shared_clock_options
from lightson.config import load_program
from lightson.roles.worker import DEFAULT_LEASE_S, ControlWorker, check_bus_url, check_worker_id
from lightson.services.engines import ENGINES, make_engine
from lightson.services.live import DEFAULT_ISLANDED_HOLD
from lightson.store import Store, default_url


@main.command()
@click.argument("program_ref", metavar="PROGRAM")
@click.option("--bus", required=True, metavar="URL", help="The NATS server, nats://host:port.")
@click.option("--db", default=default_url(), show_default=True, help="Database URL (PostgreSQL).")
@click.option(
    "--worker-id",
    default=None,
    help="This worker's name in the leases (default: <host>-<pid>); letters, digits, - _ =.",
)
@click.option(
    "--lease-s",
    default=DEFAULT_LEASE_S,
    show_default=True,
    type=click.FloatRange(0.5, 600.0),
    help="Seconds a site lease lasts without renewal (renewed every third of it): a dead "
    "worker's sites are taken over this long after it died, plus a third. The lease bucket "
    "keeps the value it was created with.",
)
@click.option(
    "--every",
    default=300,
    show_default=True,
    type=click.IntRange(1, 3600),
    help="Seconds between re-plans of every site this worker holds (as for serve).",
)
@click.option(
    "--controller",
    default="v2x-mpc",
    show_default=True,
    type=click.Choice(["unmanaged", "smart-charge", "v2x-mpc"]),
)
@click.option(
    "--engine",
    default="inline",
    show_default=True,
    type=click.Choice(ENGINES),
    help="Where the site LPs are solved: inline (threads of this process) or ray (Ray "
    "tasks: a burst of re-plans, as when an event is announced, spreads over Ray's CPUs; "
    "a local Ray instance on loopback unless --ray-address names a cluster).",
)
@click.option(
    "--ray-cpus",
    default=2,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="CPUs of the local Ray instance (--engine ray).",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="HOST:PORT",
    help="A running Ray cluster to solve on instead of a local instance (--engine ray).",
)
@click.option(
    "--keep-plans-days",
    type=click.IntRange(1, 3660),
    default=None,
    help="Delete the stored plans older than this many days (as for serve).",
)
@click.option(
    "--islanded-hold-min",
    default=int(DEFAULT_ISLANDED_HOLD.total_seconds() // 60),
    show_default=True,
    type=click.IntRange(5, 24 * 60),
    help="Minutes an islanded site's setpoints hold (as for serve).",
)
@shared_clock_options
@friendly_errors
def worker(
    program_ref: str,
    bus: str,
    db: str,
    worker_id: str | None,
    lease_s: float,
    every: int,
    controller: str,
    engine: str,
    ray_cpus: int,
    ray_address: str | None,
    keep_plans_days: int | None,
    islanded_hold_min: int,
    start: datetime | None,
    speed: float,
    clock_origin: float | None,
) -> None:
    """Run a control worker for PROGRAM until Ctrl-C or SIGTERM: it holds the leases of its
    share of the sites (at most ceil(sites / live workers)), runs the control loop for them,
    and sends setpoints through the gateways over the broker, each with its site's lease
    revision as fencing token. On the way out it gives its leases back, so the other
    workers take its sites at once."""
    from lightson.csms.clock import AcceleratedClock

    check_bus_url(bus)
    name = check_worker_id(worker_id or f"{socket.gethostname()}-{os.getpid()}".replace(".", "-"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    program = load_program(program_ref)
    store = Store(db)
    control = ControlWorker(
        program,
        store,
        AcceleratedClock(start, speed, origin=clock_origin),
        bus,
        name,
        lease_s=lease_s,
        every=timedelta(seconds=every),
        speed=speed,
        controller=controller,
        keep_plans=timedelta(days=keep_plans_days) if keep_plans_days else None,
        islanded_hold=timedelta(minutes=islanded_hold_min),
        engine=make_engine(engine, ray_cpus, ray_address),
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)
        async with control.running():
            click.echo(
                f"worker {name}: {len(program.sites)} sites shared over {bus}"
                f" (site LPs solved {'on Ray' if engine == 'ray' else 'inline'})"
            )
            await stop.wait()
        click.echo(f"worker {name} stopped; its leases given back")

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
    finally:
        store.close()
