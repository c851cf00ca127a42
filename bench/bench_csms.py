"""CSMS benchmark (``make bench-csms``): MeterValues latency under load and CPU per message.

Part 1, CPU per message, side by side in one process: the same 2.0.1 ``MeterValues`` CALL
handled N times by (a) the bare ``ocpp`` package's ``ChargePoint`` with a handler that stores
nothing, (b) our session with the same do-nothing handler (wire layer only), and (c) our real
station session, which also commits the samples to SQLite before answering. Reported as CPU
milliseconds per message and as ratios to (a).

Part 2, load on loopback: the CSMS runs in its own process (``lightson csms`` on a fresh SQLite
file with N registered stations); this process opens N WebSocket connections (lightweight
clients, not the full emulator) that boot and then send ``MeterValues`` every 10 s at random
phases. For each N we report the p50/p99 call latency seen by the stations, the server's CPU
milliseconds per message and its share of one core. The largest N with p99 under 100 ms is
the answer. The load generator shares the 2 cores with the server, so the figures are a
lower bound on what the server alone could do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ocpp.routing import on as ocpp_on
from ocpp.v201 import ChargePoint as OcppChargePoint
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import connect
from websockets.headers import build_authorization_basic

from lightson.csms.auth import hash_password
from lightson.csms.rpc import OcppSession, on
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.csms.session_2x import Session2x
from lightson.csms.wire import OcppVersion
from lightson.domain.time import SimClock
from lightson.store import StationRecord, Store

PASSWORD = "bench-password-0123"
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


class NullConnection:
    def __init__(self) -> None:
        self.sent = 0

    async def send(self, message: str) -> None:
        self.sent += 1

    async def recv(self) -> str:
        raise RuntimeError("not used")


class BareOcpp(OcppChargePoint):  # type: ignore[misc]
    @ocpp_on("MeterValues")
    def on_meter_values(self, **_: Any) -> Any:
        return result201.MeterValues()


class OursNoStore(OcppSession):
    @on("MeterValues")
    def on_meter_values(self, **_: Any) -> dict[str, Any]:
        return {}


def _frames(count: int) -> list[str]:
    return [json.dumps([2, f"m{i}", "MeterValues", METER_VALUES]) for i in range(count)]


async def _cpu_per_message(count: int) -> dict[str, float]:
    frames = _frames(count)
    results: dict[str, float] = {}

    async def measure(name: str, handle: Any) -> None:
        for frame in frames[:50]:  # warm caches and validators
            await handle(frame)
        start = time.process_time()
        for frame in frames:
            await handle(frame)
        results[name] = (time.process_time() - start) * 1000 / count

    bare = BareOcpp("cs", NullConnection())
    await measure("ocpp package, no storage", bare.route_message)
    ours = OursNoStore("cs", NullConnection(), OcppVersion.V201)
    await measure("Lights On wire layer, no storage", ours.route_message)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{folder}/bench.db")
        server = CsmsServer(store, SimClock(_now()), CsmsSettings(port=0))
        record = StationRecord("cs", "x", "2.0.1", "negative-limit", 11.0)
        session = Session2x(server, record, NullConnection())  # type: ignore[arg-type]
        await measure("Lights On station session, stored in SQLite", session.route_message)
        store.close()
    return results


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 7, 15, 19, tzinfo=UTC)


# --- load -------------------------------------------------------------------------------------


def _cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


async def _station(
    url: str,
    station_id: str,
    state: dict[str, float],
    period_s: float,
    latencies: list[float],
    gate: asyncio.Event,
) -> None:
    headers = {"Authorization": build_authorization_basic(station_id, PASSWORD)}
    async with connect(
        f"{url}/{station_id}",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=headers,
        open_timeout=120,
    ) as ws:
        await ws.send(
            json.dumps(
                [
                    2,
                    "boot",
                    "BootNotification",
                    {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}},
                ]
            )
        )
        while True:
            answer = await ws.recv()
            if '"boot"' in answer:
                break
            await _reply(ws, answer)
        state["connected"] += 1
        await gate.wait()
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.uniform(0, period_s))
        n = 0
        while loop.time() < state["stop_at"]:
            n += 1
            sent = loop.time()
            await ws.send(json.dumps([2, f"{station_id}-{n}", "MeterValues", METER_VALUES]))
            while True:  # the CSMS's own calls (the default profile) may come in between
                answer = await ws.recv()
                if f'"{station_id}-{n}"' in answer:
                    break
                await _reply(ws, answer)
            latencies.append(loop.time() - sent)
            await asyncio.sleep(max(0.0, period_s - (loop.time() - sent)))


async def _reply(ws: Any, raw: str) -> None:
    frame = json.loads(raw)
    if frame[0] == 2:
        await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))


async def _load(
    url: str, stations: int, seconds: float, period_s: float, pid: int
) -> tuple[list[float], float, float]:
    """Latencies, and the server's CPU ms and the wall seconds of the timed window."""
    latencies: list[float] = []
    gate = asyncio.Event()
    state = {"stop_at": float("inf"), "connected": 0.0}
    tasks = []
    for i in range(stations):
        tasks.append(
            asyncio.create_task(_station(url, f"b{i:05d}", state, period_s, latencies, gate))
        )
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    while state["connected"] + sum(t.done() for t in tasks) < stations:
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)  # let the after-boot profiles settle
    state["stop_at"] = asyncio.get_running_loop().time() + seconds
    cpu_before, wall_before = _cpu_ms(pid), time.monotonic()
    gate.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    cpu, wall = _cpu_ms(pid) - cpu_before, time.monotonic() - wall_before
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if failures:
        # A refused or lost station means the numbers are for a smaller fleet: no table.
        raise SystemExit(
            f"{len(failures)} of {stations} stations failed (first: {failures[0]!r}); "
            "the measurement is void"
        )
    return latencies, cpu, wall


