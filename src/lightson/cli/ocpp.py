"""``lightson csms``, ``lightson station add`` and ``lightson emulate``: chargers over OCPP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from datetime import timedelta
from pathlib import Path

import click

from lightson.cli.app import friendly_errors, main, offline_close_option
from lightson.cli.tls import station_ca, tls_context, tls_options
from lightson.csms.auth import hash_password
from lightson.csms.clock import AcceleratedClock
from lightson.csms.collector import scheduled_full_collections
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.csms.translate import Dialect
from lightson.csms.wire import OcppVersion
from lightson.domain.errors import ConfigError
from lightson.emulator import EmulatedEv, EmulatedStation, Evse, Fleet
from lightson.store import StationRecord, Store, default_url

PASSWORD_ENV = "LIGHTSON_STATION_PASSWORD"
CONNECT_TIMEOUT_S = 30.0  # emulate: how long the stations may take to connect and boot
VERSIONS = [v.value for v in OcppVersion]
DIALECTS = [d.value for d in Dialect]


def _password(password_env: str) -> str:
    password = os.environ.get(password_env, "")
    if not password:
        raise ConfigError.at("--password-env", f"set the station password in ${password_env}")
    return password


def _check_dialect(dialect: str, version: OcppVersion) -> None:
    try:
        Dialect(dialect).check(version)
    except ValueError as error:
        raise ConfigError.at("--dialect", str(error)) from None


@main.command()
@click.option("--db", default=default_url(), show_default=True, help="Database URL.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--heartbeat",
    default=300,
    show_default=True,
    type=click.IntRange(10, 86400),
    help="Heartbeat interval given to stations, seconds.",
)
@click.option(
    "--full-gc-every",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="Seconds between full garbage collections; 0 leaves them to CPython, whose timing "
    "stalls a server with thousands of stations (docs/benchmarks.md).",
)
@offline_close_option
@tls_options
@friendly_errors
def csms(
    db: str,
    host: str,
    port: int,
    heartbeat: int,
    full_gc_every: float,
    tls_cert: Path | None,
    tls_key: Path | None,
    station_ca_cert: Path | None,
    station_ca_key: Path | None,
    tls_client_ca: Path | None,
    offline_close_after: int,
) -> None:
    """Run the charging-station management server until Ctrl-C.

    Stations connect to ws://HOST:PORT/ocpp/STATION_ID (wss:// with --tls-cert) with HTTP
    Basic credentials (register them with 'lightson station add'), or with a client
    certificate naming their id (--tls-client-ca), and one of the subprotocols ocpp2.1,
    ocpp2.0.1, ocpp1.6.
    """
    tls = tls_context(tls_cert, tls_key, tls_client_ca)
    signer = station_ca(station_ca_cert, station_ca_key)
    store = Store(db)
    settings = CsmsSettings(
        host=host,
        port=port,
        heartbeat_interval_s=heartbeat,
        offline_close_after_s=offline_close_after,
        tls=tls,
        station_ca=signer,
    )

    async def serve() -> None:
        async with (
            scheduled_full_collections(full_gc_every or None),
            CsmsServer(store, AcceleratedClock(), settings) as server,
        ):
            click.echo(f"CSMS listening on {server.url}/<station id> (Ctrl-C stops)")
            await asyncio.Event().wait()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve())
    finally:
        store.close()


@main.group()
def station() -> None:
    """Register charging stations."""


@station.command("add")
@click.argument("station_id")
@click.option("--db", default=default_url(), show_default=True, help="Database URL.")
@click.option(
    "--version",
    "ocpp_version",
    type=click.Choice(VERSIONS),
    default="2.1",
    show_default=True,
    help="OCPP version the station speaks.",
)
@click.option(
    "--dialect",
    type=click.Choice(DIALECTS),
    default="central-setpoint",
    show_default=True,
    help="How the station is told to discharge.",
)
@click.option(
    "--max-charge-kw",
    default=19.2,
    show_default=True,
    type=click.FloatRange(0.1, 1000),
    help="Charger rating for the default profile.",
)
@click.option(
    "--count",
    default=1,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Register STATION_ID0001 … STATION_ID<count> instead of one station.",
)
@click.option(
    "--password-env",
    default=PASSWORD_ENV,
    show_default=True,
    help="Environment variable holding the password.",
)
@friendly_errors
def station_add(
    station_id: str,
    db: str,
    ocpp_version: str,
    dialect: str,
    max_charge_kw: float,
    count: int,
    password_env: str,
) -> None:
    """Register STATION_ID (its password comes from an environment variable)."""
    _check_dialect(dialect, OcppVersion(ocpp_version))
    password = _password(password_env)
    try:
        password_hash = hash_password(password)
    except ValueError as error:
        raise ConfigError.at("--password-env", str(error)) from None
    ids = [station_id] if count == 1 else [f"{station_id}{i:04d}" for i in range(1, count + 1)]
    store = Store(db)
    try:
        for name in ids:
            store.add_station(
                StationRecord(name, password_hash, ocpp_version, dialect, max_charge_kw)
            )
    finally:
        store.close()
    click.echo(
        f"registered {len(ids)} station(s): {ids[0]}" + (f" … {ids[-1]}" if count > 1 else "")
    )


@main.command()
@click.option(
    "--url",
    default="ws://127.0.0.1:9000/ocpp",
    show_default=True,
    help="CSMS address (stations append /<id>).",
)
@click.option("--stations", default=1, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--version", "ocpp_version", type=click.Choice(VERSIONS), default="2.1", show_default=True
)
@click.option(
    "--dialect", type=click.Choice(DIALECTS), default="central-setpoint", show_default=True
)
@click.option(
    "--id-prefix",
    default="emu-",
    show_default=True,
    help="Stations are <prefix>0001 … (register them with the same prefix).",
)
@click.option("--password-env", default=PASSWORD_ENV, show_default=True)
@click.option(
    "--meter-interval",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.5, 3600),
    help="Simulated seconds between meter values.",
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="How many times faster than real time the EVs charge and discharge (the stations'"
    " clocks stay on real time: a CSMS quarantines readings from its future).",
)
@click.option(
    "--duration",
    default=None,
    type=click.FloatRange(1, None),
    help="Stop after this many real seconds (default: run until Ctrl-C).",
)
@click.option("--seed", default=1, show_default=True, type=int)
@friendly_errors
def emulate(
    url: str,
    stations: int,
    ocpp_version: str,
    dialect: str,
    id_prefix: str,
    password_env: str,
    meter_interval: float,
    speed: float,
    duration: float | None,
    seed: int,
) -> None:
    """Run emulated charging stations, each with a bidirectional 60 kW EVSE and a plugged-in
    vehicle, that follow the profiles they are sent and report meter values."""
    version = OcppVersion(ocpp_version)
    _check_dialect(dialect, version)
    password = _password(password_env)
    # Real time on the stations' clocks, as on real chargers: readings stamped ahead of the
    # CSMS's clock are quarantined there. --speed makes the batteries move faster instead.
    clock = AcceleratedClock()
    rng = random.Random(seed)
    fleet = Fleet(
        [
            EmulatedStation(
                f"{id_prefix}{i:04d}",
                password,
                version,
                url,
                clock,
                {1: Evse(1, max_charge_kw=60.0, max_discharge_kw=60.0)},
                dialect=dialect,
            )
            for i in range(1, stations + 1)
        ]
    )

    async def run() -> None:
        tasks = [asyncio.create_task(s.run()) for s in fleet.stations]
        await asyncio.sleep(1.0)
        refused = [s.id for s in fleet.stations if s.refused]
        if refused:
            raise ConfigError.at(
                "--url",
                f"the CSMS refused {len(refused)} station(s), e.g. "
                f"{refused[0]}: register them with 'lightson station add'",
            )
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                for station in fleet.stations:
                    await station.connected.wait()
        except TimeoutError:
            online = sum(s.connected.is_set() for s in fleet.stations)
            raise ConfigError.at(
                "--url",
                f"{len(fleet.stations) - online} of {len(fleet.stations)} station(s) did not "
                f"connect to {url} within {CONNECT_TIMEOUT_S:g} s: is 'lightson csms' (or "
                "'lightson serve') running there?",
            ) from None
        for station in fleet.stations:
            ev = EmulatedEv(
                battery_kwh=131.0,
                soc=rng.uniform(0.4, 0.9),
                max_charge_kw=60.0,
                max_discharge_kw=60.0 if dialect != "charge-only" else 0.0,
            )
            await station.plug_in(1, ev)
        loop = asyncio.get_running_loop()
        started = loop.time()
        last = clock.now()
        while duration is None or loop.time() - started < duration:
            await asyncio.sleep(meter_interval / speed)
            now = clock.now()
            elapsed_s = (now - last) / timedelta(seconds=1)
            last = now
            for station in fleet.stations:
                station.advance(elapsed_s * speed)
                await station.send_meter_values()
            power_kw = sum(e.power_kw for s in fleet.stations for e in s.evses.values())
            online = sum(s.connected.is_set() for s in fleet.stations)
            click.echo(
                f"{now:%H:%M:%S}  {online}/{len(fleet.stations)} online  {power_kw:+.1f} kW",
                err=True,
            )
        for station in fleet.stations:
            await station.stop()
        for task in tasks:
            task.cancel()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
