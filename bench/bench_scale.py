"""Scale-out benchmark (``make bench-scale``): stations per gateway core, and a 10,000-site re-plan.

Part 1, gateways under load (issue #18). For each number of gateways (1, then 2) and each
station count of the ramp, repeated ``--repeats`` times: a fresh PostgreSQL database with the
stations registered, ``lightson gateway`` processes (each its own process, sharing the
database and the NATS broker) started and ready (each says so on stdout once it listens),
and a load generator in its own process(es): plain WebSocket clients, lighter than the
emulator, spread round-robin over the gateways, that connect, boot, answer the CSMS's own
calls and then send ``MeterValues`` every ``--period`` seconds at a random phase for
``--seconds``. The generator reports how many stations connected and booted; if any did not
(or one was lost during the window), the run fails with the count and the first error, and
nothing is reported for it. Per point: p50/p99 of the answer latency as the stations see it,
and the gateways' CPU (``/proc/<pid>/stat`` over the timed window), with the spread over the
repetitions.

Part 2, the re-plan burst: at 14:45 on an event day every site plans at once. ``--sites``
synthetic sites, each one of ``ma-2026``'s sites (in turn) with its own vehicles' state of
charge and plug state drawn from a fixed seed, planned with the LP step the control workers
run for each site (``optimize.plan_at``: the profile forecast, the trip schedules and the
36-hour v2x-mpc plan, cold, without a previous plan to start from), by 1 and by 2 worker
processes. Reported as sites per second and sites per second per process (one per core).

PostgreSQL: a throwaway cluster with fsync on (as ``bench_telemetry.py``), or a server given
by ``--db`` whose user may create databases (a fresh one per run, dropped after). NATS: a
``nats-server`` on loopback, or ``--bus``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import multiprocessing
import os
import platform
import queue
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

PASSWORD = "bench-scale-password-0123"
WRONG_PASSWORD = "not-the-password-0123"
METER_VALUES = {
    "evseId": 1,
    "meterValue": [
        {
            "timestamp": "2026-07-15T19:00:00Z",
            "sampledValue": [
                {"measurand": "Power.Active.Import", "value": 0.0, "unitOfMeasure": {"unit": "W"}},
                {
                    "measurand": "Power.Active.Export",
                    "value": 11000.0,
                    "unitOfMeasure": {"unit": "W"},
                },
                {"measurand": "Energy.Active.Import.Register", "value": 123456.0},
                {"measurand": "SoC", "value": 64, "unitOfMeasure": {"unit": "Percent"}},
            ],
        }
    ],
}


class BenchFailed(SystemExit):
    """A run that cannot stand for the station count it names (exit status 1)."""

    def __init__(self, message: str) -> None:
        print(f"FAILED: {message}", file=sys.stderr, flush=True)
        super().__init__(1)


# --- the load generator (its own process: ``bench_scale.py --generator``) -------------------


async def _station(
    url: str, station_id: str, password: str, plan: dict[str, Any], shared: dict[str, Any]
) -> list[float]:
    from websockets.asyncio.client import connect
    from websockets.headers import build_authorization_basic

    latencies: list[float] = []
    headers = {"Authorization": build_authorization_basic(station_id, password)}
    # A fleet coming up a few dozen at a time per gateway, not all at once: the gateway
    # checks each password (scrypt) and drops a handshake still queued after 120 s.
    async with shared["handshakes"]:
        ws = await connect(
            f"{url}/{station_id}",
            subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
            additional_headers=headers,
            open_timeout=plan["open_timeout_s"],
            ping_interval=None,
        )
        try:
            boot = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
            await ws.send(json.dumps([2, "boot", "BootNotification", boot]))
            while True:
                answer = await ws.recv()
                if '"boot"' in answer:
                    if json.loads(answer)[2].get("status") != "Accepted":
                        raise RuntimeError(f"{station_id}: boot not accepted: {answer}")
                    break
                await _reply(ws, answer)
        except BaseException:
            await ws.close()
            raise
    async with ws:
        shared["booted"] += 1
        # Answer the CSMS's calls (the default profile after boot) while waiting to start.
        opened = asyncio.ensure_future(shared["gate"].wait())
        while not opened.done():
            received = asyncio.ensure_future(ws.recv())
            await asyncio.wait({received, opened}, return_when=asyncio.FIRST_COMPLETED)
            if received.done():
                await _reply(ws, received.result())
            else:
                received.cancel()  # websockets' recv() may be cancelled without losing data
                with contextlib.suppress(asyncio.CancelledError):
                    await received
        loop = asyncio.get_running_loop()
        period_s = plan["period_s"]
        await asyncio.sleep(random.uniform(0, period_s))
        n = 0
        while loop.time() < shared["stop_at"]:
            n += 1
            sent = loop.time()
            await ws.send(json.dumps([2, f"{station_id}-{n}", "MeterValues", METER_VALUES]))
            while True:  # the CSMS's own calls may come in between
                answer = await ws.recv()
                if f'"{station_id}-{n}"' in answer:
                    break
                await _reply(ws, answer)
            latencies.append(loop.time() - sent)
            await asyncio.sleep(max(0.0, period_s - (loop.time() - sent)))
    return latencies


async def _reply(ws: Any, raw: str) -> None:
    frame = json.loads(raw)
    if frame[0] == 2:
        await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))


async def _generate(plan: dict[str, Any]) -> None:
    """Boot every station, say how many booted, wait for ``go`` on stdin, run the window,
    print the latencies. One JSON line each time."""
    shared: dict[str, Any] = {
        "booted": 0,
        "gate": asyncio.Event(),
        "stop_at": float("inf"),
        "handshakes": asyncio.Semaphore(plan["handshakes"]),
    }
    urls, bad = plan["urls"], set(plan["bad"])
    tasks = []
    for i, station_id in enumerate(plan["ids"]):
        password = WRONG_PASSWORD if station_id in bad else PASSWORD
        url = urls[(plan["offset"] + i * plan["stride"]) % len(urls)]
        tasks.append(asyncio.create_task(_station(url, station_id, password, plan, shared)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # a ramp, not one burst of handshakes
    while shared["booted"] + sum(t.done() for t in tasks) < len(tasks):
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)  # let the after-boot profiles settle
    failed = [t.exception() for t in tasks if t.done()]
    first = next((repr(e) for e in failed if e is not None), None)
    _say({"booted": shared["booted"], "failed": len(failed), "first_failure": first})
    await asyncio.to_thread(sys.stdin.readline)  # "go"
    shared["stop_at"] = asyncio.get_running_loop().time() + plan["seconds"]
    shared["gate"].set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    latencies = [x for o in outcomes if isinstance(o, list) for x in o]
    _say(
        {
            "latencies_ms": [round(1000 * x, 3) for x in latencies],
            "lost": len(lost),
            "first_lost": repr(lost[0]) if lost else None,
        }
    )


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# --- processes ------------------------------------------------------------------------------


def _cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


class Child:
    """A child process whose stdout lines are read by a thread (``line`` waits with a timeout)."""

    def __init__(self, args: list[str], log: Path, stdin: bool = False) -> None:
        self.log = log
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log.open("ab"),
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def line(self, timeout_s: float, what: str) -> str:
        try:
            line = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise BenchFailed(
                f"{what}: nothing within {timeout_s:.0f} s (log: {self.log})"
            ) from None
        if line is None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise BenchFailed(f"{what}: the process exited ({self.process.poll()}):\n{tail}")
        return line

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@contextlib.contextmanager
def infrastructure(db: str | None, bus: str | None, folder: Path) -> Iterator[tuple[str, str]]:
    """A PostgreSQL server URL and a NATS URL: the ones given, or throwaway ones."""
    with contextlib.ExitStack() as stack:
        if db is None:
            from bench_telemetry import durable_cluster

            pg_folder = Path(tempfile.mkdtemp(prefix="lightson-bench-scale-pg-"))
            stack.callback(shutil.rmtree, pg_folder, ignore_errors=True)
            db = stack.enter_context(durable_cluster(pg_folder))
        if bus is None:
            from nats_support import nats_server

            bus = stack.enter_context(nats_server(folder / "nats")).url
        yield db, bus


def _register(url: str, count: int) -> list[str]:
    """``count`` stations (2.0.1, two to a site) registered at ``url``; their ids."""
    from sqlalchemy import insert

    from lightson.csms.auth import hash_password
    from lightson.store import StationRecord, Store
    from lightson.store import schema as db

    digest = hash_password(PASSWORD)  # one scrypt; every station shares the password
    ids = [f"b{i:05d}" for i in range(count)]
    rows = [
        StationRecord(s, digest, "2.0.1", "negative-limit", 11.0, f"bs{i // 2:05d}").row()
        for i, s in enumerate(ids)
    ]
    store = Store(url)
    try:
        with store.engine.begin() as connection:
            connection.execute(insert(db.stations), rows)
    finally:
        store.close()
    return ids


def _drop(server_url: str, url: str) -> None:
    import psycopg

    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(plain, autocommit=True) as connection,
    ):
        connection.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@dataclass
class RunResult:
    gateways: int
    stations: int
    booted: int
    messages: int
    p50_ms: float
    p99_ms: float
    gateway_cpu_ms_per_message: float
    gateway_core_share: float  # summed over the gateways
    generator_core_share: float


def run_point(
    server_url: str, bus: str, gateways: int, stations: int, args: argparse.Namespace, folder: Path
) -> RunResult:
    """One repetition of one point; ``BenchFailed`` when any station did not boot or was lost."""
    from net_support import free_port
    from pg_support import fresh_database

    url = fresh_database(server_url)
    ids = _register(url, stations)
    started: list[Child] = []
    try:
        ports = [free_port() for _ in range(gateways)]
        for n, port in enumerate(ports):
            gateway = Child(
                [
                    *(sys.executable, "-m", "lightson.cli", "gateway", "example"),
                    *("--bus", bus, "--db", url, "--port", str(port), "--name", f"bench-g{n}"),
                ],
                folder / f"gateway-{gateways}x{stations}-{n}.log",
            )
            started.append(gateway)
        gateway_pids = [g.process.pid for g in started]
        for n, gateway in enumerate(started):  # ready once it says it listens
            line = gateway.line(120, f"gateway {n}")
            if not line.startswith("gateway:"):
                raise BenchFailed(f"gateway {n} said {line!r} instead of listening")
        urls = [f"ws://127.0.0.1:{port}/ocpp" for port in ports]
        bad = set(ids[len(ids) - args.bad_passwords :]) if args.bad_passwords else set()
        generators = []
        shares = [ids[k :: args.generators] for k in range(args.generators)]
        for k, share in enumerate(shares):
            if not share:
                continue
            generator = Child(
                [sys.executable, str(Path(__file__).resolve()), "--generator"],
                folder / f"generator-{gateways}x{stations}-{k}.log",
                stdin=True,
            )
            started.append(generator)
            generators.append(generator)
            plan = {
                "urls": urls,
                "ids": share,
                "offset": k,
                "stride": args.generators,
                "bad": sorted(bad & set(share)),
                "seconds": args.seconds,
                "period_s": args.period,
                "open_timeout_s": 60.0,
                "handshakes": 20 * gateways,
            }
            generator.send(json.dumps(plan) + "\n")
        booted, failed, first = 0, 0, None
        for generator in generators:
            said = json.loads(generator.line(180 + stations * 0.2, "the load generator"))
            booted += said["booted"]
            failed += said["failed"]
            first = first or said["first_failure"]
        print(f"  {booted} of {stations} stations booted", flush=True)
        if booted < stations:
            raise BenchFailed(
                f"only {booted} of {stations} stations connected and booted "
                f"({failed} failed, first: {first}); the measurement is void"
            )
        cpu_before = [_cpu_ms(pid) for pid in gateway_pids]
        gen_before = [_cpu_ms(g.process.pid) for g in generators]
        wall_before = time.monotonic()
        for generator in generators:
            generator.send("go\n")
        latencies: list[float] = []
        lost, first_lost = 0, None
        for generator in generators:
            said = json.loads(generator.line(args.seconds + 120, "the load generator"))
            latencies += said["latencies_ms"]
            lost += said["lost"]
            first_lost = first_lost or said["first_lost"]
        wall = time.monotonic() - wall_before
        cpu = sum(_cpu_ms(pid) for pid in gateway_pids) - sum(cpu_before)
        gen_cpu = sum(_cpu_ms(g.process.pid) for g in generators) - sum(gen_before)
        if lost:
            raise BenchFailed(
                f"{lost} of {stations} stations were lost during the window "
                f"(first: {first_lost}); the measurement is void"
            )
        dead = [n for n, g in enumerate(started[:gateways]) if g.process.poll() is not None]
        if dead:
            raise BenchFailed(f"gateway(s) {dead} exited during the window")
    finally:
        for child in reversed(started):
            child.stop()
        _drop(server_url, url)
    latencies.sort()
    count = len(latencies)
    if count == 0:
        raise BenchFailed(f"no MeterValues answered from {stations} stations")
    return RunResult(
        gateways,
        stations,
        booted,
        count,
        latencies[count // 2],
        latencies[min(count - 1, int(count * 0.99))],
        cpu / count,
        cpu / 1000 / wall,
        gen_cpu / 1000 / wall,
    )


# --- part 2: the re-plan burst --------------------------------------------------------------


@functools.cache
def _burst() -> tuple[Any, Any, datetime, Any]:
    """ma-2026, the same program with the events announced by the burst, the moment, and the
    plan's 36-hour grid (once per worker process)."""
    from lightson.config import load_program
    from lightson.control.controllers import DEFAULT_HORIZON
    from lightson.domain.time import TimeGrid

    program = load_program("ma-2026")
    now = _burst_moment(program)
    known = replace(program, events=tuple(e for e in program.events if e.known_at(now)))
    step_start = now - (now - now.replace(minute=0, second=0, microsecond=0)) % program.step
    grid = TimeGrid(step_start, int(DEFAULT_HORIZON / program.step), program.step)
    return program, known, now, grid


