"""TLS an operator switches on from the command line: security profile 2 (wss:// with the
CSMS's certificate, then HTTP Basic) and profile 3 (client certificates naming the station),
and the HTTP API over https://. Certificates are made in the test."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.headers import build_authorization_basic

from lightson.cli.serve import OperationsServer
from lightson.cli.tls import tls_context
from lightson.config import load_program
from lightson.csms.auth import hash_password
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.csms.tls import common_name, server_context
from lightson.domain.errors import ConfigError
from lightson.domain.time import SimClock
from lightson.store import StationRecord, Store
from net_support import free_port, run
from tls_support import Authority

START = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
PASSWORD = "tls-test-password-01"
HEARTBEAT = '[2,"hb","Heartbeat",{}]'


def _client(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def _store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'tls.db'}")
    for station_id in ("cs1", "cs2"):
        store.add_station(
            StationRecord(station_id, hash_password(PASSWORD), "2.0.1", "negative-limit", 11.0)
        )
    return store


async def _heartbeat(url: str, **options: Any) -> list[Any]:
    async with connect(url, subprotocols=["ocpp2.0.1"], open_timeout=10, **options) as ws:  # type: ignore[list-item]
        await ws.send(HEARTBEAT)
        while True:
            frame = json.loads(await ws.recv())
            if frame[0] == 3 and frame[1] == "hb":
                return list(frame)


def test_lightson_csms_serves_profile_2_from_the_command_line(tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    cert, key = ca.issue("lightson-csms", server=True)
    store = _store(tmp_path)
    store.close()
    port = free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "lightson.cli", "csms", "--port", str(port)),
            *("--db", f"sqlite:///{tmp_path / 'tls.db'}"),
            *("--tls-cert", str(cert), "--tls-key", str(key)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert f"CSMS listening on wss://127.0.0.1:{port}/ocpp" in line, line
        headers = {"Authorization": build_authorization_basic("cs1", PASSWORD)}
        url = f"wss://127.0.0.1:{port}/ocpp/cs1"
        frame = run(_heartbeat(url, ssl=_client(ca.path), additional_headers=headers))
        assert frame[:2] == [3, "hb"]
        with pytest.raises(ssl.SSLCertVerificationError):  # a CA the station does not trust
            run(_heartbeat(url, ssl=ssl.create_default_context(), additional_headers=headers))
    finally:
        server.terminate()
        server.wait(10)


def test_profile_3_admits_only_the_station_its_certificate_names(tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    cert, key = ca.issue("lightson-csms", server=True)
    cs1 = ca.issue("cs1")
    (tmp_path / "elsewhere").mkdir()
    stranger = Authority(tmp_path / "elsewhere", "another CA").issue("cs1")
    store = _store(tmp_path)

    async def scenario() -> None:
        tls = server_context(cert, key, client_ca=ca.path)
        async with CsmsServer(store, SimClock(START), CsmsSettings(port=0, tls=tls)) as server:
            # Its own certificate, no password: admitted.
            frame = await _heartbeat(f"{server.url}/cs1", ssl=_client(ca.path, *cs1))
            assert frame[:2] == [3, "hb"]
            # The same certificate connecting as cs2: refused, even with cs2's password.
            headers = {"Authorization": build_authorization_basic("cs2", PASSWORD)}
            with pytest.raises(InvalidStatus) as refused:
                await _heartbeat(
                    f"{server.url}/cs2", ssl=_client(ca.path, *cs1), additional_headers=headers
                )
            assert refused.value.response.status_code == 401
            # A password alone, or a certificate from a CA we do not trust: the TLS handshake
            # fails (with TLS 1.3 the client learns it as the connection closes).
            for client in (_client(ca.path), _client(ca.path, *stranger)):
                with pytest.raises((ssl.SSLError, ConnectionError, InvalidMessage)):
                    await _heartbeat(f"{server.url}/cs1", ssl=client, additional_headers=headers)
            assert server.rejected_handshakes == 1

    try:
        run(scenario())
    finally:
        store.close()


def test_the_api_serves_https_with_the_same_certificate(tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    cert, key = ca.issue("lightson", server=True)
    store = Store(f"sqlite:///{tmp_path / 'api.db'}")
    program = load_program("example")
    server = OperationsServer(
        program,
        store,
        SimClock(START),
        http_port=0,
        csms_settings=CsmsSettings(port=0, tls=server_context(cert, key)),
        http_tls=(cert, key),
    )

    def health(url: str) -> dict[str, Any]:
        with urllib.request.urlopen(url, timeout=10, context=_client(ca.path)) as answer:
            result: dict[str, Any] = json.load(answer)
            return result

    async def scenario() -> None:
        async with server.running() as running:
            assert running.url.startswith("https://")
            assert running.csms.url.startswith("wss://")
            answer = await asyncio.to_thread(health, f"{running.url}/api/health")
            assert answer["status"] == "ok"

    try:
        run(scenario())
    finally:
        store.close()


def test_tls_options_name_what_is_missing_or_wrong(tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    cert, key = ca.issue("lightson", server=True)
    assert tls_context(None, None, None) is None
    with pytest.raises(ConfigError, match="--tls-key"):
        tls_context(cert, None, None)
    with pytest.raises(ConfigError, match="--tls-cert"):
        tls_context(None, key, None)
    with pytest.raises(ConfigError, match="--tls-client-ca"):
        tls_context(None, None, ca.path)
    with pytest.raises(ConfigError, match="--tls-cert"):
        tls_context(key, key, None)  # a key is no certificate
    with pytest.raises(ConfigError, match="--tls-client-ca"):
        tls_context(cert, key, key)
    context = tls_context(cert, key, ca.path)
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_common_name_reads_the_subject() -> None:
    certificate = {"subject": ((("countryName", "US"),), (("commonName", "cs-7"),))}
    assert common_name(certificate) == "cs-7"
    assert common_name({"subject": ((("organizationName", "x"),),)}) is None
    assert common_name(None) is None
