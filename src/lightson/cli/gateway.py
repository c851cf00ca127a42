"""``lightson gateway``: one CSMS gateway of a distributed deployment (docs/operations.md,
"Running gateways"): the charger connections, PostgreSQL and the NATS broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from datetime import datetime
from pathlib import Path

import click

from lightson.bus.connection import check_url
from lightson.cli.app import (
    friendly_errors,
    log_frames,
    main,
    offline_close_option,
    shared_clock_options,
)
from lightson.cli.tls import station_ca, tls_context, tls_options
from lightson.config import load_program
from lightson.csms.clock import AcceleratedClock
from lightson.csms.collector import scheduled_full_collections
from lightson.csms.server import CsmsSettings
from lightson.domain.errors import ConfigError
from lightson.roles.gateway import GatewayRole
from lightson.store import Store


@main.command()
@click.argument("program_ref", metavar="PROGRAM")
@click.option("--bus", required=True, metavar="URL", help="The NATS broker, nats://host:4222.")
@click.option(
    "--db",
    required=True,
    metavar="URL",
    help="The shared PostgreSQL database, postgresql+psycopg://user@host/db.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    default=9000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="WebSocket port for the chargers (OCPP).",
)
@click.option("--name", default=None, help="The gateway's name at the broker (default: host:port).")
@click.option(
    "--full-gc-every",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="Seconds between full garbage collections; 0 leaves them to CPython, whose timing "
    "stalls a gateway with thousands of stations (docs/benchmarks.md).",
)
@offline_close_option
@click.option("--log-frames", "frames", is_flag=True, help="Log every OCPP frame at INFO.")
@tls_options
@shared_clock_options
@friendly_errors
def gateway(
    program_ref: str,
    bus: str,
    db: str,
    host: str,
    port: int,
    name: str | None,
    full_gc_every: float,
    offline_close_after: int,
    frames: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    station_ca_cert: Path | None,
    station_ca_key: Path | None,
    tls_client_ca: Path | None,
    start: datetime | None,
    speed: float,
    clock_origin: float | None,
) -> None:
    """Run one CSMS gateway of PROGRAM until Ctrl-C or SIGTERM: it holds charger connections,
    stores what they send in the shared database before answering, runs the commands the
    control workers send over the broker (fenced by their site lease), and wakes the worker
    of a site when its chargers report. Run several behind a load balancer, or give chargers
    each gateway's URL; no control loop runs here."""
    check_url(bus)
    if not db.startswith("postgresql"):
        raise ConfigError.at("--db", f"gateways share one PostgreSQL database, got {db!r}")
    tls = tls_context(tls_cert, tls_key, tls_client_ca)
    signer = station_ca(station_ca_cert, station_ca_key)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log_frames(enabled=frames)
    program = load_program(program_ref)
    store = Store(db)
    role = GatewayRole(
        program,
        store,
        AcceleratedClock(start, speed, origin=clock_origin),
        bus,
        CsmsSettings(
            host=host,
            port=port,
            offline_close_after_s=offline_close_after,
            tls=tls,
            station_ca=signer,
        ),
        name=name or f"lightson-gateway-{socket.gethostname()}-{port}",
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)
        async with (
            scheduled_full_collections(full_gc_every or None),
            role.running() as running,
        ):
            click.echo(f"gateway: chargers {running.csms.url}/<station id>, broker {bus}")
            await stop.wait()
        click.echo("gateway stopped")

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
    finally:
        store.close()
