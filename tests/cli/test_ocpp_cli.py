"""``lightson station add`` and ``lightson emulate`` against a CSMS on loopback."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from lightson.cli import main
from lightson.csms.clock import AcceleratedClock
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.store import Store
from lightson.store import schema as db

ENV = {"LIGHTSON_STATION_PASSWORD": "emulated-fleet-secret-1"}


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def running_csms(database: str) -> Iterator[str]:
    """A CSMS on a free loopback port in a background thread; yields its URL."""
    store = Store(database)
    loop = asyncio.new_event_loop()
    server = CsmsServer(store, AcceleratedClock(), CsmsSettings(port=0))
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server.url
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    store.close()


def test_station_add_registers_a_numbered_fleet(database: str) -> None:
    result = CliRunner().invoke(
        main, ["station", "add", "emu-", "--count", "3", "--db", database], env=ENV
    )
    assert result.exit_code == 0, result.output
    assert "emu-0001 … emu-0003" in result.output
    store = Store(database)
    try:
        assert [s["id"] for s in store.rows(db.stations)] == ["emu-0001", "emu-0002", "emu-0003"]
        assert all(s["password_hash"].startswith("scrypt$") for s in store.rows(db.stations))
    finally:
        store.close()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--version", "2.0.1", "--dialect", "central-setpoint"], "--dialect: dialect"),
        (["--password-env", "NO_SUCH_VARIABLE_SET"], "--password-env"),
        (["--password-env", "SHORT_PASSWORD"], "16 to 40 characters"),
    ],
)
def test_station_add_refuses_bad_input_naming_the_option(
    database: str, arguments: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        main,
        ["station", "add", "x", "--db", database, *arguments],
        env={**ENV, "SHORT_PASSWORD": "s3cret"},
    )
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_emulated_stations_charge_and_report_to_the_csms(database: str, running_csms: str) -> None:
    runner = CliRunner()
    added = runner.invoke(
        main,
        ["station", "add", "emu-", "--count", "2", "--db", database, "--max-charge-kw", "11"],
        env=ENV,
    )
    assert added.exit_code == 0, added.output
    result = runner.invoke(
        main,
        [
            "emulate",
            "--url",
            running_csms,
            "--stations",
            "2",
            "--speed",
            "600",
            "--meter-interval",
            "300",
            "--duration",
            "2",
        ],
        env=ENV,
    )
    assert result.exit_code == 0, result.output
    store = Store(database)
    try:
        samples = store.rows(db.meter_samples)
        # Each station charges at the charge-only default profile: the registered 11 kW.
        assert {s["station_id"] for s in samples} == {"emu-0001", "emu-0002"}
        assert max(s["power_kw"] for s in samples) == pytest.approx(11.0)
        started = [e for e in store.rows(db.transaction_events) if e["event_type"] == "Started"]
        assert len(started) == 2
    finally:
        store.close()


def test_emulate_says_how_to_register_refused_stations(running_csms: str) -> None:
    result = CliRunner().invoke(
        main,
        [
            "emulate",
            "--url",
            running_csms,
            "--stations",
            "1",
            "--id-prefix",
            "nobody-",
            "--duration",
            "1",
        ],
        env=ENV,
    )
    assert result.exit_code == 2
    assert "lightson station add" in result.output
