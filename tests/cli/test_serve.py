"""``lightson serve`` as a service manager runs it: its own process, stopped with SIGTERM.
On the way out it clears the setpoint profiles of every connected charger, so none is left
following a plan nobody updates."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from lightson.csms.auth import hash_password
from lightson.csms.clock import AcceleratedClock
from lightson.csms.wire import OcppVersion
from lightson.emulator import EmulatedStation, Evse
from lightson.store import StationRecord, Store
from net_support import free_port

PASSWORD = "serve-test-password-01"


def test_sigterm_stops_the_server_and_leaves_chargers_on_their_defaults(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    store = Store(url)
    store.add_station(
        StationRecord("depot-evse1", hash_password(PASSWORD), "2.1", "central-setpoint", 60.0)
    )
    store.close()
    http_port, csms_port = free_port(), free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "lightson.cli", "serve", "--db", url),
            *("--port", str(http_port), "--csms-port", str(csms_port)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    async def scenario() -> list[str]:
        station = EmulatedStation(
            "depot-evse1",
            PASSWORD,
            OcppVersion.V21,
            f"ws://127.0.0.1:{csms_port}/ocpp",
            AcceleratedClock(),
            {1: Evse(1, max_charge_kw=60.0, max_discharge_kw=60.0)},
            dialect="central-setpoint",
        )
        task = asyncio.create_task(station.run())
        try:
            await asyncio.wait_for(station.connected.wait(), 60)
            await asyncio.sleep(1.0)  # the boot configuration (default profile) is done
            session = station.session
            assert session is not None
            seen = len(session.received)
            server.send_signal(signal.SIGTERM)
            await asyncio.wait_for(asyncio.to_thread(server.wait), 30)
            return session.received[seen:]
        finally:
            await station.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        after_sigterm = asyncio.run(scenario())
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, err[-2000:]
    # The clear was answered before the connection closed, and the log says so.
    assert "stopped; 1 chargers left on their charge-only defaults (1 answered)" in out
    assert any('"ClearChargingProfile"' in frame for frame in after_sigterm), after_sigterm
    # Frames are not logged unless asked for (--log-frames): the default profile was sent
    # unrecorded.
    assert "SetChargingProfile" not in err, err[-2000:]