def _run_load(
    stations: int, seconds: float, period_s: float, full_gc_every_s: float
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        url_db = f"sqlite:///{folder}/load.db"
        store = Store(url_db)
        digest = hash_password(PASSWORD)
        for i in range(stations):
            store.add_station(StationRecord(f"b{i:05d}", digest, "2.0.1", "negative-limit", 11.0))
        store.close()
        port = 9400 + random.randint(0, 500)
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "lightson.cli", "csms", "--db", url_db),
                *("--port", str(port), "--full-gc-every", str(full_gc_every_s)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            # Ready when it says so (it prints once it listens), not after a fixed wait.
            assert server.stdout is not None
            if "CSMS listening" not in server.stdout.readline():
                raise RuntimeError(f"the CSMS did not start (exit status {server.poll()})")
            url = f"ws://127.0.0.1:{port}/ocpp"
            latencies, cpu, wall = asyncio.run(_load(url, stations, seconds, period_s, server.pid))
        finally:
            server.terminate()
            server.wait(10)
    latencies.sort()
    count = len(latencies)
    return {
        "stations": stations,
        "messages": count,
        "p50_ms": 1000 * latencies[count // 2] if count else float("nan"),
        "p99_ms": 1000 * latencies[min(count - 1, int(count * 0.99))] if count else float("nan"),
        "server_cpu_ms_per_message": cpu / count if count else float("nan"),
        "server_core_share": cpu / 1000 / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--stations", type=int, nargs="*", default=[200, 1000])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--period", type=float, default=10.0)
    parser.add_argument(
        "--cpython-gc",
        type=int,
        nargs="*",
        default=[5000],
        help="station counts also run with CPython's own full-collection timing, side by side",
    )
    args = parser.parse_args()
    print(
        f"# CSMS benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    cpu = asyncio.run(_cpu_per_message(args.messages))
    base = cpu["ocpp package, no storage"]
    print(f"## CPU per MeterValues message ({args.messages} messages, one process)\n")
    print("| handler | CPU ms / message | ratio to the ocpp package |")
    print("|---|---:|---:|")
    for name, value in cpu.items():
        print(f"| {name} | {value:.3f} | {value / base:.2f} |")
    print(
        f"\n## Load on loopback (MeterValues every {args.period:g} s, {args.seconds:g} s "
        "per run, server in its own process)\n"
    )
    print(
        "| stations | full collections | messages | p50 ms | p99 ms "
        "| server CPU ms / message | server core share |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    runs = [(n, 300.0) for n in args.stations]
    runs += [(n, 0.0) for n in args.cpython_gc]
    for stations, full_gc_every_s in sorted(runs):
        row = _run_load(stations, args.seconds, args.period, full_gc_every_s)
        timing = f"every {full_gc_every_s:g} s" if full_gc_every_s else "CPython's own"
        print(
            f"| {stations} | {timing} | {row['messages']:.0f} | {row['p50_ms']:.1f} "
            f"| {row['p99_ms']:.1f} | {row['server_cpu_ms_per_message']:.3f} "
            f"| {row['server_core_share']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
