"""The program's headline promise, tested as a site would meet it: a school is islanded in a
storm with its buses carrying the building, and ``lightson serve`` goes away for 20 minutes
(killed with SIGKILL, then, once it is back, stopped with SIGTERM as a deploy would). From the
chargers' own meter values: no charger ever charges from the island, the buses carry at least
the building's critical load throughout, and each time the server is back it re-sends its
setpoints within one tick of a charger reconnecting.

The server runs as its own process (the real ``lightson serve``) on a clock shared with the
emulated chargers in this process: both count from one ``CLOCK_MONOTONIC`` origin, 40 times
faster than the wall, so 20 simulated minutes pass in 30 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import IO, Any

import yaml

from lightson.config import load_program
from lightson.csms.auth import hash_password
from lightson.csms.clock import AcceleratedClock
from lightson.csms.wire import OcppVersion
from lightson.domain.time import TimeGrid
from lightson.emulator import EmulatedEv, EmulatedStation, Evse
from lightson.forecast.profiles import profile_forecast
from lightson.services.access import AccessService
from lightson.store import StationRecord, Store
from lightson.store import schema as db
from net_support import free_port

PASSWORD = "storm-drill-password-01"
START = datetime(2026, 7, 15, 23, 0, tzinfo=UTC)  # 19:00 EDT, summer break: buses at the depot
SPEED = 40.0
EVERY = timedelta(minutes=5)  # 7.5 s of wall time: "within one tick" has room on a busy machine
GAP = timedelta(minutes=20)
SITE = "school-beverly"
BUSES = {"depot-evse1": 226.0, "depot-evse2": 196.0}  # bus-7 and bus-12, kWh


@dataclass
class Drill:
    url: str
    http_port: int
    csms_port: int
    origin: float
    log: IO[str]
    token: str
    program: Path
    clock: AcceleratedClock = field(init=False)

    def __post_init__(self) -> None:
        self.clock = AcceleratedClock(START, SPEED, origin=self.origin)

    def serve(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "lightson.cli", "serve", "--program", str(self.program)),
                *("--db", self.url, "--port", str(self.http_port)),
                *("--csms-port", str(self.csms_port)),
                *("--every", str(int(EVERY.total_seconds()))),
                *("--start", START.isoformat(timespec="seconds"), "--speed", str(SPEED)),
                *("--clock-origin", repr(self.origin)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def declare_outage(self) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/api/sites/{SITE}/outage",
            data=json.dumps({"state": "lost"}).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            result: dict[str, Any] = json.load(answer)
            return result


async def _ready(server: subprocess.Popen[str]) -> None:
    assert server.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(server.stdout.readline), 90)
    assert "dashboard and API" in line, line


async def _until(condition: Any, timeout_s: float = 60.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


async def _drive(stations: list[EmulatedStation], clock: AcceleratedClock) -> None:
    """The chargers' own life: energy flows as their profiles say, and a reading goes out
    every few simulated seconds (queued while the server is away, sent when it is back)."""
    last = clock.now()
    while True:
        await asyncio.sleep(0.2)
        now = clock.now()
        for station in stations:
            station.advance((now - last).total_seconds())
            await station.send_meter_values()
        last = now


def _reconnected(stations: list[EmulatedStation], after: int) -> bool:
    return all(s.connected.is_set() and s.boots > after for s in stations)


async def _scenario(drill: Drill, marks: dict[str, datetime]) -> dict[str, list[Any]]:
    clock = drill.clock
    stations = [
        EmulatedStation(
            station_id,
            PASSWORD,
            OcppVersion.V21,
            f"ws://127.0.0.1:{drill.csms_port}/ocpp",
            clock,
            {1: Evse(1, max_charge_kw=60.0, max_discharge_kw=60.0)},
            dialect="central-setpoint",
        )
        for station_id in BUSES
    ]
    server = drill.serve()
    tasks: list[asyncio.Task[Any]] = []
    try:
        await _ready(server)
        tasks = [asyncio.create_task(s.run(reconnect_delay_s=0.1)) for s in stations]
        await _until(lambda: all(s.connected.is_set() for s in stations))
        for station, battery_kwh in zip(stations, BUSES.values(), strict=True):
            bus = EmulatedEv(battery_kwh, soc=0.8, max_charge_kw=60.0, max_discharge_kw=60.0)
            await station.plug_in(1, bus)
        tasks.append(asyncio.create_task(_drive(stations, clock)))
        answer = await asyncio.to_thread(drill.declare_outage)
        assert answer["islanded"] is True, answer
        await _until(lambda: all(s.evses[1].power_kw < -1.0 for s in stations))
        marks["carried"] = clock.now()
        await asyncio.sleep(EVERY / timedelta(seconds=SPEED))  # one more tick
        for fault in (signal.SIGKILL, signal.SIGTERM):
            boots = min(s.boots for s in stations)
            server.send_signal(fault)
            await asyncio.wait_for(asyncio.to_thread(server.wait), 60)
            marks[f"{fault.name} at"] = clock.now()
            await asyncio.sleep(GAP / timedelta(seconds=SPEED))
            server = drill.serve()
            await _ready(server)
            await _until(lambda boots=boots: _reconnected(stations, boots))  # type: ignore[misc]
            marks[f"{fault.name} back"] = clock.now()
            await asyncio.sleep(1.5 * EVERY / timedelta(seconds=SPEED))
        marks["end"] = clock.now()
        return {s.id: [dict(p.payload) for p in s.profiles.values()] for s in stations}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for station in stations:
            await station.stop()
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            await asyncio.to_thread(server.wait, 60)


def _school_only(path: Path) -> Path:
    """The example program with only the school: the restarted server's first pass plans
    one site, so on a busy machine it is back within a tick of the chargers."""
    text = (resources.files("lightson") / "examples" / "example.yaml").read_text()
    document = yaml.safe_load(text)
    document["sites"] = [s for s in document["sites"] if s["id"] == SITE]
    path.write_text(yaml.safe_dump(document))
    return path


def _power_at(samples: list[tuple[datetime, float]], at: datetime) -> float:
    """A station's power at ``at``: its latest reading then."""
    before = [kw for when, kw in samples if when <= at]
    return before[-1] if before else 0.0


