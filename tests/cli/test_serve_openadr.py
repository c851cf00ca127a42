"""``lightson serve --openadr-vtn``: the options reach the VEN, a VTN that is down leaves the
server serving (health ``ok``, the VEN ``registering``), and SIGTERM stops it cleanly while
it waits to try again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lightson.cli import main
from lightson.cli.serve import openadr_settings
from lightson.config import load_program
from lightson.domain.errors import ConfigError
from lightson.dr.openadr import VenSettings
from net_support import free_port


async def _health(port: int) -> tuple[int, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_serve_with_its_vtn_down_keeps_serving_and_stops_on_sigterm(tmp_path: Path) -> None:
    http_port, csms_port, vtn_port = free_port(), free_port(), free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "lightson.cli", "serve"),
            *("--db", f"sqlite:///{tmp_path / 'serve.db'}"),
            *("--port", str(http_port), "--csms-port", str(csms_port)),
            *("--openadr-vtn", f"http://127.0.0.1:{vtn_port}/OpenADR2/Simple/2.0b"),
            *("--openadr-ven-name", "depot-ven", "--openadr-utility", "eversource"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    async def scenario() -> tuple[int, dict[str, Any]]:
        async with asyncio.timeout(60):
            while True:
                try:
                    status, health = await _health(http_port)
                except OSError:
                    status, health = 0, {}
                if health.get("dr", {}).get("registration_attempts", 0) >= 1:
                    break
                await asyncio.sleep(0.2)
        server.send_signal(signal.SIGTERM)  # during the 5 s wait before the next attempt
        await asyncio.wait_for(asyncio.to_thread(server.wait), 30)
        return status, health

    try:
        status, health = asyncio.run(scenario())
        _, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, err[-2000:]
    assert status == 200 and health["status"] == "ok"
    dr = health["dr"]
    assert (dr["state"], dr["ven_name"], dr["utility"]) == (
        "registering",
        "depot-ven",
        "eversource",
    )
    assert dr["last_error"] == "no valid answer from the VTN to EiRegisterParty"
    assert "OpenADR: the VTN did not register us (attempt 1" in err


def test_openadr_options_are_checked_before_the_server_starts(tmp_path: Path) -> None:
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    key = tmp_path / "ven.key.pem"
    key.write_text("not used")
    result = runner.invoke(main, ["serve", "--db", db, "--openadr-key", str(key)])
    assert result.exit_code == 2
    assert "--openadr-vtn: is needed by the other --openadr- options" in result.output
    vtn = ("--openadr-vtn", "http://127.0.0.1:1/OpenADR2/Simple/2.0b")
    result = runner.invoke(main, ["serve", "--db", db, *vtn])
    assert result.exit_code == 2
    assert "--openadr-utility: the program's sites belong to several utilities" in result.output
    result = runner.invoke(main, ["serve", "--db", db, *vtn, "--openadr-utility", "unitil"])
    assert result.exit_code == 2
    assert "--openadr-utility: no site of 'unitil'; known: eversource, national-grid" in (
        result.output
    )
    result = runner.invoke(
        main,
        ["serve", "--db", db, *vtn, "--openadr-utility", "eversource", "--openadr-key", str(key)],
    )
    assert result.exit_code == 2
    assert "--openadr-cert: the certificate and its key go together" in result.output


def _with_openadr(tmp_path: Path, section: str) -> Path:
    text = (resources.files("lightson") / "examples" / "example.yaml").read_text()
    path = tmp_path / "program.yaml"
    path.write_text(text.replace("\nsites:\n", f"\n{section}\nsites:\n", 1))
    return path


def test_the_program_files_openadr_keys_apply_and_each_option_wins(tmp_path: Path) -> None:
    (tmp_path / "vtn-ca.pem").write_text("read when the VEN connects")
    program = _with_openadr(
        tmp_path,
        "openadr:\n"
        "  vtn_url: https://vtn.utility.example/OpenADR2/Simple/2.0b\n"
        "  utility: eversource\n"
        "  ca: vtn-ca.pem\n"
        "  market_contexts: {'http://utility.example/daily': cs-ci-daily}\n",
    )
    load_program(program)  # the section is part of the program file's schema
    settings = openadr_settings(str(program))
    assert settings == VenSettings(
        "https://vtn.utility.example/OpenADR2/Simple/2.0b",
        "lightson",
        "eversource",
        ca=tmp_path / "vtn-ca.pem",
        market_contexts={"http://utility.example/daily": "cs-ci-daily"},
    )
    overridden = openadr_settings(
        str(program), vtn="http://127.0.0.1:9/OpenADR2/Simple/2.0b", ven_name="depot", utility=None
    )
    assert overridden is not None
    assert (overridden.vtn_url, overridden.ven_name, overridden.utility) == (
        "http://127.0.0.1:9/OpenADR2/Simple/2.0b",
        "depot",
        "eversource",
    )
    assert openadr_settings("example") is None


def test_a_wrong_openadr_key_in_the_program_file_is_named(tmp_path: Path) -> None:
    program = _with_openadr(tmp_path, "openadr:\n  vtn: https://vtn.example/\n")
    with pytest.raises(ConfigError) as refused:
        load_program(program)
    assert ("openadr.vtn_url", "is required") in refused.value.issues
