"""A server killed at any moment loses nothing it acknowledged: the CSMS runs as its own
process, a station sends meter values with a running counter, and the process is killed
with SIGKILL in the middle of the stream; every value the station got an answer for is in
the database afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.headers import build_authorization_basic

from lightson.csms.auth import hash_password
from lightson.store import StationRecord, Store
from lightson.store import schema as db
from net_support import free_port

PASSWORD = "crash-test-password-01"
# The CSMS runs on the wall clock and quarantines readings outside its window: stamp them now.
STARTED = datetime.now(UTC).replace(microsecond=0)


def _meter_values(n: int) -> str:
    value = {
        "evseId": 1,
        "meterValue": [
            {
                "timestamp": (STARTED + timedelta(seconds=n)).isoformat(),
                "sampledValue": [
                    {"measurand": "Energy.Active.Import.Register", "value": float(n)},
                ],
            }
        ],
    }
    return json.dumps([2, f"m{n}", "MeterValues", value])


async def _stream(url: str, acknowledged: list[int], kill_after: int, pid: int) -> None:
    headers = {"Authorization": build_authorization_basic("cs-crash", PASSWORD)}
    async with connect(
        f"{url}/cs-crash",
        subprotocols=["ocpp2.0.1"],
        additional_headers=headers,  # type: ignore[list-item]
    ) as ws:
        boot = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
        await ws.send(json.dumps([2, "boot", "BootNotification", boot]))
        n = 0
        try:
            while True:
                await ws.send(_meter_values(n))
                while True:
                    frame = json.loads(await ws.recv())
                    if frame[0] == 2:  # the CSMS's own call (the default profile)
                        await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
                    elif frame[1] == f"m{n}":
                        acknowledged.append(n)
                        break
                n += 1
                if n == kill_after:  # mid-stream: the next value is on its way
                    await ws.send(_meter_values(n))
                    os.kill(pid, signal.SIGKILL)
        except ConnectionClosed:
            return


def test_a_killed_csms_keeps_every_acknowledged_meter_value(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'crash.db'}"
    store = Store(database)
    store.add_station(
        StationRecord("cs-crash", hash_password(PASSWORD), "2.0.1", "negative-limit", 11.0)
    )
    store.close()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "lightson.cli", "csms", "--db", database, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert "CSMS listening" in server.stdout.readline()  # up and serving
        acknowledged: list[int] = []
        asyncio.run(
            asyncio.wait_for(
                _stream(f"ws://127.0.0.1:{port}/ocpp", acknowledged, 150, server.pid), 60
            )
        )
    finally:
        server.kill()
        server.wait(10)
    assert len(acknowledged) == 150
    time.sleep(0.1)
    store = Store(database)  # opened after the kill: recovery from the WAL
    try:
        stored = {round(r["energy_imported_kwh"] * 1000) for r in store.rows(db.meter_samples)}
    finally:
        store.close()
    assert set(acknowledged) <= stored  # nothing acknowledged is lost (one more may be there)
    assert stored <= set(range(151))