def test_the_island_survives_a_killed_and_a_stopped_server(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'storm.db'}"
    store = Store(url)
    for station_id in BUSES:
        store.add_station(
            StationRecord(station_id, hash_password(PASSWORD), "2.1", "central-setpoint", 60.0)
        )
    token = AccessService(store, AcceleratedClock(START)).issue("drill", "admin")
    store.close()
    marks: dict[str, datetime] = {}
    with (tmp_path / "serve.log").open("w") as log:
        program = _school_only(tmp_path / "school.yaml")
        drill = Drill(url, free_port(), free_port(), time.monotonic(), log, token, program)
        held = asyncio.run(asyncio.wait_for(_scenario(drill, marks), 300))

    store = Store(url)
    try:
        samples = {
            station_id: sorted(
                (r["at"], r["power_kw"])
                for r in store.rows(db.meter_samples)
                if r["station_id"] == station_id and r["power_kw"] is not None
            )
            for station_id in BUSES
        }
        sent = [r for r in store.rows(db.setpoints_sent) if r["station_id"] in BUSES]
    finally:
        store.close()

    carried, end = marks["carried"], marks["end"]
    # 1. Nothing charges from the island: not one reading of either bus, gaps included.
    islanded = {s: [(at, kw) for at, kw in v if carried <= at <= end] for s, v in samples.items()}
    for station_id, readings in islanded.items():
        charging = [(at, kw) for at, kw in readings if kw > 0.05]
        assert charging == [], (station_id, charging[:5])
    # The readings cover both 20-minute gaps (sent late, from the chargers' queues).
    for fault in ("SIGKILL", "SIGTERM"):
        gone, back = marks[f"{fault} at"], marks[f"{fault} back"]
        for readings in islanded.values():
            assert sum(1 for at, _ in readings if gone < at < back) >= 20

    # 2. The critical load is carried throughout, by what the chargers metered.
    program = load_program(str(drill.program))
    site = program.site(SITE)
    times = sorted({at for readings in islanded.values() for at, _ in readings})
    for at in times:
        interval = at - (at - START) % program.step
        load_kw = float(profile_forecast(program, site, TimeGrid(interval, 1)).load_kw[0])
        critical_kw = site.building.tiers.critical_share * load_kw
        given_kw = -sum(_power_at(samples[s], at) for s in BUSES)
        assert given_kw >= critical_kw - 0.5, (at, given_kw, critical_kw)

    # 3. Back within one tick of the chargers reconnecting, each time, with setpoints that
    # hold long enough for the next fault, over the 0 W islanded default.
    for fault in ("SIGKILL", "SIGTERM"):
        back = marks[f"{fault} back"]
        for station_id in BUSES:
            first = min(
                r["sent_at"]
                for r in sent
                if r["station_id"] == station_id and r["sent_at"] > marks[f"{fault} at"]
            )
            assert first <= back + EVERY, (fault, station_id, first, back)
    for station_id, profiles in held.items():
        default = next(p for p in profiles if p["chargingProfilePurpose"] == "TxDefaultProfile")
        assert default["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == 0.0
        setpoint = next(p for p in profiles if p["chargingProfilePurpose"] == "TxProfile")
        assert setpoint["maxOfflineDuration"] >= 30 * 60, station_id