def _replan_chunk(chunk: tuple[int, int, int]) -> tuple[int, int, float]:
    """Plan sites ``start..stop`` (synthetic, seeded by index); (plans, optimal, CPU s)."""
    import numpy as np

    from lightson.domain.plan import SolveStatus
    from lightson.domain.state import SiteState
    from lightson.forecast.profiles import profile_forecast
    from lightson.optimize import WarmStart, plan_at
    from lightson.physics.trips import trip_schedule

    start, stop, seed = chunk
    program, known, now, grid = _burst()
    cpu0, optimal = time.process_time(), 0
    for index in range(start, stop):
        site = program.sites[index % len(program.sites)]
        rng = np.random.default_rng([seed, index])
        energy = {v.vehicle_id: float(rng.uniform(0.3, 0.9)) * v.battery_kwh for v in site.vehicles}
        plugged = {v.vehicle_id: bool(rng.random() < 0.8) for v in site.vehicles}
        # What a worker's tick does for a site: forecast, trips, then the LP.
        forecast = profile_forecast(program, site, grid)
        schedules = {
            v.vehicle_id: trip_schedule(v.trips, grid, program.timezone) for v in site.vehicles
        }
        state = SiteState(energy_kwh=energy, plugged_now=plugged, peak_so_far_kw=0.0)
        plan = plan_at(known, site, now, state, forecast, schedules=schedules, warm=WarmStart())
        optimal += plan.status is SolveStatus.OPTIMAL
    return stop - start, optimal, time.process_time() - cpu0


