"""OCPP frames are logged only when asked (``--log-frames``), and then both ways: what the
CSMS sends and what it receives."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lightson.cli.app import log_frames
from lightson.csms.auth import hash_password
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.csms.wire import OcppVersion
from lightson.domain.time import SimClock
from lightson.emulator import EmulatedStation, Evse
from lightson.store import StationRecord, Store
from net_support import run

START = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
PASSWORD = "log-frames-password-01"


def _frames_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> list[str]:
    tmp_path.mkdir()
    store = Store(f"sqlite:///{tmp_path / 'frames.db'}")
    store.add_station(StationRecord("cs1", hash_password(PASSWORD), "2.0.1", "negative-limit", 11))

    async def scenario() -> None:
        async with CsmsServer(store, SimClock(START), CsmsSettings(port=0)) as server:
            station = EmulatedStation(
                "cs1", PASSWORD, OcppVersion.V201, server.url, SimClock(START), {1: Evse(1, 11, 11)}
            )
            task = asyncio.create_task(station.run())
            try:
                await asyncio.wait_for(station.connected.wait(), 10)
            finally:
                await station.stop()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    caplog.clear()
    try:
        run(scenario())
    finally:
        store.close()
    return [r.getMessage() for r in caplog.records if r.name == "ocpp"]


def test_frames_are_logged_both_ways_only_when_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root takes all: only the ocpp logger's level decides
    try:
        log_frames(enabled=True)
        shown = _frames_logged(tmp_path / "on", caplog)
        # The CSMS received the station's BootNotification CALL (the emulator only sends it).
        assert any("receive message" in m and '"BootNotification"' in m for m in shown), shown
        # And sent its default profile (the emulator only receives it).
        assert any(m.startswith("cs1: send") and "SetChargingProfile" in m for m in shown)
        log_frames(enabled=False)
        assert _frames_logged(tmp_path / "off", caplog) == []
    finally:
        log_frames(enabled=False)
