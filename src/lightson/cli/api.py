"""``lightson api``: one API server of a distributed deployment (docs/operations.md, "API
servers"): the HTTP API and the dashboard over PostgreSQL and the NATS broker, with no CSMS
and no control loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import datetime, timedelta
from pathlib import Path

import click

from lightson.api.deps import MIN_SITES_IN_AGGREGATES
from lightson.api.limits import DEFAULT_MAX_BODY_BYTES
from lightson.bus.connection import check_url
from lightson.cli.app import friendly_errors, main, shared_clock_options
from lightson.config import load_program
from lightson.csms.clock import AcceleratedClock
from lightson.domain.errors import ConfigError
from lightson.roles.api import ApiRole
from lightson.store import Store

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


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
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="HTTP port of the API and dashboard.",
)
@click.option(
    "--every",
    default=300,
    show_default=True,
    type=click.IntRange(1, 3600),
    help="The workers' --every (seconds between re-plans): when a site's plan counts as stale.",
)
@click.option(
    "--max-body-kb",
    default=DEFAULT_MAX_BODY_BYTES // 1024,
    show_default=True,
    type=click.IntRange(1, 1024 * 1024),
    help="Largest API request body, KiB: a larger one is refused (413) before it is read or "
    "its token checked.",
)
@click.option(
    "--utility-min-sites",
    default=MIN_SITES_IN_AGGREGATES,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="A utility sees power figures only over at least this many sites (as for serve).",
)
@click.option(
    "--api-docs",
    is_flag=True,
    help="Serve the interactive API docs at /api/docs (their script comes from a CDN).",
)
@click.option(
    "--tls-cert", type=_FILE, default=None, help="PEM certificate chain: the API over https://."
)
@click.option("--tls-key", type=_FILE, default=None, help="PEM key of --tls-cert.")
@shared_clock_options
@friendly_errors
def api(
    program_ref: str,
    bus: str,
    db: str,
    host: str,
    port: int,
    every: int,
    max_body_kb: int,
    utility_min_sites: int,
    api_docs: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    start: datetime | None,
    speed: float,
    clock_origin: float | None,
) -> None:
    """Run an API server for PROGRAM until Ctrl-C or SIGTERM: the routes and dashboard of
    serve, with site status from the control workers (over the broker; a site no live
    worker reports answers 503 "no controller", and the lists show it marked so), everything
    else from PostgreSQL; keep the machines' clocks in NTP. Writes
    are stored first, then announced to the worker that holds the site, which re-plans at
    once. Tokens: lightson token add --db (the same database)."""
    check_url(bus)
    if not db.startswith("postgresql"):
        raise ConfigError.at("--db", f"API servers share the workers' PostgreSQL, got {db!r}")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError.at("--tls-key", "--tls-cert and --tls-key go together")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    program = load_program(program_ref)
    store = Store(db)
    role = ApiRole(
        program,
        store,
        AcceleratedClock(start, speed, origin=clock_origin),
        bus,
        host=host,
        http_port=port,
        every=timedelta(seconds=every),
        http_tls=(tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None,
        max_body_bytes=max_body_kb * 1024,
        utility_min_sites=utility_min_sites,
        api_docs=api_docs,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)
        async with role.running() as running:
            click.echo(f"API and dashboard: {running.url}/  (status from the workers on {bus})")
            await stop.wait()
        click.echo("API server stopped")

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
    finally:
        store.close()