def _burst_moment(program: Any) -> datetime:
    """14:45 local on the day of the program's first DR event starting at 15:00 or later."""
    for event in sorted(program.events, key=lambda e: e.start):
        local = event.start.astimezone(program.timezone)
        if local.hour >= 15:
            moment = local.replace(hour=14, minute=45, second=0, microsecond=0)
            return moment.astimezone(event.start.tzinfo)
    raise RuntimeError("the program has no afternoon DR event")


def replan(sites: int, processes: int, seed: int = 20261206) -> dict[str, float]:
    size = max(1, min(250, sites // (processes * 8) or 1))
    chunks = [(s, min(s + size, sites), seed) for s in range(0, sites, size)]
    _replan_chunk((0, 1, 0))  # imports and the program, inherited by the forked workers
    context = multiprocessing.get_context("fork")
    with context.Pool(processes) as pool:
        t0 = time.perf_counter()
        done = pool.map(_replan_chunk, chunks, chunksize=1)
        wall = time.perf_counter() - t0
    planned = sum(d[0] for d in done)
    return {
        "sites": planned,
        "optimal": sum(d[1] for d in done),
        "wall_s": wall,
        "cpu_s": sum(d[2] for d in done),
        "processes": processes,
    }


# --- report ---------------------------------------------------------------------------------


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def report_points(results: dict[tuple[int, int], list[RunResult]], period_s: float) -> None:
    print(
        "\n| gateways | stations | runs | messages / run | p50 ms | p99 ms "
        "| gateway CPU ms / msg | gateways' core share | generator core share "
        "| stations per gateway core |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (gateways, stations), runs in sorted(results.items()):
        share = statistics.median(r.gateway_core_share for r in runs)
        print(
            f"| {gateways} | {stations:,} | {len(runs)} "
            f"| {statistics.median(r.messages for r in runs):,.0f} "
            f"| {_spread([r.p50_ms for r in runs])} | {_spread([r.p99_ms for r in runs])} "
            f"| {_spread([r.gateway_cpu_ms_per_message for r in runs])[:20]} "
            f"| {share:.2f} | {statistics.median(r.generator_core_share for r in runs):.2f} "
            f"| {stations / share if share else float('nan'):,.0f} |",
            flush=True,
        )
    print(
        f"\n(p50/p99: median over the runs, min–max in brackets; stations per gateway core: "
        f"stations / the gateways' summed core share, at one message per {period_s:g} s.)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stations", type=int, nargs="*", default=[1000, 2000, 4000])
    parser.add_argument("--gateways", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=300.0, help="timed window per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--period", type=float, default=10.0, help="seconds between MeterValues")
    parser.add_argument("--generators", type=int, default=1, help="load generator processes")
    parser.add_argument("--sites", type=int, default=10_000, help="sites re-planned (0: none)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument(
        "--db", default=None, help="a PostgreSQL server URL (user may CREATE DATABASE)"
    )
    parser.add_argument("--bus", default=None, help="a NATS URL with JetStream")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 30 s per point, 1 run, 1,000 sites"
    )
    parser.add_argument("--bad-passwords", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generator:
        asyncio.run(_generate(json.loads(sys.stdin.readline())))
        return
    if args.quick:
        args.seconds, args.repeats = 30.0, 1
        args.sites = min(args.sites, 1000)
    print(
        f"# Scale-out benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}\n",
        flush=True,
    )
    folder = Path(tempfile.mkdtemp(prefix="lightson-bench-scale-"))
    keep: Path | None = None
    try:
        if args.stations and args.gateways:
            print(
                f"## Gateways: MeterValues every {args.period:g} s, {args.seconds:g} s per run, "
                f"{args.repeats} run(s) per point\n",
                flush=True,
            )
            with infrastructure(args.db, args.bus, folder) as (server_url, bus):
                results: dict[tuple[int, int], list[RunResult]] = {}
                failures: list[str] = []
                for gateways in args.gateways:
                    for stations in args.stations:
                        for rep in range(args.repeats):
                            print(f"- {gateways} gateway(s), {stations} stations, run {rep + 1}")
                            try:
                                r = run_point(server_url, bus, gateways, stations, args, folder)
                            except BenchFailed:
                                failures.append(f"{gateways} gateway(s), {stations} stations")
                                continue
                            print(
                                f"  p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, "
                                f"{r.messages} messages, gateways {r.gateway_core_share:.2f} "
                                "core",
                                flush=True,
                            )
                            results.setdefault((gateways, stations), []).append(r)
                if results:
                    report_points(results, args.period)
                if failures:
                    keep = folder
                    print(f"\nVOID runs (not in the table): {'; '.join(failures)}; logs in {keep}")
        if args.sites:
            print(f"\n## Re-plan of {args.sites:,} sites (ma-2026 kinds, 36 h v2x-mpc, cold)\n")
            print(
                "| worker processes | sites | optimal | wall s | sites/s | sites/s per process "
                "| CPU ms / site | sites per CPU-second |"
            )
            print("|---:|---:|---:|---:|---:|---:|---:|---:|")
            for processes in args.workers:
                r = replan(args.sites, processes)
                print(
                    f"| {processes} | {r['sites']:,.0f} | {r['optimal']:,.0f} "
                    f"| {r['wall_s']:.1f} | {r['sites'] / r['wall_s']:.0f} "
                    f"| {r['sites'] / r['wall_s'] / processes:.0f} "
                    f"| {1000 * r['cpu_s'] / r['sites']:.1f} | {r['sites'] / r['cpu_s']:.0f} |",
                    flush=True,
                )
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    if keep is not None:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
